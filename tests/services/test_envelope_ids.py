"""Envelope ids bound to content, and replays judged on the authenticated message.

The attack these tests perform: a mailbox operator reads the ids of the
envelopes it holds for an offline recipient, withholds them, and has a
stranger's node deposit (or deliver) its own valid envelopes for the same
recipient under those ids, so that the genuine envelopes would later be
dropped as replays and acked "already stored". Real nodes, delivery
services and mailbox services, joined by ``tests.fakenet``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from p2pdm.core import mailbox as mb
from p2pdm.core.dm import DM_PROTOCOL, Ack, Deliver, decode_ack
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.core.model import DeliveryStatus
from p2pdm.core.ratelimit import FAILURE_LOG_FIRST, FAILURE_LOG_WINDOW_SECONDS
from p2pdm.core.replay import ENVELOPE_IDS_BOUND, ENVELOPE_IDS_SETTING
from p2pdm.core.wire import Envelope
from p2pdm.limits import MAX_CONTROL_FRAME_BYTES
from p2pdm.net.stream import Stream
from p2pdm.node.messenger import Messenger
from p2pdm.node.node import Node
from p2pdm.services.dm import SCHEDULER_MAX_SLEEP, Delivery
from p2pdm.store import SQLiteStore
from tests.fakenet import FakeNetwork
from tests.services.conftest import Box, Peer, World, clock_ms, wait_status


def held_for(boxes: list[Box], peer: PeerId) -> list[tuple[Box, StoredEnvelope]]:
    return [
        (box, item)
        for box in boxes
        for item in box.store.mailbox_fetch(peer, 0, clock_ms(), mb.MAX_FETCH_ITEMS)
    ]


def stranger_envelopes(stranger: Peer, bob: Peer, count: int) -> list[Envelope]:
    """Valid envelopes from ``stranger`` for ``bob``, as its outbox holds them."""
    for i in range(count):
        stranger.node.messenger.send_text(bob.node.peer_id, f"spoof {i}")
    queued = stranger.node.store.outbox_for(bob.node.peer_id)
    return [Envelope.decode(item.envelope) for item in queued]


async def deliver(stream: Stream, envelopes: list[bytes], first_seq: int = 1) -> list[Ack]:
    """Write ``deliver`` frames for ``envelopes`` on a dm stream; the acks, in order."""
    for seq, envelope in enumerate(envelopes, first_seq):
        await stream.write_frame(Deliver(seq, envelope).encode(), 5)
    acks = []
    for _ in envelopes:
        frame = await stream.read_frame(MAX_CONTROL_FRAME_BYTES, 5)
        assert frame is not None
        acks.append(decode_ack(frame))
    return acks


def statuses(peer: Peer, ids: list[bytes]) -> list[DeliveryStatus]:
    return [peer.node.message(i.hex())[0].status for i in ids]


async def test_a_mailbox_cannot_swap_a_strangers_envelopes_in_under_withheld_ids(
    world: World,
    autojump_clock: trio.abc.Clock,
) -> None:
    net, alice, bob, boxes = world
    stranger = Peer(net, "stranger")
    stranger.node.add_contact_from_invite(bob.node.invite())
    bob_id = bob.node.peer_id
    bob.host.online = False
    sent = [await alice.node.send(bob_id, f"genuine {i}") for i in range(2)]
    for message in sent:
        await wait_status(alice.node, message.id.hex(), DeliveryStatus.DEPOSITED)
    # The operator reads the ids of alice's envelopes, then withholds them.
    held = held_for(boxes, bob_id)
    withheld = sorted({Envelope.decode(item.envelope).id for _, item in held})
    assert len(withheld) == 2
    for box, item in held:
        box.store.mailbox_delete(bob_id, [item.seq])
    alice.host.online = False  # no direct retry meanwhile: only the mailboxes can tell bob

    forged = [
        Envelope(bob_id, eid, env.expires_at_s, env.sealed).encode()
        for eid, env in zip(withheld, stranger_envelopes(stranger, bob, 2), strict=True)
    ]
    # An honest mailbox refuses them.
    box = boxes[0]
    results = await stranger.delivery.mailbox_client.deposit(box.identity.peer_id, [], forged)
    assert [r.code for r in results] == [mb.BAD_ID, mb.BAD_ID]
    assert not held_for(boxes, bob_id)
    # The operator's own mailbox stores them anyway; bob refuses them on fetch.
    for envelope in forged:
        item = StoredEnvelope(bob_id, Envelope.decode(envelope).id, envelope, clock_ms(), 1 << 50)
        box.store.mailbox_add(item)
    bob.host.online = True
    assert await bob.delivery.fetch_mailboxes() == 0
    assert not held_for(boxes, bob_id)  # refused for good, so deleted there
    assert bob.node.store.counts()["messages"] == 0
    assert statuses(alice, [m.id for m in sent]) == [DeliveryStatus.DEPOSITED] * 2

    # Alice's genuine envelopes, retried directly, are stored, not taken for replays.
    alice.host.online = True
    alice.delivery.retry_now(bob_id)
    for message in sent:
        await wait_status(alice.node, message.id.hex(), DeliveryStatus.DELIVERED, limit=600)
    stored = bob.node.messages(alice.node.peer_id).messages
    assert sorted(m.id for m in stored) == sorted(m.id for m in sent)
    assert {m.peer for m in stored} == {alice.node.peer_id}


async def test_a_strangers_envelope_under_alices_id_is_refused_directly(
    world: World,
    autojump_clock: trio.abc.Clock,
) -> None:
    net, alice, bob, _ = world
    stranger = Peer(net, "stranger")
    stranger.node.add_contact_from_invite(bob.node.invite())
    bob_id = bob.node.peer_id
    bob.host.online = False
    sent = await alice.node.send(bob_id, "genuine")
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DEPOSITED)
    alice.host.online = False
    (alices_item,) = alice.node.store.outbox_for(bob_id)
    (theirs,) = stranger_envelopes(stranger, bob, 1)
    forged = Envelope(bob_id, alices_item.envelope_id, theirs.expires_at_s, theirs.sealed)

    bob.host.online = True
    async with await stranger.host.open_stream(bob_id, DM_PROTOCOL) as stream:
        (ack,) = await deliver(stream, [forged.encode()])
    assert (ack.result, ack.detail) == ("rejected", "EnvelopeIdMismatch")
    assert bob.node.store.counts()["messages"] == 0
    assert alice.node.message(sent.id.hex())[0].status is DeliveryStatus.DEPOSITED

    alice.host.online = True
    alice.delivery.retry_now(bob_id)
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DELIVERED, limit=600)
    assert [m.id for m in bob.node.messages(alice.node.peer_id).messages] == [sent.id]


async def test_the_same_envelope_again_after_a_restart_is_already_stored(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """A sender that lost the ack resends the very same bytes: ``ok``, stored once."""
    net = FakeNetwork(nursery)
    alice = Peer(net, "alice")
    bob_identity = Identity(os.urandom(32))

    def bob_on(path: Path) -> Node:
        node = Node(bob_identity, SQLiteStore(path), now_ms=clock_ms)
        node.store.set_setting("name", "bob")
        Delivery(node, net.host(node.peer_id))  # serves /p2pdm/dm on bob's host
        return node

    bob = bob_on(tmp_path / "bob.sqlite")
    alice.node.add_contact_from_invite(bob.invite())
    bob.add_contact_from_invite(alice.node.invite())
    out = alice.node.messenger.send_text(bob.peer_id, "once")
    async with await alice.host.open_stream(bob.peer_id, DM_PROTOCOL) as stream:
        (first,) = await deliver(stream, [out.outbox.envelope])
    assert (first.result, first.detail) == ("ok", "")
    bob.store.close()

    bob = bob_on(tmp_path / "bob.sqlite")  # restarted on the same store
    async with await alice.host.open_stream(bob.peer_id, DM_PROTOCOL) as stream:
        (again,) = await deliver(stream, [out.outbox.envelope])
    assert (again.result, again.detail) == ("ok", "already stored")
    assert bob.store.counts()["messages"] == 1


@pytest.mark.slow
async def test_undecryptable_envelopes_from_one_peer_cost_a_few_log_lines(
    world: World,
    autojump_clock: trio.abc.Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    net, _, bob, _ = world
    stranger = Peer(net, "stranger")
    bob_id = bob.node.peer_id
    flood = 4_000
    junk = [Envelope.create(bob_id, 2_000_000_000, os.urandom(120)).encode() for _ in range(flood)]
    caplog.set_level(logging.INFO, logger="p2pdm.services.dm")
    results = []
    async with await stranger.host.open_stream(bob_id, DM_PROTOCOL) as stream:
        for start in range(0, flood, 64):
            acks = await deliver(stream, junk[start : start + 64], start + 1)
            results += [a.result for a in acks]
    assert results == ["rejected"] * flood
    # The scheduler closes the window once it is over and logs the count.
    await trio.sleep(FAILURE_LOG_WINDOW_SECONDS + SCHEDULER_MAX_SLEEP)
    lines = [r.getMessage() for r in caplog.records if r.name == "p2pdm.services.dm"]
    assert len(lines) == FAILURE_LOG_FIRST + 1, lines
    assert all("DecryptError" in line or "could not be opened" in line for line in lines[:-1])
    more = f"{flood - FAILURE_LOG_FIRST:,}"
    assert lines[-1] == (
        f"dropped {more} more refused envelopes from {stranger.node.peer_id.short()} "
        f"in the last {FAILURE_LOG_WINDOW_SECONDS:.0f} s"
    )


def test_an_outbox_from_before_bound_ids_is_rekeyed_once(tmp_path: Path) -> None:
    """Envelopes queued by an older p2pdm (random ids) get content-bound ids at start-up;
    their deposits, made under the old ids, are forgotten so they are deposited again."""
    store = SQLiteStore(tmp_path / "alice.sqlite")
    alice = Messenger(Identity(os.urandom(32)), store)
    bob = Messenger(Identity(os.urandom(32)), SQLiteStore(tmp_path / "bob.sqlite"))
    alice.add_contact(bob.peer_id, "bob", bob.bundle())
    out = alice.send_text(bob.peer_id, "queued before the upgrade")
    # What an older p2pdm queued: the same sealed bytes under a random id.
    env = Envelope.decode(out.outbox.envelope)
    legacy = Envelope(env.recipient, os.urandom(16), env.expires_at_s, env.sealed)
    with store.transaction():
        store.remove_outbox(out.outbox.envelope_id)
        store.add_outbox(replace(out.outbox, envelope_id=legacy.id, envelope=legacy.encode()))
        store.add_deposit(legacy.id, bob.peer_id, 2_000_000)
        store.set_setting(ENVELOPE_IDS_SETTING, None)

    Messenger(alice.identity, store)  # the upgraded node starts
    (item,) = store.outbox_for(bob.peer_id)
    assert item.envelope_id == env.id and item.envelope == env.encode()
    assert item.message_id == out.outbox.message_id
    assert store.deposits(item.envelope_id) == [] and store.deposits(legacy.id) == []
    assert store.get_setting(ENVELOPE_IDS_SETTING) == ENVELOPE_IDS_BOUND
    assert bob.receive(item.envelope).inner.id == out.outbox.message_id
