"""Helpers shared by tests of several folders.

Each folder's own helpers are in its conftest.py; what more than one folder
uses is here: a free port, the fast KDF, homes, and nodes serving the local
API in this trio loop or in a thread.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from p2pdm.api import serve_api
from p2pdm.core.identity import Identity, PeerId
from p2pdm.node.node import Node
from p2pdm.store.memory import MemoryStore

TOKEN = "test-token-" + "x" * 32
#: Every wait in these tests ends: a hung server fails the test instead.
WAIT_S = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
async def serving(node: Node) -> AsyncIterator[Api]:
    """``node``'s API on 127.0.0.1 in this trio loop, and a client with the owner's token."""
    async with trio.open_nursery() as nursery:
        with trio.fail_after(WAIT_S):
            host, port = await nursery.start(serve_api, node, TOKEN, "127.0.0.1", 0)
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
