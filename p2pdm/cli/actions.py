"""The message-action commands: react, reply, forward, edit, unsend, delete.

How this works: like :mod:`p2pdm.cli.chat`, each is a client of the running
node's local API; message ids are the 32 hex characters `p2pdm read --ids`
and `p2pdm send` print.
"""

from __future__ import annotations

import argparse
import sys
from typing import Final, TextIO

from p2pdm import hints
from p2pdm.cli.chat import message_text, safe_text
from p2pdm.client import Client
from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError

__all__ = [
    "delete",
    "delete_arguments",
    "edit",
    "edit_arguments",
    "forward",
    "forward_arguments",
    "message_id_argument",
    "react",
    "react_arguments",
    "reply",
    "reply_arguments",
    "typing",
    "typing_arguments",
    "unsend",
]

EXIT_OK: Final = 0


def message_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("message", metavar="MESSAGE_ID", help="the message (32 hex characters)")


def react_arguments(parser: argparse.ArgumentParser) -> None:
    message_id_argument(parser)
    parser.add_argument("emoji", metavar="EMOJI", help="one emoji; '' takes your reaction back")


def react(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        reacted = node.react(args.message, args.emoji)
    if args.emoji:
        print(f"Reacted {safe_text(args.emoji)} on {args.message}.", file=out)
    elif reacted.get("removed") is False:
        print(f"You had no reaction on {args.message}: nothing to take back.", file=out)
    else:
        print(f"Took your reaction back on {args.message}.", file=out)
    return EXIT_OK


def reply_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("contact", metavar="CONTACT", help="name or PeerID")
    message_id_argument(parser)
    parser.add_argument("text", metavar="TEXT", nargs="+", help="the reply; `-` reads stdin")


def reply(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    text = message_text(args.text, sys.stdin)
    with Client.for_home(home) as node:
        message = node.send(args.contact, text, reply_to=args.message)
    print(f"Reply {message['id']} to {safe_text(args.contact)}: {message['status']}.", file=out)
    return EXIT_OK


def forward_arguments(parser: argparse.ArgumentParser) -> None:
    message_id_argument(parser)
    parser.add_argument("to", metavar="TO", help="a contact (name or PeerID) or a group")


def forward(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    """Send a copy of a message (text, files and caption, or place) to another chat."""
    with Client.for_home(home) as node:
        original = node.message(args.message)
        waiting = [
            item["name"]
            for item in original.get("media") or ()
            if item["state"] not in ("local", "ready")
        ]
        if waiting:
            save = hints.command(home.path, "save", args.message)
            raise ConfigError(
                f"{safe_text(waiting[0])} is not on this node yet: `{save}` fetches it; "
                "then forward"
            )
        copy = node.forward(args.message, args.to)
    print(
        f"Forwarded {args.message} to {safe_text(args.to)} as {copy['id']}: {copy['status']}.",
        file=out,
    )
    return EXIT_OK


def edit_arguments(parser: argparse.ArgumentParser) -> None:
    message_id_argument(parser)
    parser.add_argument("text", metavar="TEXT", nargs="+", help="the new text; `-` reads stdin")


def edit(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    text = message_text(args.text, sys.stdin)
    with Client.for_home(home) as node:
        node.edit(args.message, text)
    print(f"Edited {args.message}.", file=out)
    return EXIT_OK


def unsend(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        before = node.message(args.message)
        if before["direction"] != "out":
            delete = hints.command(home.path, "delete", args.message, "--for-me")
            raise ConfigError(
                f"only the author may unsend a message; `{delete}` deletes it from this node only"
            )
        node.unsend(args.message)
    if before["unsent"]:
        print(f"{args.message} was unsent already: nothing more to send.", file=out)
    else:
        print(f"Unsent {args.message} for everyone.", file=out)
    return EXIT_OK


def delete_arguments(parser: argparse.ArgumentParser) -> None:
    message_id_argument(parser)
    parser.add_argument(
        "--for-me",
        action="store_true",
        required=True,
        help="delete it from this node only (to remove your own message for everyone, "
        "use `p2pdm unsend`)",
    )


def delete(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        node.delete_for_me(args.message)
    print(f"Deleted {args.message} from this node.", file=out)
    return EXIT_OK


def typing_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Tell a contact you are typing, once: they see it for a few seconds, if you "
        "are connected now (it is never queued or kept)."
    )
    parser.add_argument("contact", metavar="CONTACT", help="name or PeerID")


def typing(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        result = node.typing(args.contact)
    who = safe_text(args.contact)
    if result.get("sent"):
        print(f"{who} sees that you are typing.", file=out)
    else:
        print(f"Not sent to {who}: {safe_text(str(result.get('reason')))}.", file=out)
    return EXIT_OK


#: (name, help, arguments, run) of each command, for ``p2pdm.cli.main.COMMANDS``.
