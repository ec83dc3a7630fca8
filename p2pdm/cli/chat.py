"""The chat commands of the command line: contacts, send, inbox, read.

How this works: each command is a client of the running node's local API
(:class:`~p2pdm.client.Client`), as ``ipfs`` commands are of their daemon,
so they work while ``p2pdm run`` holds the store. With no node running the
client raises :class:`~p2pdm.errors.NodeNotRunning`, which ``p2pdm.cli.main``
prints as one line. Output is plain text in aligned columns (``--json`` gives
the API's own JSON). Names and message texts come from other people, so
control characters in them are replaced before they reach the terminal: an
escape sequence in a message must not be able to rewrite the screen.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final, TextIO

from rich.cells import cell_len

from p2pdm import hints
from p2pdm.cli.live import live_lines, share_live
from p2pdm.cli.media import media_lines, send_media
from p2pdm.client import APIError, Client, MessageRequest
from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError
from p2pdm.limits import MAX_PAGE_SIZE, MAX_TEXT_BYTES

__all__ = [
    "contacts",
    "contacts_arguments",
    "delivery_words",
    "group_of_conversation",
    "inbox",
    "inbox_arguments",
    "read",
    "read_arguments",
    "send",
    "send_arguments",
]


def contact_name_key(name: str) -> str:
    """Names compared as the store compares them (NFKC, case-folded).

    The same rule as :func:`p2pdm.store.base.contact_name_key` (a test holds
    them equal), written here so that a chat command does not load the store.
    """
    return unicodedata.normalize("NFKC", name).casefold()


EXIT_OK: Final = 0
#: Messages `p2pdm read` shows unless told otherwise (about a screenful).
DEFAULT_READ_LIMIT: Final = 20
#: Characters of a PeerID shown where a contact has no name.
SHORT_PEER_CHARS: Final = 8
#: Shown in place of a character that could act on the terminal.
REPLACEMENT: Final = "\N{REPLACEMENT CHARACTER}"
#: Bidirectional overrides and isolates: they can make text read backwards.
_BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
TIME_FORMAT: Final = "%Y-%m-%d %H:%M"
#: `p2pdm read` lists messages in the order this node stored them, each at the
#: time it was stored; the sender's clock is shown too when it differs by more
#: than this: a message written offline and received later, or a sender's
#: clock that is wrong, but not ordinary network delay.
SENT_TIME_SHOWN_AFTER_MS: Final = 2 * 60 * 1000


# --- output helpers ------------------------------------------------------------


def safe_text(text: str, *, multiline: bool = False) -> str:
    """``text`` with control characters (and bidi overrides) replaced."""
    out = []
    for ch in text:
        if multiline and ch == "\n":
            out.append(ch)
        elif ch == "\t":
            out.append(" ")
        elif unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS:
            out.append(REPLACEMENT)
        else:
            out.append(ch)
    return "".join(out)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime(TIME_FORMAT, time.localtime(ms / 1000))


def _sent_note(message: Mapping[str, Any]) -> str:
    """`` (sent 15:02)`` when the sender's time is far from when the message was stored."""
    sent, stored = message["sent_at_ms"], message["stored_at_ms"]
    if abs(sent - stored) <= SENT_TIME_SHOWN_AFTER_MS:
        return ""
    sent_day, stored_day = _when(sent).split()[0], _when(stored).split()[0]
    shown = _when(sent) if sent_day != stored_day else _when(sent).split()[1]
    return f"  (sent {shown})"


