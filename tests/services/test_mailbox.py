"""Store-and-forward: deposit, fetch, receipts, abuse.

Most tests join delivery services and mailboxes by ``tests.fakenet`` (hosts
switched on and off at will, stores looked into between steps); the first runs
whole nodes from the ``sim_network`` fixture over libp2p in virtual time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pdm.core import cbor
from p2pdm.core import mailbox as mb
from p2pdm.core.dm import DM_WINDOW
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import DeliveryStatus, StoredMessage
from p2pdm.core.wire import Envelope
from p2pdm.errors import ConfigError, StoreError
from p2pdm.net.stream import Stream
from p2pdm.node.node import Node
from p2pdm.services.dm import REACH_TIMEOUT, RETRY_BASE_SECONDS
from p2pdm.services.mailbox_client import (
    MAILBOX_COPIES,
    MAILBOX_SHORT_CACHE_SECONDS,
    MAILBOX_TRUST_SECONDS,
    MailboxDirectory,
    parse_mailbox_addr,
)
from p2pdm.services.mailbox_server import (
    DEFAULT_LIMITS,
    MAILBOX_BURST_PER_PEER,
    MAILBOX_MAX_AUTH_FAILURES,
    MAILBOX_PURGE_INTERVAL_SECONDS,
)
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from p2pdm.store import SQLiteStore
from tests.fakenet import FakeNetwork
from tests.services.conftest import (
    BROKEN,
    DAY_S,
    Box,
    Peer,
    World,
    ask,
    clock_ms,
    envelope_for,
    start_box,
    wait_status,
)


async def send_while_away(alice: Peer, bob: Peer, text: str) -> StoredMessage:
    """Bob goes offline; alice sends ``text`` and waits until mailboxes hold it."""
    bob.host.online = False
    sent = await alice.node.send(bob.node.peer_id, text)
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DEPOSITED)
    return sent


def status_detail(node: Node, message_id: bytes, status: DeliveryStatus) -> str:
    return next(c.detail for c in node.message(message_id.hex())[1] if c.status is status)


async def test_offline_recipient_gets_it_from_mailboxes_and_sender_sees_delivered(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    """Whole nodes (libp2p over the memory network, virtual time): four mailbox
    nodes, alice and bob; bob is away, then alice, and each gets what waited."""
    async with sim_network(6, mailboxes=4, contacts=[(4, 5)]) as net:
        boxes, alice, bob = net.nodes[:4], net[4], net[5]

        def held(peer: PeerId) -> int:
            return sum(box.store.mailbox_usage(peer)[0] for box in boxes)

        await net.stop(bob)
        sent = await net.send(alice.index, bob.index, "while you were out")
        deposited = await net.wait_status(alice.index, sent, DeliveryStatus.DEPOSITED)
        assert held(bob.peer_id) == MAILBOX_COPIES
        assert "held by 3 mailbox(es) until" in alice.running.node.status_detail(deposited)
        assert alice.store.outbox_count() == 1  # direct delivery goes on being tried
        # The mailboxes learn recipient, size and time: nothing names alice.
        for box in boxes:
            now = box.running.node.now_ms()
            for item in box.store.mailbox_fetch(bob.peer_id, 0, now, 10):
                assert alice.peer_id.raw not in item.envelope
                assert Envelope.decode(item.envelope).recipient == bob.peer_id

        await net.stop(alice)
        await net.start(bob)  # fetches from its mailboxes at start
        await net.wait_received(bob.index, sent)
        assert [m.id for m in bob.running.node.messages(alice.peer_id).messages] == [sent.id]
        # Committed, so deleted everywhere; alice is away: bob's delivery
        # receipt goes to her mailboxes.
        await wait_until(lambda: held(bob.peer_id) == 0 and held(alice.peer_id) > 0)

        # Bob leaves again, so only that receipt can tell alice (a direct retry
        # reaching bob would confirm it too).
        await net.stop(bob)
        await net.start(alice)
        delivered = await net.wait_delivered(alice.index, sent)
        assert alice.store.outbox_count() == 0
        assert "receipt from" in status_detail(alice.running.node, delivered.id, delivered.status)


async def test_unreachable_within_the_short_timeout_means_deposit(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    _, alice, bob, _ = world
    bob.host.hanging = True  # dials neither succeed nor fail
    sent = await alice.node.send(bob.node.peer_id, "are you there?")
    with trio.fail_after(REACH_TIMEOUT + 1):
        await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DEPOSITED)
    assert alice.node.store.outbox_count() == 1


async def test_a_burst_for_an_offline_recipient_is_deposited_in_one_go(
    world: World, autojump_clock: trio.abc.Clock
) -> None:
    """More than a window of messages for an offline peer: all reach mailboxes after
    the first failed dial, not one window per backoff period."""
    _, alice, bob, boxes = world
    bob.host.online = False
    count = 3 * DM_WINDOW + 5
    sent = [await alice.node.send(bob.node.peer_id, f"m{i}") for i in range(count)]
    # The shortest retry backoff is half of RETRY_BASE_SECONDS: no second dial fits.
    with trio.fail_after(RETRY_BASE_SECONDS / 2):
        for message in sent:
            await wait_status(alice.node, message.id.hex(), DeliveryStatus.DEPOSITED)
    assert sum(b.held for b in boxes) == count * MAILBOX_COPIES
    assert alice.node.store.outbox_count() == count  # direct delivery goes on being tried


async def test_two_of_three_mailboxes_gone_still_delivered(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    _, alice, bob, boxes = world
    sent = await send_while_away(alice, bob, "one copy is enough")
    holders = [b for b in boxes if b.held]
    assert len(holders) == MAILBOX_COPIES
    for box in holders[:2]:
        box.host.online = False
    alice.host.online = False
    bob.host.online = True
    assert await bob.delivery.fetch_mailboxes() == 1
    assert [m.id for m in bob.node.messages(alice.node.peer_id).messages] == [sent.id]


async def test_message_arriving_directly_and_from_mailboxes_appears_once(
    world: World, autojump_clock: trio.abc.Clock
) -> None:
    _, alice, bob, boxes = world
    sent = await send_while_away(alice, bob, "twice on the wire, once in the inbox")
    bob.host.online = True
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DELIVERED, limit=600)
    assert await bob.delivery.fetch_mailboxes() == 0  # all replays
    assert [m.id for m in bob.node.messages(alice.node.peer_id).messages] == [sent.id]
    assert bob.node.store.counts()["messages"] == 1
    assert sum(b.held for b in boxes) == 0  # the duplicates were deleted too


async def test_a_fetched_page_is_committed_as_one_group(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    """Envelopes fetched together are committed together (one fsync a page, not one
    an envelope); a page that cannot be committed stays at the mailboxes."""
    _, alice, bob, boxes = world
    sent = [await send_while_away(alice, bob, f"m{i}") for i in range(3)]
    alice.host.online = False
    bob.host.online = True
    store = bob.node.store
    real_group = store.group
    groups: list[int] = []
    failing = True

    @contextlib.contextmanager
    def group() -> Iterator[None]:
        groups.append(1)
        with real_group():
            yield
            if failing:
                raise StoreError("disk full")

    store.group = group
    assert await bob.delivery.fetch_mailboxes() == 0
    assert sum(b.held for b in boxes) == 3 * MAILBOX_COPIES  # nothing deleted
    assert not bob.node.messages(alice.node.peer_id).messages
    failing, groups[:] = False, []
    assert await bob.delivery.fetch_mailboxes() == 3
    # One page from each mailbox that held them, then the round's receipts.
    assert len(groups) == MAILBOX_COPIES + 1
    assert len(store.outbox_for(alice.node.peer_id)) == 1  # one receipt for the three
    assert {m.id for m in bob.node.messages(alice.node.peer_id).messages} == {m.id for m in sent}
    assert sum(b.held for b in boxes) == 0


async def test_fetch_loop_runs_at_start_and_on_demand(world, autojump_clock, nursery) -> None:  # type: ignore[no-untyped-def]
    _, alice, bob, _ = world
    await send_while_away(alice, bob, "before bob starts")
    alice.host.online = False
    bob.host.online = True
    await nursery.start(bob.delivery.run_fetcher)
    with trio.fail_after(5):
        while not bob.node.messages(alice.node.peer_id).messages:  # noqa: ASYNC110
            await trio.sleep(0.1)
    # Another one arrives in the mailboxes; asking for a fetch picks it up at once.
    alice.host.online, bob.host.online = True, False
    second = await alice.node.send(bob.node.peer_id, "and one more")
    await wait_status(alice.node, second.id.hex(), DeliveryStatus.DEPOSITED)
    alice.host.online, bob.host.online = False, True
    bob.delivery.fetch_now()
    with trio.fail_after(5):
        while len(bob.node.messages(alice.node.peer_id).messages) < 2:  # noqa: ASYNC110
            await trio.sleep(0.1)


async def test_preferred_mailboxes_from_the_record_come_first(nursery, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net = FakeNetwork(nursery)
    boxes = [await start_box(nursery, Box(net)) for _ in range(4)]
    # bob's own mailbox is not a provider: only his record tells senders about it.
    own = Box(net)
    own_addr = f"/memory/box/p2p/{own.identity.peer_id}"
    alice, bob = Peer(net, "alice"), Peer(net, "bob", preferred=(own_addr,))
    alice.node.add_contact_from_invite(bob.node.invite())
    bob.node.add_contact_from_invite(alice.node.invite())
    await bob.directory.publish_record(bob.node.messenger.bundle(), clock_ms() + 1)
    await nursery.start(alice.delivery.run)
    await send_while_away(alice, bob, "to your own mailbox")
    assert own.held == 1 and sum(b.held for b in boxes) == MAILBOX_COPIES - 1
    assert (await bob.directory.own())[0][0] == own.identity.peer_id


async def test_a_short_provider_list_is_looked_up_again_soon(autojump_clock) -> None:  # type: ignore[no-untyped-def]
    """Found while mailboxes were still announcing themselves, a list below
    R is reused only briefly; a full one for the whole cache time."""
    found: list[list[tuple[PeerId, list[str]]]] = []
    peers = [(Identity(bytes([i]) * 32).peer_id, [f"/memory/{i}"]) for i in range(1, 5)]

    class Network:
        async def find_providers(
            self,
            key: bytes,
            timeout: float,  # noqa: ASYNC109
        ) -> list[tuple[PeerId, list[str]]]:
            found.append(peers[: 1 if not found else MAILBOX_COPIES])
            return found[-1]

    directory = MailboxDirectory(Identity(b"\x09" * 32), Network())  # type: ignore[arg-type]
    assert len(await directory.providers()) == 1
    assert len(await directory.providers()) == 1 and len(found) == 1  # cached
    await trio.sleep(MAILBOX_SHORT_CACHE_SECONDS)
    assert len(await directory.providers()) == MAILBOX_COPIES and len(found) == 2
    await trio.sleep(MAILBOX_TRUST_SECONDS - 1)
    await directory.providers()
    assert len(found) == 2  # enough: kept for the whole trust time
    await trio.sleep(1)
    await directory.providers()
    assert len(found) == 3


def test_mailbox_addresses_must_name_their_peer() -> None:
    peer = Identity(b"\x05" * 32).peer_id
    assert parse_mailbox_addr(f" /ip4/1.2.3.4/tcp/4701/p2p/{peer} ")[0] == peer
    for bad in ("/ip4/1.2.3.4/tcp/4701", "/p2p/nonsense/x", f"/p2p/{peer}", "x" * 300):
        with pytest.raises(ConfigError, match="/p2p/<PeerID>"):
            parse_mailbox_addr(bad)


# --- the mailbox's own rules ---------------------------------------------------


async def authenticate(stream: Stream, mailbox: PeerId, who: Identity) -> mb.Result:
    challenge = await ask(stream, mb.ChallengeRequest())
    assert isinstance(challenge, mb.ChallengeReply)
    reply = await ask(
        stream, mb.Auth(who.peer_id, mb.auth_signature(who, mailbox, challenge.nonce))
    )
    assert isinstance(reply, mb.Result)
    return reply


async def deposit_for_bob(alice: Peer, bob: Peer, text: str = "hello") -> bytes:
    """An envelope alice's messenger made for bob (not queued for delivery)."""
    return alice.node.messenger.send_text(bob.node.peer_id, text).outbox.envelope


