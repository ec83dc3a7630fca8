"""``p2pdm run``: the node in the foreground until SIGINT or SIGTERM.

How this works: the command resolves its options (command line over
``config.toml``), sets up logging to stderr and calls :func:`trio.run` on
:func:`p2pdm.daemon.runner.run_node` inside a signal receiver. The first SIGINT or
SIGTERM cancels the node, which then closes the API, the host and the store
in order (libp2p needs that path: leaving its host any other way leaves
connections open). Exit status 0 after a signal.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Final, TextIO

import trio

from p2pdm.daemon.export_mark import check_not_exported
from p2pdm.daemon.home import Home
from p2pdm.daemon.runner import RunOptions, run_node

__all__ = ["run", "run_arguments"]

log = logging.getLogger("p2pdm.node.node")

LOG_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="libp2p listen address, repeatable (default /ip4/0.0.0.0/tcp/4701)",
    )
    parser.add_argument(
        "--api", metavar="HOST:PORT", help="local API address (default 127.0.0.1:4780)"
    )
    parser.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="DHT peer to join through (…/p2p/<PeerID>), repeatable; adds to config.toml's",
    )
    parser.add_argument(
        "--dht-mode",
        choices=("auto", "server", "client"),
        default="auto",
        help="server: answer DHT queries; client: do not; auto (default): serve them "
        "only while other nodes can dial this one (checked with AutoNAT)",
    )
    parser.add_argument(
        "--mailbox",
        action="store_true",
        help="offer the mailbox service: hold envelopes for nodes that are offline",
    )
    parser.add_argument(
        "--mailbox-peer",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="a mailbox you prefer for your messages (…/p2p/<PeerID>), repeatable",
    )
    parser.add_argument(
        "--no-demo",
        action="store_true",
        help="do not offer (or run) the local demo bot the web app offers newcomers",
    )
    parser.add_argument(
        "--relay",
        action="store_true",
        help="offer circuit relay v2: let nodes behind NAT be reached through this one "
        "(within limits; announced in the DHT)",
    )
    parser.add_argument(
        "--relay-peer",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="a relay to use when this node is behind NAT (…/p2p/<PeerID>), repeatable",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="run as a community helper on a server: DHT server, relay and mailbox "
        "(same as --dht-mode server --relay --mailbox --no-mdns; see docs/operating.md)",
    )
    parser.add_argument(
        "--no-mdns",
        action="store_true",
        help="do not look for p2pdm nodes on the local network (mDNS), nor announce this one",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--force",
        action="store_true",
        help="run although this home was exported (`p2pdm export`); clears that mark",
    )


def run(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    serve = bool(args.serve)
    options = RunOptions.resolve(
        home,
        listen=args.listen,
        api=args.api,
        bootstrap=args.bootstrap,
        dht_mode="server" if serve else args.dht_mode,
        mailbox=args.mailbox or serve,
        mailbox_peers=args.mailbox_peer,
        demo=not args.no_demo,
        relay=args.relay or serve,
        relay_peers=args.relay_peer,
        mdns=not (args.no_mdns or serve),
    )
    if check_not_exported(home, force=args.force) is not None:
        print("The export mark is cleared: run this copy only.", file=sys.stderr)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    try:
        trio.run(_run_until_signal, home, options)
    except BaseExceptionGroup as group:
        raise _sole_error(group) from None
    return 0


def _sole_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error inside nested groups (a taken port, a locked home), so the
    CLI can report it in one line; the group itself when there are several."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else group


async def _run_until_signal(home: Home, options: RunOptions) -> None:
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, nursery.cancel_scope)
            await nursery.start(run_node, home, options)


async def _stop_on_signal(signals: trio.abc.ReceiveChannel[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.info("stopping (%s); the outbox is kept for the next run", signal.Signals(signum).name)
        scope.cancel()
        return