def _short(peer_id: str) -> str:
    return peer_id[-SHORT_PEER_CHARS:]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Plain columns, padded by the terminal width of each cell (wide and emoji characters)."""
    widths = [cell_len(h) for h in headers]
    for row in rows:
        widths = [max(w, cell_len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in [headers, *rows]:
        cells = [cell + " " * (w - cell_len(cell)) for cell, w in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=out)


def delivery_words(message: Mapping[str, Any]) -> str | None:
    """An own group message at a glance: ``delivered to 4 of 5, read by 2``; None
    for any other message."""
    figures = message.get("delivery")
    if not figures:
        return None
    words = f"delivered to {figures['delivered']} of {figures['members']}"
    words += f", read by {figures['read']}" if figures["read"] else ""
    return words + (f", failed for {figures['failed']}" if figures.get("failed") else "")


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2), file=out)


# --- contacts ---------------------------------------------------------------------


def contacts_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="add a contact from their invite (or PeerID)",
        description="Add a contact from the p2pdm: invite they gave you (from `p2pdm id`), "
        "or from their PeerID alone. Their pending message requests are accepted.",
    )
    add.add_argument("who", metavar="INVITE|PEERID")
    add.add_argument("--name", help="what to call them (default: the name in the invite)")
    listing = actions.add_parser("list", help="list your contacts")
    listing.add_argument("--json", action="store_true", help="print the API's JSON")
    remove = actions.add_parser("remove", help="forget a contact (the conversation stays)")
    remove.add_argument("contact", metavar="CONTACT", help="name or PeerID")


def contacts(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        if args.action == "add":
            added = node.add_contact(args.who, args.name)
            print(f"Added {safe_text(added['name'])} ({added['peer_id']}).", file=out)
            if added["renamed_from"] is not None:
                print(
                    f"Their invite calls them {safe_text(added['renamed_from'])!r}, which is a "
                    "PeerID or another contact's name, so they are saved as "
                    f"{safe_text(added['name'])!r}; `p2pdm contacts add PEERID --name NAME` "
                    "renames them.",
                    file=out,
                )
            if not added["has_prekeys"]:
                print(
                    "Their keys are not known yet: an invite carries them; "
                    "with a PeerID alone they are looked up when you first write.",
                    file=out,
                )
        elif args.action == "list":
            _list_contacts(node.contacts(), args.json, out)
        else:
            peer_id, name = _find_contact(node, args.contact)
            node.delete_contact(args.contact)  # the node looks it up, as for send and read
            print(f"Removed {safe_text(name)} ({peer_id}).", file=out)
    return EXIT_OK


def _list_contacts(found: Sequence[Mapping[str, Any]], as_json: bool, out: TextIO) -> None:
    if as_json:
        _print_json(found, out)
        return
    if not found:
        print("No contacts yet. Add one with `p2pdm contacts add INVITE`.", file=out)
        return
    rows = [
        [_shown_name(c), c["peer_id"], _when(c["added_at_ms"]), _when(c["last_seen_ms"])]
        for c in found
    ]
    print_table(["NAME", "PEER ID", "ADDED", "LAST SEEN"], rows, out)
    if any(c["name_from_invite"] for c in found):
        print("\n~FINGERPRINT: a name they gave themselves, not one you chose.", file=out)


def _shown_name(contact: Mapping[str, Any]) -> str:
    """The contact's name; with ``~fingerprint`` if the name came from their invite."""
    name = safe_text(contact["name"])
    if contact["name_from_invite"]:
        return f"{name} ~{contact['fingerprint']}"
    return name


def _find_contact(node: Client, who: str) -> tuple[str, str]:
    """``(peer_id, display name)`` of a contact by PeerID (exactly) or else by name,
    for showing it: the commands pass what was typed to the node, whose lookup
    (``Node.resolve``, the same rule) decides and gives the one error for
    an unknown contact.

    A PeerID is always that PeerID, never a name (contact names cannot be
    PeerIDs). Anyone not in the contacts is passed on as typed, and the node
    decides (a PeerID of a stranger is fine for reading their message requests).
    """
    found = node.contacts()
    for contact in found:
        if who.strip() == contact["peer_id"]:
            return contact["peer_id"], contact["name"]
    key = contact_name_key(who)
    for contact in found:
        if contact_name_key(contact["name"]) == key:
            return contact["peer_id"], contact["name"]
    return who, _short(who)


# --- send ----------------------------------------------------------------------------


