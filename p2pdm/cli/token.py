"""``p2pdm token create|list|revoke``: scoped API tokens for bots.

How this works: these commands open the node's store file themselves rather
than asking the running node, so they work whether or not a node runs (SQLite
in WAL mode lets them write beside it; the node reads the tokens on every
request, so a new token works and a revoked one stops at once). Only the
SHA-256 of a token is stored: ``create`` prints the secret once.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import closing
from typing import Final, TextIO

from p2pdm.cli.chat import print_table, safe_text
from p2pdm.core.model import TokenScope
from p2pdm.daemon.home import Home
from p2pdm.node.contact_names import resolve_contact
from p2pdm.node.messenger import wall_ms
from p2pdm.node.tokens import create_token, is_session, revoke_token, token_json

__all__ = ["token", "token_arguments"]

EXIT_OK: Final = 0
TIME_FORMAT: Final = "%Y-%m-%d %H:%M"


def token_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="make a token for a bot (the secret is shown once)",
        description="Make an API token. read: contacts, conversations, messages, events; "
        "send: also send and mark read; admin: also contacts, settings and tokens. "
        "--contact limits a read or send token to those contacts' conversations and events.",
    )
    create.add_argument("--scope", required=True, choices=[s.value for s in TokenScope])
    create.add_argument(
        "--contact",
        action="append",
        default=[],
        metavar="PEER",
        help="a contact's name or PeerID the token is limited to (repeatable)",
    )
    create.add_argument("--name", help="what to call the token (default: SCOPE-xxxxxx)")
    create.add_argument("--json", action="store_true", help="print the token as JSON")
    listing = actions.add_parser("list", help="list the tokens (never their secrets)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = actions.add_parser("revoke", help="revoke a token: it stops working at once")
    revoke.add_argument("name", metavar="NAME")


def token(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with closing(home.open_store()) as store:
        if args.action == "create":
            peers = [resolve_contact(store, who) for who in args.contact]
            made, secret = create_token(store, args.scope, peers, args.name, now_ms=wall_ms())
            if args.json:
                print(json.dumps(token_json(made) | {"token": secret}), file=out)
            else:
                limited = f", limited to {len(made.contacts)} contact(s)" if made.contacts else ""
                print(f"Token {made.name!r} (scope {made.scope.value}{limited}):", file=out)
                print(secret, file=out)
                print("Shown only this once; the node keeps only its hash.", file=out)
        elif args.action == "list":
            tokens = [t for t in store.list_tokens() if not is_session(t)]
            if args.json:
                print(json.dumps([token_json(t) for t in tokens], indent=2), file=out)
            elif not tokens:
                print("No tokens yet (the owner's is <home>/api_token).", file=out)
            else:
                rows = [
                    [
                        safe_text(t.name),
                        t.scope.value,
                        ", ".join(str(c) for c in t.contacts) or "all",
                        time.strftime(TIME_FORMAT, time.localtime(t.created_at_ms / 1000)),
                    ]
                    for t in tokens
                ]
                print_table(["NAME", "SCOPE", "CONTACTS", "CREATED"], rows, out)
        else:
            revoke_token(store, args.name)
            print(f"Revoked {safe_text(args.name)}.", file=out)
    return EXIT_OK
