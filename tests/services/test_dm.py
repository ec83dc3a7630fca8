"""Direct delivery over an in-memory network: acks, retries, read receipts, hostile peers."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import trio

from p2pdm.core.dm import DM_PROTOCOL, DM_WINDOW, Ack, Deliver, decode_ack, decode_deliver
from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus, OutboxItem
from p2pdm.errors import PeerUnreachable
from p2pdm.net.stream import Stream
from p2pdm.node.node import Node
from p2pdm.services.dm import (
    MAX_STREAMS_PER_PEER,
    RETRY_MAX_SECONDS,
    SCHEDULER_MAX_SLEEP,
    Delivery,
    backoff_ms,
)
from p2pdm.services.dm import sender as sender_module
from p2pdm.services.limits import SENT_MARK_WAIT_SECONDS
from p2pdm.store.memory import MemoryStore
from tests.fakenet import FakeHost, FakeNetwork
from tests.services.conftest import wait_status


class Peer:
    def __init__(self, net: FakeNetwork, name: str) -> None:
        self.node = Node(
            Identity(os.urandom(32)), MemoryStore(), now_ms=lambda: int(trio.current_time() * 1000)
        )
        self.node.store.set_setting("name", name)
        self.host: FakeHost = net.host(self.node.peer_id)
        self.delivery = Delivery(self.node, self.host, rng=random.Random(1))
        self.node.on_outbox = self.delivery.wake


@pytest.fixture
async def world(nursery: trio.Nursery) -> AsyncIterator[tuple[FakeNetwork, Peer, Peer]]:
    net = FakeNetwork(nursery)
    alice, bob = Peer(net, "alice"), Peer(net, "bob")
    alice.node.add_contact_from_invite(bob.node.invite())
    bob.node.add_contact_from_invite(alice.node.invite())
    for p in (alice, bob):
        await nursery.start(p.delivery.run)
    yield net, alice, bob


async def test_delivered_then_read(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    _, alice, bob = world
    sent = await alice.node.send(bob.node.peer_id, "hi bob")
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DELIVERED)
    page = bob.node.messages(alice.node.peer_id)
    assert [m.id for m in page.messages] == [sent.id]
    bob.node.mark_read(alice.node.peer_id)
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.READ)
    history = [c.status for c in alice.node.message(sent.id.hex())[1]]
    assert history[:1] == [DeliveryStatus.QUEUED] and history[-1] is DeliveryStatus.READ
    assert alice.node.store.outbox_count() == 0


async def test_offline_recipient_gets_it_when_back(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    _, alice, bob = world
    bob.host.online = False
    sent = [await alice.node.send(bob.node.peer_id, f"msg {i}") for i in range(5)]
    await trio.sleep(60)
    assert alice.node.store.outbox_count() == 5
    item = alice.node.store.outbox_for(bob.node.peer_id)[0]
    assert item.attempts >= 2 and item.last_error
    bob.host.online = True
    for m in sent:
        await wait_status(
            alice.node, m.id.hex(), DeliveryStatus.DELIVERED, limit=RETRY_MAX_SECONDS * 2
        )
    assert bob.node.store.counts()["messages"] == 5


async def test_a_message_is_sent_then_delivered_and_its_entry_gone(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    """The "sent" mark rides with the ack's commit: both moves are recorded, in order."""
    _, alice, bob = world
    sent = [await alice.node.send(bob.node.peer_id, f"m{i}") for i in range(3)]
    for m in sent:
        await wait_status(alice.node, m.id.hex(), DeliveryStatus.DELIVERED)
        history = [c.status for c in alice.node.message(m.id.hex())[1]]
        assert history == [DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.DELIVERED]
    assert alice.node.store.outbox_count() == 0


