"""Shared by the service tests: nodes that deliver through mailboxes, mailbox nodes, and
the ``world`` of both on the fake network (:mod:`tests.fakenet`)."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator

import pytest
import trio

from p2pdm.core import mailbox as mb
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import DeliveryStatus
from p2pdm.core.wire import Envelope
from p2pdm.errors import PeerUnreachable, ProtocolViolation, WireError
from p2pdm.net.stream import Stream
from p2pdm.node.node import Node
from p2pdm.services.dm import Delivery
from p2pdm.services.mailbox_client import MailboxDirectory
from p2pdm.services.mailbox_server import DEFAULT_LIMITS, MailboxService
from p2pdm.store import MemoryStore, Store
from tests.fakenet import FakeHost, FakeNetwork

DAY_S = 24 * 3600

#: What a client sees when the mailbox resets its stream.
BROKEN = (
    WireError,
    PeerUnreachable,
    ProtocolViolation,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


def clock_ms() -> int:
    return int(trio.current_time() * 1000)


class Peer:
    """A messaging node that uses mailboxes."""

    def __init__(self, net: FakeNetwork, name: str, preferred: tuple[str, ...] = ()) -> None:
        self.node = Node(Identity(os.urandom(32)), MemoryStore(), now_ms=clock_ms)
        self.node.store.set_setting("name", name)
        self.host: FakeHost = net.host(self.node.peer_id)
        self.directory = MailboxDirectory(self.node.identity, self.host, preferred=preferred)
        self.delivery = Delivery(
            self.node, self.host, rng=random.Random(1), mailboxes=self.directory
        )
        self.node.on_outbox = self.delivery.wake


class Box:
    """A mailbox node: a store, a host and the service."""

    def __init__(
        self,
        net: FakeNetwork,
        store: Store | None = None,
        identity: Identity | None = None,
        limits: mb.MailboxLimits = DEFAULT_LIMITS,
    ) -> None:
        self.identity = identity or Identity(os.urandom(32))
        self.store = store or MemoryStore()
        self.host = net.host(self.identity.peer_id)
        self.service = MailboxService(
            self.store, self.identity.peer_id, self.host, now_ms=clock_ms, limits=limits
        )

    @property
    def held(self) -> int:
        return self.store.mailbox_usage()[0]


async def start_box(nursery: trio.Nursery, box: Box) -> Box:
    await nursery.start(box.service.run)
    return box


#: The ``world`` fixture: the network, alice, bob and four mailboxes.
World = tuple[FakeNetwork, Peer, Peer, list[Box]]


@pytest.fixture
async def world(nursery: trio.Nursery) -> AsyncIterator[World]:
    net = FakeNetwork(nursery)
    alice, bob = Peer(net, "alice"), Peer(net, "bob")
    alice.node.add_contact_from_invite(bob.node.invite())
    bob.node.add_contact_from_invite(alice.node.invite())
    boxes = [await start_box(nursery, Box(net)) for _ in range(4)]
    for p in (alice, bob):
        await nursery.start(p.delivery.run)
    yield net, alice, bob, boxes


#: Bob's quota at the mailbox lowered to 40 envelopes: one depositor holds at
#: most 5 of them, and from 20 on each deposit needs a stamp (8 bits: cheap).
FAIR = mb.MailboxLimits(
    retention_s=DAY_S,
    max_envelope_bytes=100_000,
    per_recipient_count=40,
    per_recipient_bytes=1 << 20,
    total_count=10_000,
    total_bytes=1 << 30,
    depositor_share=8,
    stamp_bits=8,
)


async def wait_status(
    node: Node, message_id: str, status: DeliveryStatus, limit: float = 30
) -> None:
    with trio.fail_after(limit):
        while node.message(message_id)[0].status is not status:  # noqa: ASYNC110
            await trio.sleep(0.01)


async def ask(stream: Stream, request: mb.Request) -> mb.Reply:
    await stream.write_frame(request.encode(), 5)
    return mb.decode_reply(await stream.read_frame(mb.MAX_REPLY_FRAME_BYTES, 5) or b"")


def envelope_for(peer: PeerId) -> bytes:
    return Envelope.create(peer, clock_ms() // 1000 + DAY_S, os.urandom(100)).encode()
