"""The ``p2pdm`` command line.

How this works: every subcommand is a small function registered in
:data:`COMMANDS` with its help text and its own options; :func:`main` builds
the parser from that table, resolves the node home and runs the command.
Expected failures (any :class:`~p2pdm.errors.P2PDMError`, or the operating
system refusing a file) become one line ``p2pdm: error: …`` on stderr and
exit status 1; usage errors exit 2, as argparse does. No traceback is shown
for them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from typing import Final, TextIO

import segno

from p2pdm import __version__, hints
from p2pdm.cli import archive as cli_archive
from p2pdm.cli import chat as cli_chat
from p2pdm.cli import requests as cli_requests
from p2pdm.cli import run as cli_run
from p2pdm.cli import settings as cli_settings
from p2pdm.cli import sim as cli_sim
from p2pdm.cli import status as cli_status
from p2pdm.cli import token as cli_token
from p2pdm.client import Client
from p2pdm.core.invite import make_invite
from p2pdm.core.session import OwnPrekeys
from p2pdm.daemon.home import ENV_HOME, ENV_PASSPHRASE, Home, default_display_name
from p2pdm.errors import HomeError, P2PDMError
from p2pdm.limits import INVITE_TTL_SECONDS

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

PROG: Final = "p2pdm"
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its help line, its options and what it does."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Home, TextIO], int]


# --- init ------------------------------------------------------------------


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="display name shown to contacts (default: login name)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing identity (the old one and its store are kept aside)",
    )


def _init(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    name = args.name if args.name is not None else default_display_name()
    created = home.create_identity(name, force=args.force)
    if created.encrypted:
        protection = f"encrypted with the passphrase in {ENV_PASSPHRASE}"
    else:
        protection = f"not encrypted; set {ENV_PASSPHRASE} before `p2pdm init` to encrypt it"
    print(
        f"Created the identity of {created.name} ({created.identity.peer_id}) in {home.path}",
        file=out,
    )
    print(f"The identity file is {protection}.", file=out)
    if created.replaced_dir is not None:
        print(f"The previous identity and store were moved to {created.replaced_dir}", file=out)
    print(f"Run `{hints.command(home.path, 'id')}` to see your invite.", file=out)
    return EXIT_OK


# --- id --------------------------------------------------------------------


def _id_arguments(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--qr", action="store_true", help="also draw the invite as a QR code")
    output.add_argument("--json", action="store_true", help="print one JSON object")


def _id(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    identity = home.load_identity()
    with closing(home.open_store()) as store:
        name = store.get_setting("name")
        prekeys = store.get_prekeys()
    if not isinstance(name, str) or prekeys is None:
        raise HomeError(
            f"the store in {home.path} is incomplete; "
            f"run `{hints.command(home.path, 'init', '--force')}` to start over"
        )
    bundle = OwnPrekeys.from_bytes(identity, prekeys).bundle()
    now_s = int(home.clock())
    addrs = _running_node_addrs(home)
    invite = make_invite(identity, name, addrs, bundle, now_s, INVITE_TTL_SECONDS)
    if args.json:
        record = {
            "peer_id": str(identity.peer_id),
            "name": name,
            "addrs": addrs,
            "invite": invite,
            "invite_expires_at_s": now_s + INVITE_TTL_SECONDS,
            "home": str(home.path),
        }
        print(json.dumps(record, ensure_ascii=False), file=out)
        return EXIT_OK
    print(f"PeerID  {identity.peer_id}", file=out)
    print(f"Name    {name}", file=out)
    if args.qr:
        _draw_qr(invite, out)
    print(f"Invite  {invite}", file=out)
    return EXIT_OK


def _running_node_addrs(home: Home) -> list[str]:
    """The addresses of the home's running node, for the invite; [] if none runs."""
    try:
        with Client.for_home(home) as client:
            addrs = client.node().get("addrs", [])
    except P2PDMError:
        return []
    return [a for a in addrs if isinstance(a, str)] if isinstance(addrs, list) else []