async def test_a_slow_ack_leaves_the_message_sent_meanwhile(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    """No ack yet: the sent mark is committed on its own (after
    SENT_MARK_WAIT_SECONDS), and the late ack still delivers the message."""
    _, alice, bob = world
    release = trio.Event()

    async def slow_acks(stream: Stream) -> None:
        async with stream:
            while (frame := await stream.read_frame(1 << 20, 60)) is not None:
                deliver = decode_deliver(frame)
                assert bob.delivery.receiver.accept_group([deliver.envelope]) == [("ok", "")]
                await release.wait()
                await stream.write_frame(Ack(deliver.seq, "ok").encode(), 5)

    bob.host.set_handler(DM_PROTOCOL, slow_acks)
    sent = await alice.node.send(bob.node.peer_id, "are you there?")
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.SENT)
    await trio.sleep(SENT_MARK_WAIT_SECONDS * 3)
    assert alice.node.message(sent.id.hex())[0].status is DeliveryStatus.SENT
    [item] = alice.node.store.outbox_for(bob.node.peer_id)  # not due again before the ack is late
    assert item.next_attempt_at_ms > int(trio.current_time() * 1000)
    release.set()
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DELIVERED)
    history = [c.status for c in alice.node.message(sent.id.hex())[1]]
    assert history == [DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.DELIVERED]
    assert alice.node.store.outbox_count() == 0


