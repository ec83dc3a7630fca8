"""Strangers flooding a node with message requests, over real nodes and real delivery.

Three fresh identities each push many requests at Bob while Alice, his
contact, writes to him. The caps are lowered through the store's and the
node's parameters so that a few hundred messages reach them.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus, EventType
from p2pdm.core.strangers import StrangerGate
from p2pdm.node.messenger import Received
from p2pdm.node.node import Node
from p2pdm.services.dm import Delivery
from p2pdm.store import MemoryStore, SQLiteStore, Store
from p2pdm.store.base import RequestCaps
from tests.fakenet import FakeNetwork

CAPS = RequestCaps(messages_per_peer=6, bytes_per_peer=2_000, messages=10, bytes=2_500)
MAX_EVENTS = 40
MAX_REQUEST_EVENTS = 12
STRANGERS = 3
FLOOD = 40  # requests per stranger
TEXT = "buy now! " * 30  # 270 bytes: the byte caps bite before the message caps


@dataclass
class Peer:
    node: Node
    delivery: Delivery


def peer(net: FakeNetwork, name: str, store: Store, gate: StrangerGate | None = None) -> Peer:
    node = Node(
        Identity(os.urandom(32)),
        store,
        now_ms=lambda: int(trio.current_time() * 1000),
        strangers=gate,
    )
    node.store.set_setting("name", name)
    delivery = Delivery(node, net.host(node.peer_id), rng=random.Random(len(name)))
    node.on_outbox = delivery.wake
    return Peer(node, delivery)


@pytest.fixture
async def bob_and_alice(
    nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[tuple[FakeNetwork, Peer, Peer]]:
    net = FakeNetwork(nursery)
    store = SQLiteStore(
        tmp_path / "bob.sqlite",
        synchronous="NORMAL",
        request_caps=CAPS,
        max_events=MAX_EVENTS,
        max_request_events=MAX_REQUEST_EVENTS,
    )
    gate = StrangerGate(rate_per_peer=0.5, burst_per_peer=4, rate=2, burst=8)
    bob = peer(net, "bob", store, gate)
    alice = peer(net, "alice", MemoryStore())
    alice.node.add_contact_from_invite(bob.node.invite())
    bob.node.add_contact_from_invite(alice.node.invite())
    for p in (alice, bob):
        await nursery.start(p.delivery.run)
    yield net, bob, alice
    store.close()


async def delivered(node: Node, message_id: str, limit: float) -> None:
    with trio.fail_after(limit):
        while node.message(message_id)[0].status is not DeliveryStatus.DELIVERED:  # noqa: ASYNC110
            await trio.sleep(0.05)


@pytest.mark.slow
async def test_a_request_flood_is_capped_and_never_costs_contacts_their_events(
    bob_and_alice: tuple[FakeNetwork, Peer, Peer], nursery: trio.Nursery, autojump_clock: object
) -> None:
    net, bob, alice = bob_and_alice
    first = alice.node.send_text(bob.node.peer_id, "hi bob, before the flood")
    await delivered(alice.node, first.id.hex(), 30)
    # A bot's cursor, taken before the flood: everything up to here read.
    cursor = bob.node.event_page(0, 500).cursor

    usage_seen = []

    def check(received: Received) -> None:  # after every commit of an accepted envelope
        usage = bob.node.store.request_usage()
        usage_seen.append(usage)
        assert usage.messages <= CAPS.messages and usage.bytes <= CAPS.bytes
        if received.outcome == "request":
            pending = bob.node.messages(received.sender).messages
            assert len(pending) <= CAPS.messages_per_peer
            assert sum(len(m.body) for m in pending) <= CAPS.bytes_per_peer

    bob.node.on_received = check
    strangers = []
    for n in range(STRANGERS):
        mallory = peer(net, f"mallory{n}", MemoryStore())
        mallory.node.add_contact_from_invite(bob.node.invite())  # one way: a stranger to Bob
        await nursery.start(mallory.delivery.run)
        strangers.append(mallory)
    flood = [
        (m, m.node.send_text(bob.node.peer_id, f"{TEXT} {i}").id.hex())
        for i in range(FLOOD)
        for m in strangers
    ]
    await trio.sleep(1)  # the flood is under way
    during = alice.node.send_text(bob.node.peer_id, "still there, bob?")
    await delivered(alice.node, during.id.hex(), 5)  # a contact is never held back
    assert bob.node.messenger.strangers.refused > 0  # strangers were told to retry
    for m, message_id in flood:  # nothing refused is lost: each got through in the end
        await delivered(m.node, message_id, 3_600)

    usage = bob.node.store.request_usage()
    assert usage.messages <= CAPS.messages and usage.bytes <= CAPS.bytes
    assert usage.dropped == STRANGERS * FLOOD - usage.messages
    assert bob.node.store.counts()["requests_dropped"] == usage.dropped
    assert all(u.messages <= CAPS.messages and u.bytes <= CAPS.bytes for u in usage_seen)
    for m in strangers:
        mine = bob.node.messages(m.node.peer_id).messages
        assert len(mine) <= CAPS.messages_per_peer
        assert sum(len(x.body) for x in mine) <= CAPS.bytes_per_peer

    # The bot resumes from its old cursor: no gap, and Alice's message is there,
    # although the strangers made far more events than the whole log keeps.
    assert bob.node.store.event_bounds()[1] - cursor > MAX_EVENTS + MAX_REQUEST_EVENTS
    page = bob.node.event_page(cursor, 500)
    assert page.gap is False and page.requests_gap is True
    received = [e.message_id for e in page.events if e.type is EventType.MESSAGE_RECEIVED]
    assert during.id in received
    contacts_only = bob.node.event_page(cursor, 500, peers={alice.node.peer_id})
    assert contacts_only.gap is False
    assert [e.message_id for e in contacts_only.events] == [during.id]