def send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "contact", metavar="CONTACT", help="contact name or PeerID, or a group's name or id"
    )
    parser.add_argument(
        "text",
        metavar="TEXT",
        nargs="*",
        help="the message (words are joined); `-` reads it from standard input",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--file", metavar="PATH", help="send a file (photo, voice note, document)")
    what.add_argument("--location", metavar="LAT,LON", help="send a place, e.g. 52.52,13.40")
    what.add_argument(
        "--live-location",
        metavar="LAT,LON",
        help="share where you are now for --for (15m, 1h or 8h), or move a running share; "
        "goes only while connected, never queued",
    )
    parser.add_argument("--for", dest="live_for", metavar="PERIOD", help="15m, 1h or 8h")
    parser.add_argument("--caption", metavar="TEXT", help="a file's caption")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def message_text(words: Sequence[str], stdin: TextIO) -> str:
    """The text to send: the words joined, or standard input for a lone ``-``.

    Raises ConfigError for input that is empty or longer than a message may be,
    before anything is sent.
    """
    if list(words) != ["-"]:
        return " ".join(words)
    text = stdin.read(MAX_TEXT_BYTES + 1)
    if len(text.encode("utf-8", "surrogateescape")) > MAX_TEXT_BYTES:
        raise ConfigError(f"the message on standard input is over {MAX_TEXT_BYTES} bytes")
    text = text.removesuffix("\n")
    if not text.strip():
        raise ConfigError("standard input held no message")
    return text


def send(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    if args.live_location is not None:
        return share_live(args, home, out)
    attached = args.file is not None or args.location is not None
    if not args.text and not attached:
        raise ConfigError("give the message text, --file PATH or --location LAT,LON")
    text = message_text(args.text, sys.stdin) if args.text else None
    with Client.for_home(home) as node:
        try:
            if attached:
                message = send_media(args, node, text)
            else:
                assert text is not None
                message = node.send(args.contact, text)
        except APIError as exc:
            if exc.code == "not_found" and _find_contact(node, args.contact)[0] == args.contact:
                _refuse_unknown_name(node, args.contact.strip())
            raise
    if args.json:
        _print_json(message, out)
    else:
        read = hints.command(home.path, "read", shlex.quote(safe_text(args.contact)))
        # Why it waits, if it does: "queued (waiting for bob's keys: ...)".
        why = f" ({safe_text(message['status_detail'])})" if message.get("status_detail") else ""
        print(
            f"Message {message['id']} to {safe_text(args.contact)}: {message['status']}{why}. "
            f"`{read}` shows its delivery.",
            file=out,
        )
    return EXIT_OK


# --- inbox ------------------------------------------------------------------------------


def inbox_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def inbox(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        conversations = node.conversations()
        # A stranger has no contact name: show the one its request gave (a
        # group's invitation is shown by the group's name).
        strangers: dict[str, MessageRequest] = {}
        if any(c["request"] and not c.get("group") for c in conversations):
            strangers = {r["peer_id"]: r for r in node.requests()}
    if args.json:
        _print_json(conversations, out)
        return EXIT_OK
    if not conversations:
        print("No conversations yet.", file=out)
        return EXIT_OK
    rows = []
    for c in conversations:
        group = c.get("group")
        if group:
            who = safe_text(group["name"])
        elif c["name"] is not None:
            who = safe_text(c["name"])
        elif (stranger := strangers.get(c["peer"])) is not None and stranger["name"]:
            who = f"{safe_text(stranger['name'])} ~{stranger['fingerprint']}"  # with its own
        else:
            who = _short(c["peer"])
        marks = [m for m in ("pinned", "group", "request", "muted", "archived") if c.get(m)]
        rows.append(
            [
                who + "".join(f" ({m})" for m in marks),
                str(c["unread"]) if c["unread"] else "",
                _when(c["last_message_at_ms"]),
                group["id"] if group else c["peer"],
            ]
        )
    print_table(["CONTACT", "UNREAD", "LAST ACTIVITY", "PEER ID"], rows, out)
    if any(c["request"] and c.get("group") for c in conversations):
        accept = hints.command(home.path, "group", "accept", "GROUP")
        print(
            f"\n(group) (request): someone who is not your contact added you; `{accept}` joins.",
            file=out,
        )
    requests = [c for c in conversations if c["request"] and not c.get("group")]
    if requests:  # the hint names the first one as the table does: pasted, it works
        short = "~" + _short(requests[0]["peer"])
        read = hints.command(home.path, "read", short)
        accept = hints.command(home.path, "requests", "accept", short, "--name", "NAME")
        print(
            "\n(request): a message from someone who is not your contact; "
            f"`{read}` shows it, `{accept}` accepts them as a contact named NAME.",
            file=out,
        )
    return EXIT_OK


# --- read ---------------------------------------------------------------------------------


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"give a number from 1 to {MAX_PAGE_SIZE}")
    return value


def read_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "contact",
        metavar="CONTACT",
        help="name, PeerID, group name or conversation id (32 hex characters)",
    )
    parser.add_argument(
        "-n",
        "--limit",
        type=_page_size,
        default=DEFAULT_READ_LIMIT,
        metavar="N",
        help=f"how many recent messages (default {DEFAULT_READ_LIMIT}, at most {MAX_PAGE_SIZE})",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.add_argument(
        "--ids",
        action="store_true",
        help="begin each message with its id (for reply, react, forward, edit, unsend)",
    )


def _find_conversation(node: Client, who: str) -> tuple[str, str]:
    """``(conversation, display name)``: a conversation by its id, a group's by the
    group's id or name, else a contact's (see :func:`_find_contact`), whose PeerID
    names its one-to-one conversation, else a stranger's by the fingerprint
    ``inbox`` shows for it (``~`` optional) or by the name its request goes by."""
    found = node.conversations()
    typed = who.strip()
    for conversation in found:
        group = conversation.get("group")
        if typed == conversation["id"] or (group and typed == group["id"]):
            return conversation["id"], _conversation_name(conversation)
    key = contact_name_key(typed)
    named = [c for c in found if (g := c.get("group")) and contact_name_key(g["name"]) == key]
    if len(named) == 1:
        return named[0]["id"], _conversation_name(named[0])
    quiet = _quiet_group(node, typed)
    if quiet is not None:
        return quiet["conversation"], quiet["name"]
    peer, name = _find_contact(node, who)
    if peer == who:  # no contact has that name
        short = typed.removeprefix("~")
        for conversation in found:
            peer_of = conversation.get("peer") or ""
            if not conversation["name"] and short in (peer_of, _short(peer_of)):
                return conversation["id"], "~" + _short(peer_of)  # as inbox shows it
        request = _request_named(node, typed)
        if request is not None:
            return request["conversation_id"], f"{request['name']} ~{request['fingerprint']}"
        _refuse_unknown_name(node, typed)
    return peer, name


#: The states of a message that never reached its recipient (nor may now: its
#: envelope left the outbox and its deposits are taken back when it was unsent).
_NOT_ARRIVED: Final = frozenset({"queued", "deposited"})
#: How such a message, unsent, is shown instead of its stale state.
_UNSENT_FIRST: Final = "unsent before it was delivered"

#: The characters of a base58 PeerID, and the length of the shortest (a CIDv0 "Qm…").
_BASE58: Final = frozenset("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
_MIN_PEER_ID_CHARS: Final = 46


def _looks_like_peer_id(text: str) -> bool:
    """True for text shaped like a PeerID (the node, not this light check, decides
    what it is; parsing one here would load the node's modules into the command)."""
    return len(text) >= _MIN_PEER_ID_CHARS and set(text) <= _BASE58


def _refuse_unknown_name(node: Client, typed: str) -> None:
    """Raise ConfigError if ``typed`` (which no contact goes by) is no PeerID either and
    this node has groups: the name may be a group's old one (a group renamed), so the one
    error says neither a contact nor a group goes by it and how to list the groups.
    Without groups, the node's own "no contact named …" stands (returns)."""
    if _looks_like_peer_id(typed) or not node.groups():
        return
    key = contact_name_key(typed)
    if any(typed == g["id"] or contact_name_key(g["name"]) == key for g in node.groups()):
        return  # a group's name after all (two groups share it): the node says so
    raise ConfigError(
        f"no contact or group named {typed[:60]!r}; `p2pdm group list` lists your groups"
    )


def _request_named(node: Client, typed: str) -> MessageRequest | None:
    """The message request from the stranger that goes by the name ``typed``
    (ignoring case), as ``requests`` lists it; None if no request has that name.
    Raises ConfigError if two strangers go by it: only the PeerID tells them apart."""
    key = typed.casefold()
    named = [r for r in node.requests() if r.get("name") and str(r["name"]).casefold() == key]
    if len(named) > 1:
        raise ConfigError(
            f"{typed!r} is the name of {len(named)} message requests; give the PeerID "
            "that `requests` lists for the one you mean"
        )
    return named[0] if named else None


def group_of_conversation(node: Client, conversation: str) -> bool:
    """Whether the conversation with this id is a group's (its id is the group's)."""
    return any(g["conversation"] == conversation for g in node.groups())


def _quiet_group(node: Client, typed: str) -> Mapping[str, Any] | None:
    """The group ``typed`` names (id, or a name no other group has) among groups with
    no conversation yet (nothing written in them); None if there is none."""
    key = contact_name_key(typed)
    groups = [g for g in node.groups() if typed == g["id"] or contact_name_key(g["name"]) == key]
    return groups[0] if len(groups) == 1 else None


def _conversation_name(conversation: Mapping[str, Any]) -> str:
    group = conversation.get("group")
    if group:
        return str(group["name"])
    return conversation["name"] or _short(conversation["peer"])


def _authors(node: Client, messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """PeerID -> how to show the author, for the members of the group of ``messages``
    (empty for a one-to-one conversation)."""
    group_id = next((m["group"] for m in messages if m.get("group")), None)
    if group_id is None:
        return {}
    names = {}
    for member in node.group(group_id)["members"]:
        name = member["name"]
        names[member["peer"]] = safe_text(name) if name else "~" + _short(member["peer"])
    return names


def _decorated(m: Mapping[str, Any], text: str) -> str:
    """A message's text with its quoted reply, edit mark, id and reactions."""
    reply = m.get("reply_to")
    if reply:
        quoted = reply["text"] if reply["available"] else "original message unavailable"
        text = f"> {quoted}\n{text}"
    if m.get("edited"):
        text += " (edited)"
    reactions = m.get("reactions") or {}
    if reactions:
        text += "  " + " ".join(f"{emoji}{len(peers)}" for emoji, peers in reactions.items())
    return text


def read(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        conversation, name = _find_conversation(node, args.contact)
        page = node.messages(conversation, limit=args.limit)
        node.mark_read(conversation)
        authors = {} if args.json else _authors(node, page["messages"])
        live = [] if args.json else node.live_locations(conversation)
    if args.json:
        _print_json(page, out)
        return EXIT_OK
    # Oldest first, like a chat: in the order this node stored them (receipt order).
    messages = list(reversed(page["messages"]))
    if not messages:
        print(f"No messages with {safe_text(name)} yet.", file=out)
    elif page["next_before"] is not None:
        print(f"(older messages not shown; use --limit up to {MAX_PAGE_SIZE})", file=out)

    def author(m: Mapping[str, Any]) -> str:
        if m["direction"] == "out":
            return "you"
        return authors.get(m["peer"], "~" + _short(m["peer"])) if authors else safe_text(name)

    # As wide as the authors shown here, no wider: "you  hi" when only you wrote.
    who_width = max((cell_len(author(m)) for m in messages), default=0)
    for m in messages:
        outgoing = m["direction"] == "out"
        who = author(m)
        detail = f": {safe_text(m['status_detail'])}" if m["status_detail"] else ""
        figures = delivery_words(m)  # a group message's, with why it waits or failed
        if figures and m["status_detail"]:
            figures += f" · {safe_text(m['status_detail'])}"
        status = f"  [{figures or m['status'] + detail}]" if outgoing else ""
        attached: list[str] = []
        if m.get("unsupported"):
            text = f"[unsupported message: {safe_text(m['kind'])}]"  # one line, whatever it says
        elif m.get("unsent"):
            text = f"[{who} unsent a message]"
            if outgoing and not figures and m["status"] in _NOT_ARRIVED:
                status = f"  [{_UNSENT_FIRST}]"  # not "held by mailboxes": taken back
        elif m.get("notice"):  # "Alice set disappearing messages to 1 day"
            text = f"— {'You' if outgoing else who} {safe_text(m['notice'])} —"
            status = ""
        else:
            attached = media_lines(m, safe_text)
            if m["text"] is not None:
                text = m["text"]
            elif attached:  # a file or place with no caption: it is the first line
                text = attached.pop(0)
            else:
                text = f"<{m['kind']} message>"
            text = _decorated(m, text)
        first, *rest = safe_text(text, multiline=True).split("\n")
        prefix = f"{_when(m['stored_at_ms'])}  {who}{' ' * (who_width - cell_len(who))}  "
        if args.ids:
            prefix = f"{m['id']}  {prefix}"
        print(f"{prefix}{first}{_sent_note(m)}{status}", file=out)
        for line in [*rest, *attached]:  # lined up under the text
            print(" " * cell_len(prefix) + line, file=out)
    for line in live_lines(live, safe_text(name), safe_text(args.contact), home, authors):
        print(line, file=out)
    return EXIT_OK
