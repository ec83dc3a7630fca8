"""Helpers shared by tests of several folders.

Each folder's own helpers are in its conftest.py; what more than one folder
uses is here: a free port, the fast KDF, homes, and nodes serving the local
API in this trio loop or in a thread.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import hypothesis.core
import nacl.pwhash.argon2id as argon2id
import pytest
import trio
from hypothesis import settings
from hypothesis.vendor.pretty import RepresentationPrinter

from p2pdm import limits
from p2pdm.api import serve_api
from p2pdm.core.identity import Identity, PeerId
from p2pdm.daemon.home import Home, KdfLimits
from p2pdm.daemon.runner import Running, RunOptions, run_node
from p2pdm.net.upkeep import Upkeep
from p2pdm.node.node import Node
from p2pdm.sim.network import SIM_REQUEST_STAMP_BITS
from p2pdm.store.memory import MemoryStore

# The cheapest argon2id cost libsodium allows: the format is the same, the
# tests stay fast. DEFAULT_KDF_LIMITS is exercised by the CLI tests.
# Hypothesis times each example and fails one slower than 200 ms: a timing
# assertion, and this shared 2-core machine runs slower under load.
settings.register_profile("p2pdm", deadline=None)
settings.load_profile("p2pdm")

FAST_KDF = KdfLimits(argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN)
TOKEN = "test-token-" + "x" * 32
#: Every wait in these tests ends: a hung server fails the test instead.
WAIT_S = 5.0
#: Request stamps in tests prove as many bits as in a simulation (256 hashes
#: on average), so nodes a test makes and the ``sim_network`` fixture's agree:
#: the format and the checks are the same, the tests stay fast. The real
#: cost (limits.REQUEST_STAMP_BITS) is exercised by a slow test.
FAST_STAMP_BITS = SIM_REQUEST_STAMP_BITS


@pytest.fixture(autouse=True)
def _fast_request_stamps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node a test makes asks and pays FAST_STAMP_BITS for a request stamp."""
    monkeypatch.setattr(limits, "REQUEST_STAMP_BITS", FAST_STAMP_BITS)


@pytest.fixture(autouse=True)
def _hypothesis_prints_failing_examples(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing schemathesis swaps Hypothesis' printer, for the whole run, for
    one that prints nothing (its generated API cases are costly to print): a
    failing property would show an empty example (``size=,``). Every property
    test but schemathesis' own prints its example again."""
    if getattr(request.function, "is_hypothesis_test", False) and not hasattr(
        request.module, "schemathesis"
    ):
        monkeypatch.setattr(hypothesis.core, "RepresentationPrinter", RepresentationPrinter)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


# --- whole nodes (``run_node``) on loopback, with a home and the local API ---------


LOOPBACK = ("/ip4/127.0.0.1/tcp/0",)
#: Short upkeep periods so bootstrap re-dials and refreshes happen within a test.
UPKEEP = Upkeep(
    interval=0.5, idle_timeout=30.0, dht_refresh_interval=5.0, bootstrap_retry_interval=1.0
)


@dataclass
class Peer:
    running: Running
    home: Home
    http: httpx.AsyncClient
    scope: trio.CancelScope

    @property
    def id(self) -> str:
        return str(self.running.node.peer_id)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None


def home_with_identity(path: Path, name: str) -> Home:
    """A home at ``path`` with no passphrase; made with an identity named ``name`` if new."""
    home = Home(path, env={})
    if not home.has_identity():
        home.create_identity(name)
    return home


@asynccontextmanager
async def node(
    tmp_path: Path,
    name: str,
    *bootstrap: Running | str,
    mailbox: bool = False,
    mailbox_peers: tuple[str, ...] = (),
) -> AsyncIterator[Peer]:
    """A running node; leaving the block (or cancelling ``scope``) stops it.

    ``bootstrap``: running nodes, or full addresses of other peers;
    ``mailbox_peers``: the mailboxes it names in its record (full addresses).
    """
    home = home_with_identity(tmp_path / name, name)
    options = RunOptions(
        listen=LOOPBACK,
        api=("127.0.0.1", 0),
        bootstrap=tuple(b if isinstance(b, str) else b.node.addrs[0] for b in bootstrap),
        mailbox=mailbox,
        mailbox_peers=mailbox_peers,
        upkeep=UPKEEP,
    )
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(run_node, home, options)
        host, port = running.api
        async with httpx.AsyncClient(
            base_url=f"http://{host}:{port}",
            headers={"Authorization": f"Bearer {home.api_token()}"},
        ) as http:
            yield Peer(running, home, http, nursery.cancel_scope)
        nursery.cancel_scope.cancel()


async def status_of(peer: Peer, message_id: str) -> str:
    status: str = (await peer.call("GET", f"/v1/messages/{message_id}"))["status"]
    return status


async def wait_for_status(peer: Peer, message_id: str, wanted: str, deadline: float) -> None:
    with trio.fail_after(deadline):
        while await status_of(peer, message_id) != wanted:  # noqa: ASYNC110 - polls the API
            await trio.sleep(0.05)


# --- nodes and their API, in this process -------------------------------------------


def make_node(name: str) -> Node:
    """A node with a fresh identity and an in-memory store, named ``name``."""
    node = Node(Identity.generate(os.urandom(32)), MemoryStore())
    node.update_settings({"name": name})
    return node


def deliver(sender: Node, recipient: Node) -> list[PeerId]:
    """Hand ``recipient`` what ``sender`` queued for it, as the delivery service would;
    returns who ``recipient`` says sent each."""
    senders = []
    for item in sender.store.outbox_for(recipient.peer_id):
        senders.append(recipient.messenger.receive(item.envelope).sender)
        sender.store.remove_outbox(item.envelope_id)
    return senders


@dataclass
class Api:
    node: Node
    port: int
    http: httpx.AsyncClient  # sends the right token

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, **kwargs)


@asynccontextmanager
async def serving(node: Node, home: Path | None = None) -> AsyncIterator[Api]:
    """``node``'s API on 127.0.0.1 in this trio loop, and a client with the owner's token
    (``home``: the node's home, as the daemon names it to the API)."""
    async with trio.open_nursery() as nursery:
        with trio.fail_after(WAIT_S):
            host, port = await nursery.start(
                partial(serve_api, node, TOKEN, "127.0.0.1", 0, home=home)
            )
        assert host == "127.0.0.1" and port > 0
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=WAIT_S,
        ) as http:
            yield Api(node, port, http)
        nursery.cancel_scope.cancel()


class serving_in_thread:
    """Serve ``node``'s API from trio in a thread, for clients on other event loops."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.port: int | None = None
        self.ready = threading.Event()
        self.stop: trio.CancelScope | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self.thread = threading.Thread(target=trio.run, args=(self._serve,), daemon=True)

    async def _serve(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self.stop = nursery.cancel_scope
            _, self.port = await nursery.start(serve_api, self.node, TOKEN, "127.0.0.1", 0)
            self.ready.set()

    def __enter__(self) -> int:
        self.thread.start()
        assert self.ready.wait(WAIT_S) and self.port is not None
        return self.port

    def __exit__(self, *exc_info: object) -> None:
        assert self.token is not None and self.stop is not None
        trio.from_thread.run_sync(self.stop.cancel, trio_token=self.token)
        self.thread.join(WAIT_S)
