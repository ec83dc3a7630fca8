"""``p2pdm block|unblock|requests``: blocked peers and strangers' message requests.

How this works: like the other chat commands these are clients of the
running node's local API (``/v1/blocked``, ``/v1/requests``); the node
resolves names. ``p2pdm block`` with no one named lists the blocked peers;
``p2pdm requests`` lists the pending requests, ``p2pdm requests accept|
decline|block PEER`` answers one.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, TextIO

from p2pdm import hints
from p2pdm.cli.chat import print_table, safe_text
from p2pdm.client import Client
from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError
from p2pdm.limits import MIN_PEER_PREFIX_CHARS

__all__ = [
    "block",
    "block_arguments",
    "requests",
    "requests_arguments",
    "stranger_label",
    "unblock",
    "unblock_arguments",
]


EXIT_OK: Final = 0
_ANSWERS: Final = ("accept", "decline", "block")


def block_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Block a contact or a stranger: what they send is dropped unseen and they are "
        "not told; you cannot write to them until you unblock them. With no one named, "
        "list the blocked peers."
    )
    parser.add_argument("who", nargs="?", metavar="NAME|PEERID|~FINGERPRINT")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def block(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        if args.who is None:
            found = node.blocked()
            if args.json:
                print(json.dumps(found, ensure_ascii=False, indent=2), file=out)
            elif not found:
                print("No one is blocked.", file=out)
            else:
                rows = [
                    [safe_text(b["name"] or "~" + b["fingerprint"]), b["peer_id"]] for b in found
                ]
                print_table(["NAME", "PEER ID"], rows, out)
            return EXIT_OK
        already = {b["peer_id"] for b in node.blocked()}
        blocked = node.block(args.who)
    if args.json:
        print(json.dumps(blocked, ensure_ascii=False, indent=2), file=out)
    elif blocked["peer_id"] in already:
        print(f"{_who(blocked)} was blocked already.", file=out)
    else:
        print(f"Blocked {_who(blocked)}. They are not told.", file=out)
    return EXIT_OK


def unblock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("who", metavar="NAME|PEERID|~FINGERPRINT")


def unblock(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        before = node.blocked()
        node.unblock(args.who)
        still = {b["peer_id"] for b in node.blocked()}
    gone = [b for b in before if b["peer_id"] not in still]
    print(f"Unblocked {_who(gone[0]) if gone else safe_text(args.who)}.", file=out)
    return EXIT_OK


def requests_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Message requests: what strangers (people not in your contacts) sent you. "
        "With no action, list them; accept adds the stranger as a contact, decline "
        "deletes the request, block blocks them and deletes it (they are told nothing)."
    )
    parser.add_argument("action", nargs="?", choices=_ANSWERS, metavar="accept|decline|block")
    parser.add_argument(
        "peer",
        nargs="?",
        metavar="WHO",
        help="the stranger: their PeerID, its first 12 characters or more, the fingerprint "
        "shown (~…), or the name they go by",
    )
    parser.add_argument(
        "--name", help="with accept: the name to give the new contact (else the name they go by)"
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def _matching(records: Iterable[Mapping[str, Any]], who: str) -> list[str]:
    """The PeerIDs of the ``records`` (requests or blocked peers, as the API lists
    them) that ``who`` names: the PeerID or its first MIN_PEER_PREFIX_CHARS
    characters or more, the fingerprint shown (``~`` optional), or the name it
    goes by (ignoring case)."""
    typed = who.strip()
    key = typed.casefold()
    return list(
        dict.fromkeys(
            str(r["peer_id"])
            for r in records
            if typed == r["peer_id"]
            or (len(typed) >= MIN_PEER_PREFIX_CHARS and str(r["peer_id"]).startswith(typed))
            or key.removeprefix("~") == str(r["fingerprint"]).casefold()
            or (r.get("name") and str(r["name"]).casefold() == key)
        )
    )


def _pending(node: Client, home: Home, who: str) -> str:
    """The PeerID of the stranger whose request ``who`` names, as the node
    resolves it: its PeerID or its first MIN_PEER_PREFIX_CHARS characters or
    more, the fingerprint the list shows (``~`` optional), or the name it goes
    by (ignoring case); a name two requests share is refused."""
    matches = _matching(node.requests(), who)
    listed = hints.command(home.path, "requests")
    if not matches:
        raise ConfigError(f"no message request from {who!r}; `{listed}` lists them")
    if len(matches) > 1:
        raise ConfigError(f"{who!r} names {len(matches)} requests; give the PeerID (`{listed}`)")
    return matches[0]


def requests(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    if args.action is not None and args.peer is None:
        raise ConfigError(f"name the stranger: p2pdm requests {args.action} PEERID|NAME")
    if args.name is not None and args.action != "accept":
        raise ConfigError("--name goes with accept: p2pdm requests accept WHO --name NAME")
    with Client.for_home(home) as node:
        if args.action is None:
            found = node.requests()
            if args.json:
                print(json.dumps(found, ensure_ascii=False, indent=2), file=out)
            elif not found:
                print("No message requests.", file=out)
            else:
                rows = [
                    [
                        stranger_label(r),
                        r["peer_id"],
                        str(r["count"]),
                        safe_text(r["preview"] or "(not text)"),
                    ]
                    for r in found
                ]
                print_table(["FROM", "PEER ID", "MESSAGES", "FIRST MESSAGE"], rows, out)
            return EXIT_OK
        peer = _pending(node, home, args.peer)
        if args.action == "accept":
            # Adding a stranger as a contact accepts its request: by name in one step.
            added = (
                node.accept_request(peer)
                if args.name is None
                else node.add_contact(peer, args.name)
            )
            print(f"Accepted: {_who(added)} is now a contact.", file=out)
        elif args.action == "decline":
            node.decline_request(peer)
            print(f"Declined the request of {safe_text(args.peer)}.", file=out)
        else:
            node.block_request(peer)
            print(f"Blocked {safe_text(args.peer)} and deleted the request.", file=out)
    return EXIT_OK


def stranger_label(request: Mapping[str, Any]) -> str:
    """How a request's sender is shown: the name it goes by (if it gave one) and
    its fingerprint, which it cannot choose."""
    name = request.get("name")
    fingerprint = "~" + str(request.get("fingerprint"))
    return f"{safe_text(str(name))} {fingerprint}" if name else fingerprint


def _who(peer: Mapping[str, Any]) -> str:
    """``name (PeerID)`` of a contact or blocked peer as the API gives it."""
    name = peer.get("name")
    shown = safe_text(str(name)) if name else "~" + str(peer.get("fingerprint"))
    return f"{shown} ({peer['peer_id']})"