async def test_nobody_else_can_list_read_or_delete(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net, alice, bob, boxes = world
    box = boxes[0]
    mailbox = box.identity.peer_id
    assert box.service.deposit(await deposit_for_bob(alice, bob)).ok
    mallory = Identity(os.urandom(32))
    stream = await net.host(mallory.peer_id).open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    # Before any challenge: refused.
    assert (await ask(stream, mb.Fetch())) == mb.Result(mb.UNAUTHORIZED, "answer a challenge first")
    assert (await ask(stream, mb.Delete((1,)))).code == mb.UNAUTHORIZED  # type: ignore[union-attr]
    # Claiming to be bob with mallory's signature: refused.
    challenge = await ask(stream, mb.ChallengeRequest())
    assert isinstance(challenge, mb.ChallengeReply)
    forged = mb.Auth(bob.node.peer_id, mb.auth_signature(mallory, mailbox, challenge.nonce))
    assert (await ask(stream, forged)).code == mb.UNAUTHORIZED  # type: ignore[union-attr]
    # Replaying an answer to a used challenge: refused.
    assert (await ask(stream, forged)).code == mb.UNAUTHORIZED  # type: ignore[union-attr]
    assert (await ask(stream, mb.Fetch())).code == mb.UNAUTHORIZED  # type: ignore[union-attr]
    # As herself she sees nothing of bob's and deletes nothing of his.
    stream = await net.host(mallory.peer_id).open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    assert (await authenticate(stream, mailbox, mallory)).ok
    assert await ask(stream, mb.Fetch()) == mb.Envelopes((), more=False)
    deleted = await ask(stream, mb.Delete(tuple(range(1, 50))))
    assert isinstance(deleted, mb.Result) and deleted.count == 0
    assert box.held == 1
    # Bob, proving his key, gets it.
    stream = await bob.host.open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    assert (await authenticate(stream, mailbox, bob.node.identity)).ok
    page = await ask(stream, mb.Fetch())
    assert isinstance(page, mb.Envelopes) and len(page.items) == 1


async def test_too_many_wrong_answers_disconnect(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net, _, bob, boxes = world
    mailbox = boxes[0].identity.peer_id
    mallory = net.host(Identity(os.urandom(32)).peer_id)
    stream = await mallory.open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    with pytest.raises(BROKEN):  # the stream is reset under us
        for _ in range(MAILBOX_MAX_AUTH_FAILURES + 1):
            await ask(stream, mb.Auth(bob.node.peer_id, bytes(64)))
    await trio.sleep(0.1)
    assert mallory.peer_id in boxes[0].host.disconnected


async def test_quota_exceeded_is_refused_and_recorded_by_the_sender(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    net = FakeNetwork(nursery)
    tight = mb.MailboxLimits(
        DAY_S, 100_000, 2, 1 << 20, 100, 1 << 30, depositor_share=1, stamp_fill_percent=100
    )
    box = await start_box(nursery, Box(net, limits=tight))
    alice, bob = Peer(net, "alice"), Peer(net, "bob")
    alice.node.add_contact_from_invite(bob.node.invite())
    await nursery.start(alice.delivery.run)
    bob.host.online = False
    sent = [await alice.node.send(bob.node.peer_id, f"n{i}") for i in range(3)]
    with trio.fail_after(30):
        while not any("over quota" in _detail(alice, m.id) for m in sent):  # noqa: ASYNC110
            await trio.sleep(0.1)
    statuses = sorted(alice.node.message(m.id.hex())[0].status for m in sent)
    assert statuses.count(DeliveryStatus.DEPOSITED) == 2
    refused = [m for m in sent if "over quota" in _detail(alice, m.id)]
    assert len(refused) == 1
    assert alice.node.message(refused[0].id.hex())[0].status is not DeliveryStatus.DEPOSITED
    assert f"mailbox {box.identity.peer_id.short()} refused: over quota for this recipient" in (
        _detail(alice, refused[0].id)
    )
    assert box.held == 2


def _detail(peer: Peer, message_id: bytes) -> str:
    return peer.node.status_detail(peer.node.message(message_id.hex())[0])


async def test_deposit_refusals(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net, alice, bob, _ = world
    tight = mb.MailboxLimits(DAY_S, 2_000, 100, 1 << 20, 2, 1 << 30, depositor_share=1)
    box = Box(net, limits=tight)
    envelope = await deposit_for_bob(alice, bob)
    assert box.service.deposit(b"\xa0").code == mb.BAD_ENVELOPE
    assert box.service.deposit(os.urandom(300)).code == mb.BAD_ENVELOPE
    assert box.service.deposit(bytes(2_001)).code == mb.TOO_LARGE
    old = Envelope.decode(envelope)
    stale = Envelope.create(old.recipient, clock_ms() // 1000, old.sealed).encode()
    assert box.service.deposit(stale).code == mb.EXPIRED
    first = box.service.deposit(envelope)
    assert first.ok and first.until_s <= clock_ms() // 1000 + DAY_S
    assert box.service.deposit(envelope) == mb.Result(mb.OK, "already held", first.until_s)
    assert box.service.deposit(await deposit_for_bob(alice, bob, "2")).ok
    assert box.service.deposit(await deposit_for_bob(alice, bob, "3")).code == mb.FULL
    assert box.held == 2
    # A sender retrying after a lost reply is told it is held, full or not.
    assert box.service.deposit(envelope).code == mb.OK


async def test_expired_envelopes_are_not_served_and_get_purged(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net, alice, bob, _ = world
    short = mb.MailboxLimits(60, 100_000, 100, 1 << 20, 100, 1 << 30)
    box = await start_box(net.nursery, Box(net, limits=short))
    assert box.service.deposit(await deposit_for_bob(alice, bob)).ok
    await trio.sleep(61)
    assert box.service.fetch(bob.node.peer_id, 0).items == ()
    assert box.held == 1
    await trio.sleep(MAILBOX_PURGE_INTERVAL_SECONDS)
    assert box.held == 0


async def test_a_mailbox_restart_keeps_its_envelopes(world, autojump_clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    net, alice, bob, boxes = world
    for box in boxes:
        box.host.online = False  # only the one below is up
    path = tmp_path / "mailbox.sqlite"
    box = await start_box(net.nursery, Box(net, SQLiteStore(path)))
    sent = await send_while_away(alice, bob, "kept on disk")
    box.store.close()
    box.host.online = False
    restarted = await start_box(net.nursery, Box(net, SQLiteStore(path), identity=box.identity))
    assert restarted.held == 1
    alice.host.online, bob.host.online = False, True
    assert await bob.delivery.fetch_mailboxes() == 1
    assert [m.id for m in bob.node.messages(alice.node.peer_id).messages] == [sent.id]
    assert restarted.held == 0


async def test_hostile_depositor_cannot_stop_the_mailbox_serving_others(
    world: World, autojump_clock: trio.abc.Clock
) -> None:
    net, alice, bob, boxes = world
    for other in boxes:
        other.host.online = False
    # SQLite: MemoryStore copies its whole state per transaction, too slow for a flood.
    box = await start_box(net.nursery, Box(net, SQLiteStore(":memory:", synchronous="NORMAL")))
    mailbox = box.identity.peer_id
    mallory = net.host(Identity(os.urandom(32)).peer_id)
    # Oversized (but within the protocol's frame cap): a clear refusal.
    stream = await mallory.open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    big = await ask(stream, mb.Deposit(bytes(DEFAULT_LIMITS.max_envelope_bytes + 1)))
    assert isinstance(big, mb.Result) and big.code == mb.TOO_LARGE
    # Garbage: disconnected.
    await stream.write_frame(b"\xff garbage", 5)
    await _until_reset(stream)
    assert mallory.peer_id in box.host.disconnected
    # A frame over the protocol's cap: reset unread.
    stream = await mallory.open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    await stream.write_frame(bytes(mb.MAX_REQUEST_FRAME_BYTES + 1), 5)
    await _until_reset(stream)
    # A flood of deposits for random recipients: cut off at the rate limit.
    stream = await mallory.open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    flood = [
        envelope_for(Identity(os.urandom(32)).peer_id) for _ in range(int(MAILBOX_BURST_PER_PEER))
    ]
    with pytest.raises(BROKEN):  # the stream is reset under us
        for envelope in [*flood, *flood]:
            await ask(stream, mb.Deposit(envelope))
    assert box.held <= MAILBOX_BURST_PER_PEER + 1
    # Filling one recipient's quota leaves everyone else served.
    tight = mb.MailboxLimits(
        DAY_S, 100_000, 5, 1 << 20, 1000, 1 << 30, depositor_share=1, stamp_fill_percent=100
    )
    box.service.limits = tight
    carol = Identity(os.urandom(32)).peer_id
    for _ in range(5):
        assert box.service.deposit(envelope_for(carol)).ok
    assert box.service.deposit(envelope_for(carol)).code == mb.OVER_QUOTA
    # And alice's envelope for bob still goes in and comes out.
    stream = await alice.host.open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    reply = await ask(stream, mb.Deposit(await deposit_for_bob(alice, bob)))
    assert isinstance(reply, mb.Result) and reply.ok
    alice.host.online = False
    assert await bob.delivery.fetch_mailboxes() == 1


async def _until_reset(stream: Stream) -> None:
    with trio.fail_after(5):
        try:
            while await stream.read_frame(1 << 20, 5) is not None:
                pass
        except BROKEN:  # reset is what we wait for
            return


def test_reply_frames_stay_within_their_cap() -> None:
    box_limits = DEFAULT_LIMITS
    page = mb.Envelopes(
        tuple(
            mb.FetchedEnvelope(n + 1, bytes(box_limits.max_envelope_bytes))
            for n in range(2)  # what fetch() packs at most into 1 MiB
        ),
        more=True,
    )
    assert len(page.encode()) <= mb.MAX_REPLY_FRAME_BYTES
    assert cbor.decode(page.encode(), mb.MAX_REPLY_FRAME_BYTES)


async def test_a_hostile_mailbox_cannot_stop_delivery(world, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net, alice, bob, boxes = world
    liar = net.host(Identity(os.urandom(32)).peer_id)

    async def garbage(stream: Stream) -> None:
        while await stream.read_frame(mb.MAX_REQUEST_FRAME_BYTES, 5) is not None:
            await stream.write_frame(b"\xa1at\xf9\x00\x00", 5)  # a map holding a float

    liar.set_handler(mb.MAILBOX_PROTOCOL, garbage)
    await liar.provide(mb.MAILBOX_SERVICE_KEY)
    for box in boxes[:2]:
        box.host.online = False  # so the liar is surely among those tried
    sent = await send_while_away(alice, bob, "past the liar")
    assert sum(b.held for b in boxes) >= 1
    alice.host.online, bob.host.online = False, True
    assert await bob.delivery.fetch_mailboxes() == 1
    assert [m.id for m in bob.node.messages(alice.node.peer_id).messages] == [sent.id]