async def test_many_messages_pipelined_exactly_once(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    _, alice, bob = world
    sent = [await alice.node.send(bob.node.peer_id, f"n{i}") for i in range(150)]
    await wait_status(alice.node, sent[-1].id.hex(), DeliveryStatus.DELIVERED)
    for m in sent:
        await wait_status(alice.node, m.id.hex(), DeliveryStatus.DELIVERED)
    got = bob.node.messages(alice.node.peer_id, limit=500).messages
    assert len(got) == 150 and len({m.id for m in got}) == 150


async def test_queued_envelopes_go_out_in_few_writes_and_their_acks_too(  # type: ignore[no-untyped-def]
    world, autojump_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is due together is written together (up to the window), and a
    burst's acks in one write: each envelope still gets its own ack."""
    _, alice, bob = world
    writes: list[tuple[str, int]] = []
    send = Stream._send

    async def counting(self: Stream, data: bytes, timeout: float) -> None:  # noqa: ASYNC109
        writes.append((self.remote_peer.short(), len(data)))
        await send(self, data, timeout)

    monkeypatch.setattr(Stream, "_send", counting)
    sent = [alice.node.send_text(bob.node.peer_id, f"q{i}") for i in range(100)]
    for m in sent:
        await wait_status(alice.node, m.id.hex(), DeliveryStatus.DELIVERED)
    to_bob = [n for peer, n in writes if peer == bob.node.peer_id.short()]
    to_alice = [n for peer, n in writes if peer == alice.node.peer_id.short()]
    assert 2 <= len(to_bob) <= 8  # the window (64) caps a write's frames
    assert 2 <= len(to_alice) < 50
    got = bob.node.messages(alice.node.peer_id, limit=500).messages
    assert [m.id for m in reversed(got)] == [m.id for m in sent]  # in order, each once


async def test_a_backlog_larger_than_the_window_flows_as_acks_free_it(  # type: ignore[no-untyped-def]
    world, autojump_clock
) -> None:
    """Four windows queued at once (a bot's batch): each ack makes room for the
    next envelopes at once; the writer does not wait for the sent-mark timer
    or the scheduler's next pass between windows (it once did: ~one window a
    second)."""
    _, alice, bob = world
    start = trio.current_time()
    sent = [alice.node.send_text(bob.node.peer_id, f"w{i}") for i in range(4 * DM_WINDOW)]
    alice.delivery.wake(bob.node.peer_id)
    for m in sent:
        await wait_status(alice.node, m.id.hex(), DeliveryStatus.DELIVERED)
    assert trio.current_time() - start < SENT_MARK_WAIT_SECONDS
    assert bob.node.store.counts()["messages"] == 4 * DM_WINDOW


@pytest.mark.slow
async def test_a_burst_goes_over_one_stream_without_retries(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    """Acks that arrive while the rest of a window is still being written must
    not break the stream (they once did: the early ones were already gone)."""
    _, alice, bob = world
    sent = [alice.node.send_text(bob.node.peer_id, f"b{i}") for i in range(300)]
    for m in sent:
        await wait_status(alice.node, m.id.hex(), DeliveryStatus.DELIVERED)
    assert alice.host.dials == 1
    assert bob.node.store.counts()["messages"] == 300


async def test_garbage_frame_disconnects_peer_but_node_keeps_serving(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net, alice, bob = world
    mallory = net.host(Identity(os.urandom(32)).peer_id)
    stream = await mallory.open_stream(bob.node.peer_id, DM_PROTOCOL)
    await stream.write_frame(b"\xff\x00garbage", 5)
    with trio.fail_after(5):
        assert await _read_until_closed(stream)
    await trio.sleep(0.1)
    assert mallory.peer_id in bob.host.disconnected
    # A forged envelope gets a 'rejected' ack, not a crash.
    stream = await mallory.open_stream(bob.node.peer_id, DM_PROTOCOL)
    await stream.write_frame(Deliver(1, b"\xa0").encode(), 5)
    ack = decode_ack(await stream.read_frame(1 << 14, 5) or b"")
    assert ack.result == "rejected"
    sent = await alice.node.send(bob.node.peer_id, "still there?")
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DELIVERED)


async def test_stream_limit_per_peer(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net, _, bob = world
    mallory = net.host(Identity(os.urandom(32)).peer_id)
    for _ in range(MAX_STREAMS_PER_PEER + 2):
        await mallory.open_stream(bob.node.peer_id, DM_PROTOCOL)
    await trio.sleep(1)
    # The extra streams were reset at once; only the allowed ones are served.
    assert bob.delivery.receiver.inbound.streams_of(mallory.peer_id) == MAX_STREAMS_PER_PEER


async def _read_until_closed(stream) -> bool:  # type: ignore[no-untyped-def]
    try:
        while await stream.read_frame(1 << 14, 5) is not None:
            pass
    except Exception:
        return True
    return True


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(0)
    delays = [backoff_ms(n, rng) for n in range(20)]
    assert delays[0] <= 1500 and delays[5] > delays[0]
    assert max(delays) <= RETRY_MAX_SECONDS * 1.5 * 1000


async def test_a_message_never_delivered_expires(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    _, alice, bob = world
    bob.host.online = False
    sent = await alice.node.send(bob.node.peer_id, "you will never see this")
    [item] = alice.node.store.outbox_for(bob.node.peer_id)
    # Shorten its life: 14 days of retries would be many scheduler rounds.
    alice.node.store.remove_outbox(item.envelope_id)
    alice.node.store.add_outbox(replace(item, expires_at_ms=alice.node.now_ms() + 30_000))
    await trio.sleep(30 + SCHEDULER_MAX_SLEEP * 2)
    message, history = alice.node.message(sent.id.hex())
    assert message.status is DeliveryStatus.EXPIRED
    assert history[-1].detail == "not delivered before expiry"
    assert alice.node.store.outbox_count() == 0


async def test_a_stream_open_when_its_peer_is_blocked_is_reset_not_answered(  # type: ignore[no-untyped-def]
    world, autojump_clock
) -> None:
    net, _, bob = world
    carol = Node(Identity(os.urandom(32)), MemoryStore(), now_ms=bob.node.now_ms)
    carol.add_contact_from_invite(bob.node.invite(), "bob")
    bob.node.add_contact_from_invite(carol.invite(), "carol")
    first, second = (carol.messenger.send_text(bob.node.peer_id, t) for t in ("one", "two"))
    stream = await net.host(carol.peer_id).open_stream(bob.node.peer_id, DM_PROTOCOL)
    await stream.write_frame(Deliver(1, first.outbox.envelope).encode(), 5)
    assert decode_ack(await stream.read_frame(1 << 14, 5) or b"").result == "ok"
    bob.node.block(carol.peer_id)
    await stream.write_frame(Deliver(2, second.outbox.envelope).encode(), 5)
    with trio.fail_after(5):
        assert await _read_until_closed(stream)  # reset: no ack, not even "retry"
    assert second.message is not None and bob.node.store.get_message(second.message.id) is None
    assert bob.node.messenger.dropped_blocked == 1


async def test_a_failed_write_of_several_frames_leaves_none_of_them_marked_sent() -> None:
    """Items listed as written before their write: if it fails, they come off the
    list (never marked ``sent``); what was written before stays on it."""

    class Broken:
        async def send_all(self, data: bytes) -> None:
            raise PeerUnreachable("gone")

    peer = Identity(os.urandom(32)).peer_id

    def item(n: int) -> OutboxItem:
        return OutboxItem(bytes([n]) * 32, bytes([n]) * 16, peer, b"e%d" % n, 0, 1, 0)

    earlier, a, b = item(1), item(2), item(3)
    unmarked = [earlier, a, b]
    stream = Stream(Broken(), peer, DM_PROTOCOL)  # type: ignore[arg-type]
    with pytest.raises(PeerUnreachable):
        await sender_module._write(stream, [(a, b"fa"), (b, b"fb")], unmarked)
    assert unmarked == [earlier]
