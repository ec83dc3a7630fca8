"""Commands on a whole conversation: ``timer``, ``mute``, ``archive``, ``search``.

How this works: like :mod:`p2pdm.cli.chat`, each is a client of the running
node's local API. A timer is typed as people say it (``5m``, ``1h``, ``1d``,
``7d``, ``off``) and sent in seconds; the node tells the contact.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Final, TextIO

from p2pdm.cli.chat import (
    _find_conversation,
    _print_json,
    _short,
    _when,
    group_of_conversation,
    print_table,
    safe_text,
)
from p2pdm.client import Client
from p2pdm.daemon.home import Home
from p2pdm.limits import DEFAULT_SEARCH_HITS, MAX_SEARCH_HITS

__all__ = [
    "TIMER_WORDS",
    "archive",
    "archive_arguments",
    "mute",
    "mute_arguments",
    "pin",
    "pin_arguments",
    "search",
    "search_arguments",
    "timer",
    "timer_arguments",
]

EXIT_OK: Final = 0

#: How a timer is typed, and its seconds (limits.DISAPPEARING_TIMERS_S).
TIMER_WORDS: Final = {"off": 0, "5m": 300, "1h": 3_600, "1d": 86_400, "7d": 604_800}


def _timer(text: str) -> int:
    try:
        return TIMER_WORDS[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"give one of {', '.join(TIMER_WORDS)}") from None


def timer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("contact", metavar="CONTACT", help="name, PeerID or conversation id")
    parser.add_argument(
        "timer",
        type=_timer,
        metavar="|".join(TIMER_WORDS),
        help="how long a message stays after it is read; off keeps them",
    )


def timer(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        conversation, name = _find_conversation(node, args.contact)
        if group_of_conversation(node, conversation):
            # A group's timer is a change of the group, signed and told to every member.
            node.update_group(conversation, timer_s=args.timer)
        else:
            node.update_conversation(conversation, timer_s=args.timer)
    word = next(w for w, s in TIMER_WORDS.items() if s == args.timer)
    if args.timer:
        print(
            f"Disappearing messages with {safe_text(name)}: {word} after reading, "
            "for messages sent from now on. They are told.",
            file=out,
        )
    else:
        print(f"Disappearing messages with {safe_text(name)}: off. They are told.", file=out)
    return EXIT_OK


Arguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace, Home, TextIO], int]


def _switch(field: str, off_help: str, on_state: str, off_state: str) -> tuple[Arguments, Run]:
    """A command that turns one of a conversation's flags (``field``) on, or off
    with ``--off``, and says which: "Conversation with NAME <state>."."""

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("contact", metavar="CONTACT", help="name, PeerID or conversation id")
        parser.add_argument("--off", action="store_true", help=off_help)

    def run(args: argparse.Namespace, home: Home, out: TextIO) -> int:
        with Client.for_home(home) as node:
            conversation, name = _find_conversation(node, args.contact)
            node.update_conversation(conversation, **{field: not args.off})
        state = off_state if args.off else on_state
        print(f"Conversation with {safe_text(name)} {state}.", file=out)
        return EXIT_OK

    return arguments, run


mute_arguments, mute = _switch(
    "muted", "unmute it", "muted: its messages are kept, without notifications", "unmuted"
)
archive_arguments, archive = _switch(
    "archived", "move it back to the main list", "archived", "moved back from the archive"
)
pin_arguments, pin = _switch("pinned", "unpin it", "pinned to the top of the list", "unpinned")


def _hits(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_SEARCH_HITS:
        raise argparse.ArgumentTypeError(f"give a number from 1 to {MAX_SEARCH_HITS}")
    return value


def search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", metavar="TEXT", nargs="+", help="the words to find")
    parser.add_argument("--peer", metavar="CONTACT", help="only the conversation with CONTACT")
    parser.add_argument(
        "-n",
        "--limit",
        type=_hits,
        default=DEFAULT_SEARCH_HITS,
        metavar="N",
        help=f"most results (default {DEFAULT_SEARCH_HITS}, at most {MAX_SEARCH_HITS})",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def search(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        hits = node.search(" ".join(args.text), peer=args.peer, limit=args.limit)
        names = {c["peer_id"]: c["name"] for c in node.contacts()}
    if args.json:
        _print_json(hits, out)
        return EXIT_OK
    if not hits:
        print("No messages found.", file=out)
        return EXIT_OK
    rows = []
    for hit in hits:
        who = safe_text(names[hit["peer"]]) if hit["peer"] in names else _short(hit["peer"])
        arrow = "to" if hit["direction"] == "out" else "from"
        rows.append([_when(hit["sent_at_ms"]), f"{arrow} {who}", safe_text(hit["snippet"])])
    print_table(["SENT", "WITH", "TEXT"], rows, out)
    return EXIT_OK