def _draw_qr(text: str, out: TextIO) -> None:
    # Error correction L: the smallest symbol; a screen is not a crumpled label.
    qr = segno.make(text, error="L")
    print(file=out)
    qr.terminal(out=out, compact=True)
    print(file=out)
    width, _ = qr.symbol_size()
    if out.isatty() and shutil.get_terminal_size().columns < width:
        print(
            f"{PROG}: note: the QR code is {width} columns wide; widen the terminal to scan it",
            file=sys.stderr,
        )


#: Every subcommand, in the order `p2pdm --help` lists them. Only commands
#: that work are registered here.
COMMANDS: Final[dict[str, Command]] = {
    "init": Command("create the identity and the message store", _init_arguments, _init),
    "run": Command(
        "run the node in the foreground (network, delivery, local API)",
        cli_run.run_arguments,
        cli_run.run,
    ),
    "id": Command("show your PeerID, name and invite", _id_arguments, _id),
    "status": Command(
        "what the running node is and holds: addresses, uptime, queue, DHT store",
        cli_status.status_arguments,
        cli_status.status,
    ),
    # Chat commands: clients of the running node's local API (p2pdm/cli/chat.py).
    "contacts": Command(
        "add, list or remove contacts", cli_chat.contacts_arguments, cli_chat.contacts
    ),
    "send": Command(
        "send a message through the running node", cli_chat.send_arguments, cli_chat.send
    ),
    "inbox": Command(
        "conversations, unread counts, message requests", cli_chat.inbox_arguments, cli_chat.inbox
    ),
    "read": Command(
        "show a conversation with delivery status and mark it read",
        cli_chat.read_arguments,
        cli_chat.read,
    ),
    "block": Command(
        "block a contact or stranger (nothing they send is seen); alone: list blocked",
        cli_requests.block_arguments,
        cli_requests.block,
    ),
    "unblock": Command("unblock a peer", cli_requests.unblock_arguments, cli_requests.unblock),
    "requests": Command(
        "strangers' message requests: list, accept, decline or block",
        cli_requests.requests_arguments,
        cli_requests.requests,
    ),
    "settings": Command(
        "show or change the node's settings (e.g. read receipts)",
        cli_settings.settings_arguments,
        cli_settings.settings,
    ),
    # Moving to a new machine (p2pdm/daemon/archive.py).
    "export": Command(
        "write the identity, store and settings to a passphrase-encrypted archive",
        cli_archive.export_arguments,
        cli_archive.export,
    ),
    "import": Command(
        "restore an archive from `p2pdm export` into an empty home",
        cli_archive.import_arguments,
        cli_archive.import_,
    ),
    # Works on the store file directly, with or without a running node.
    "token": Command(
        "create, list or revoke scoped API tokens for bots",
        cli_token.token_arguments,
        cli_token.token,
    ),
    # Many nodes in one process, with faults and a delivery report (p2pdm/sim/).
    "sim": Command(
        "run a simulated network and report delivery figures", cli_sim.sim_arguments, cli_sim.sim
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Peer-to-peer end-to-end encrypted direct messages.",
        epilog=f"The node home is --home, else ${ENV_HOME}, else the user data directory.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--home", metavar="DIR", help="the node home directory")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _fail(message: str) -> int:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    # This process's own command line (the `p2pdm` command), not a call from
    # Python: a command may then run itself again (`p2pdm sim`, for replay).
    args.own_process = argv is None
    try:
        home = Home(args.home)
        home.config()  # a bad config.toml is reported before any work is done
        return COMMANDS[args.command].run(args, home, sys.stdout)
    except P2PDMError as exc:
        return _fail(str(exc) or (type(exc).__doc__ or type(exc).__name__))
    except BrokenPipeError:
        # The reader went away (`p2pdm id | head`): stop quietly, as cat does.
        with suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
