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
import importlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from typing import Any, Final, TextIO, cast

from p2pdm import __version__, hints
from p2pdm.daemon.home import ENV_HOME, ENV_PASSPHRASE, Home, default_display_name
from p2pdm.errors import HomeError, P2PDMError
from p2pdm.limits import INVITE_TTL_SECONDS

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

PROG: Final = "p2pdm"
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it


Arguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace, Home, TextIO], int]


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its help line, its options and what it does.

    ``add_arguments`` and ``run`` are functions, or ``"module:function"``
    names imported only when that command is used: `p2pdm --version`, or a
    command that only calls the running node's API, must not pay for
    importing libp2p, the session libraries or SQLite (checked by
    tests/cli/test_imports.py).
    """

    help: str
    add_arguments: Arguments | str
    run: Run | str

    def arguments_function(self) -> Arguments:
        return cast(Arguments, _load(self.add_arguments))

    def run_function(self) -> Run:
        return cast(Run, _load(self.run))


def _load(target: Any) -> Any:
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


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
    from p2pdm.core.invite import make_invite
    from p2pdm.core.prekeys import OwnPrekeys

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
    from p2pdm.client import Client

    try:
        with Client.for_home(home) as client:
            addrs = client.node().get("addrs", [])
    except P2PDMError:
        return []
    return [a for a in addrs if isinstance(a, str)] if isinstance(addrs, list) else []


def _draw_qr(text: str, out: TextIO) -> None:
    # Error correction L: the smallest symbol; a screen is not a crumpled label.
    import segno

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
        "p2pdm.cli.run:run_arguments",
        "p2pdm.cli.run:run",
    ),
    "id": Command("show your PeerID, name and invite", _id_arguments, _id),
    "status": Command(
        "what the running node is and holds: addresses, uptime, queue, DHT store",
        "p2pdm.cli.status:status_arguments",
        "p2pdm.cli.status:status",
    ),
    # Chat commands: clients of the running node's local API (p2pdm/cli/chat.py).
    "contacts": Command(
        "add, list or remove contacts",
        "p2pdm.cli.chat:contacts_arguments",
        "p2pdm.cli.chat:contacts",
    ),
    "send": Command(
        "send a message through the running node",
        "p2pdm.cli.chat:send_arguments",
        "p2pdm.cli.chat:send",
    ),
    "stop-live": Command(
        "stop sharing your live location with a contact",
        "p2pdm.cli.live:stop_live_arguments",
        "p2pdm.cli.live:stop_live",
    ),
    "save": Command(
        "save the files of a message (fetching them first if they wait)",
        "p2pdm.cli.media:save_arguments",
        "p2pdm.cli.media:save",
    ),
    "inbox": Command(
        "conversations, unread counts, message requests",
        "p2pdm.cli.chat:inbox_arguments",
        "p2pdm.cli.chat:inbox",
    ),
    "read": Command(
        "show a conversation with delivery status and mark it read",
        "p2pdm.cli.chat:read_arguments",
        "p2pdm.cli.chat:read",
    ),
    # Message actions (p2pdm/cli/actions.py).
    "react": Command(
        "react to a message with an emoji",
        "p2pdm.cli.actions:react_arguments",
        "p2pdm.cli.actions:react",
    ),
    "reply": Command(
        "reply to a message", "p2pdm.cli.actions:reply_arguments", "p2pdm.cli.actions:reply"
    ),
    "forward": Command(
        "send a copy of a message to another contact or group",
        "p2pdm.cli.actions:forward_arguments",
        "p2pdm.cli.actions:forward",
    ),
    "edit": Command(
        "change the text of your message (within 15 minutes)",
        "p2pdm.cli.actions:edit_arguments",
        "p2pdm.cli.actions:edit",
    ),
    "unsend": Command(
        "remove your message for everyone",
        "p2pdm.cli.actions:message_id_argument",
        "p2pdm.cli.actions:unsend",
    ),
    "delete": Command(
        "delete a message from this node only (--for-me)",
        "p2pdm.cli.actions:delete_arguments",
        "p2pdm.cli.actions:delete",
    ),
    "typing": Command(
        "tell a contact you are typing (once; only over a live connection)",
        "p2pdm.cli.actions:typing_arguments",
        "p2pdm.cli.actions:typing",
    ),
    "timer": Command(
        "set disappearing messages for a conversation (5m, 1h, 1d, 7d or off)",
        "p2pdm.cli.conversation:timer_arguments",
        "p2pdm.cli.conversation:timer",
    ),
    "mute": Command(
        "mute a conversation (no notifications; --off unmutes)",
        "p2pdm.cli.conversation:mute_arguments",
        "p2pdm.cli.conversation:mute",
    ),
    "archive": Command(
        "archive a conversation (--off brings it back)",
        "p2pdm.cli.conversation:archive_arguments",
        "p2pdm.cli.conversation:archive",
    ),
    "pin": Command(
        "pin a conversation to the top of the inbox (at most 5; --off unpins)",
        "p2pdm.cli.conversation:pin_arguments",
        "p2pdm.cli.conversation:pin",
    ),
    "search": Command(
        "find messages by their words, newest first",
        "p2pdm.cli.conversation:search_arguments",
        "p2pdm.cli.conversation:search",
    ),
    # Group chats (p2pdm/cli/groups.py): clients of the local API.
    "group": Command(
        "group chats: create, add, remove, leave, list, show, rename, admin, accept, decline",
        "p2pdm.cli.groups:group_arguments",
        "p2pdm.cli.groups:group",
    ),
    # Blocking and message requests (p2pdm/cli/requests.py).
    "block": Command(
        "block a contact or stranger (nothing they send is seen); alone: list blocked",
        "p2pdm.cli.requests:block_arguments",
        "p2pdm.cli.requests:block",
    ),
    "unblock": Command(
        "unblock a peer", "p2pdm.cli.requests:unblock_arguments", "p2pdm.cli.requests:unblock"
    ),
    "requests": Command(
        "strangers' message requests: list, accept, decline or block",
        "p2pdm.cli.requests:requests_arguments",
        "p2pdm.cli.requests:requests",
    ),
    "settings": Command(
        "show or change the node's settings (e.g. read receipts)",
        "p2pdm.cli.settings:settings_arguments",
        "p2pdm.cli.settings:settings",
    ),
    # Profiles and handles (p2pdm/cli/profile.py): clients of the local API too.
    "profile": Command(
        "show, publish or clear your profile (handle, name, bio, avatar)",
        "p2pdm.cli.profile:profile_arguments",
        "p2pdm.cli.profile:profile",
    ),
    "find": Command(
        "find the people who claim a handle",
        "p2pdm.cli.profile:find_arguments",
        "p2pdm.cli.profile:find",
    ),
    # Moving to a new machine (p2pdm/daemon/archive.py).
    "export": Command(
        "write the identity, store and settings to a passphrase-encrypted archive",
        "p2pdm.cli.archive:export_arguments",
        "p2pdm.cli.archive:export",
    ),
    "import": Command(
        "restore an archive from `p2pdm export` into an empty home",
        "p2pdm.cli.archive:import_arguments",
        "p2pdm.cli.archive:import_",
    ),
    # Works on the store file directly, with or without a running node.
    "token": Command(
        "create, list or revoke scoped API tokens for bots",
        "p2pdm.cli.token:token_arguments",
        "p2pdm.cli.token:token",
    ),
    # Asks the running node for a sign-in link (public API, owner's token).
    "ui": Command(
        "open the web app: a one-time sign-in link; list or revoke signed-in browsers",
        "p2pdm.cli.ui:ui_arguments",
        "p2pdm.cli.ui:ui",
    ),
    # Many nodes in one process, with faults and a delivery report (p2pdm/sim/).
    "sim": Command(
        "run a simulated network and report delivery figures",
        "p2pdm.cli.sim:sim_arguments",
        "p2pdm.cli.sim:sim",
    ),
}


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser that adds the command's options when first used.

    `p2pdm --help` lists every command from its help line alone; only the
    command being run (or asked for ``--help``) imports its module.
    """

    command: Command | None = None

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        command, self.command = self.command, None
        if command is not None:
            command.arguments_function()(self)
        return super().parse_known_args(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Peer-to-peer end-to-end encrypted direct messages.",
        epilog=f"The node home is --home, else ${ENV_HOME}, else the user data directory.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--home", metavar="DIR", help="the node home directory")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.help, description=command.help).command = command
    return parser


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _fail(message: str) -> int:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        # The parser (every command's) is not kept: a node runs for days without it.
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    # This process's own command line (the `p2pdm` command), not a call from
    # Python: a command may then run itself again (`p2pdm sim`, for replay).
    args.own_process = argv is None
    try:
        home = Home(args.home)
        home.config()  # a bad config.toml is reported before any work is done
        return COMMANDS[args.command].run_function()(args, home, sys.stdout)
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
