"""Fair mailbox quotas and refusals the sender can see, attacked through the service.

Strangers (fresh identities on their own hosts) flood a mailbox node with
junk for bob over the mailbox protocol; alice's node then deposits through
its real delivery loop and mailbox client.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import trio

from p2pdm.core import mailbox as mb
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import DeliveryStatus, EventType, StoredMessage
from p2pdm.limits import MAX_STATUS_HISTORY
from p2pdm.services.mailbox_server import MAILBOX_DEPOSIT_BURST_PER_PEER
from p2pdm.store import SQLiteStore
from tests.fakenet import FakeNetwork
from tests.services.conftest import (
    DAY_S,
    FAIR,
    Box,
    Peer,
    ask,
    envelope_for,
    start_box,
    wait_status,
)

Flooded = tuple[FakeNetwork, Peer, Peer, Box]


@pytest.fixture
async def flooded(nursery: trio.Nursery) -> AsyncIterator[Flooded]:
    net = FakeNetwork(nursery)
    box = await start_box(nursery, Box(net, SQLiteStore(":memory:"), limits=FAIR))
    alice, bob = Peer(net, "alice"), Peer(net, "bob")
    alice.node.add_contact_from_invite(bob.node.invite())
    bob.node.add_contact_from_invite(alice.node.invite())
    await nursery.start(alice.delivery.run)
    bob.host.online = False
    yield net, alice, bob, box


async def flood(net: FakeNetwork, box: Box, target: PeerId, count: int) -> list[str]:
    """A fresh identity deposits ``count`` junk envelopes for ``target``; the result codes."""
    mallory = net.host(Identity(os.urandom(32)).peer_id)
    stream = await mallory.open_stream(box.identity.peer_id, mb.MAILBOX_PROTOCOL)
    codes = []
    for _ in range(count):
        reply = await ask(stream, mb.Deposit(envelope_for(target)))
        assert isinstance(reply, mb.Result)
        codes.append(reply.code)
    return codes


async def test_strangers_flooding_bob_leave_alice_room_at_the_cost_of_a_stamp(
    flooded: Flooded, autojump_clock: trio.abc.Clock
) -> None:
    net, alice, bob, box = flooded
    # Four fresh identities, junk as fast as they can: each gets its share only.
    for _ in range(4):
        codes = await flood(net, box, bob.node.peer_id, 12)
        assert codes == [mb.OK] * 5 + [mb.OVER_SHARE] * 7
    assert box.store.mailbox_usage(bob.node.peer_id) == (
        20,
        20 * len(envelope_for(bob.node.peer_id)),
    )
    # Half of bob's quota is used: a fifth identity must now pay for each envelope.
    assert set(await flood(net, box, bob.node.peer_id, 3)) == {mb.STAMP_REQUIRED}
    # Alice's node is asked for a stamp, mints it and is accepted.
    sent = await alice.node.send(bob.node.peer_id, "still gets through")
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DEPOSITED)
    assert box.store.mailbox_usage(bob.node.peer_id)[0] == 21
    # Bob comes back and reads it; the junk is dropped.
    bob.host.online, alice.host.online = True, False
    assert await bob.delivery.fetch_mailboxes() == 1
    assert [m.id for m in bob.node.messages(alice.node.peer_id).messages] == [sent.id]
    assert box.store.mailbox_usage(bob.node.peer_id) == (0, 0)


async def test_a_stamped_stranger_still_holds_only_its_share(flooded, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net, _, bob, box = flooded
    for _ in range(4):
        await flood(net, box, bob.node.peer_id, 5)
    mailbox = box.identity.peer_id
    mallory = net.host(Identity(os.urandom(32)).peer_id)
    stream = await mallory.open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    codes = []
    for _ in range(7):
        junk = envelope_for(bob.node.peer_id)
        token = mb.mint_stamp(mailbox, bob.node.peer_id, junk, box.service.now_ms(), 8)
        reply = await ask(stream, mb.Deposit(junk, token))
        assert isinstance(reply, mb.Result)
        codes.append(reply.code)
    assert codes == [mb.OK] * 5 + [mb.OVER_SHARE] * 2
    # A stamp made for another mailbox, or a forged one, does not count.
    junk = envelope_for(bob.node.peer_id)
    elsewhere = mb.mint_stamp(bob.node.peer_id, bob.node.peer_id, junk, box.service.now_ms(), 8)
    for token in (elsewhere, bytes(mb.STAMP_BYTES)):
        reply = await ask(stream, mb.Deposit(junk, token))
        assert isinstance(reply, mb.Result) and reply.code in (mb.STAMP_REQUIRED, mb.OVER_SHARE)
    other = await flood(net, box, bob.node.peer_id, 1)
    assert other == [mb.STAMP_REQUIRED]


async def test_one_depositor_is_rate_limited_across_recipients(flooded, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net, _, _, box = flooded
    mallory = net.host(Identity(os.urandom(32)).peer_id)
    stream = await mallory.open_stream(box.identity.peer_id, mb.MAILBOX_PROTOCOL)
    codes = []
    for _ in range(int(MAILBOX_DEPOSIT_BURST_PER_PEER) + 2):
        reply = await ask(stream, mb.Deposit(envelope_for(Identity(os.urandom(32)).peer_id)))
        assert isinstance(reply, mb.Result)
        codes.append(reply.code)
    assert codes.count(mb.OK) == MAILBOX_DEPOSIT_BURST_PER_PEER
    assert codes[-2:] == [mb.RATE_LIMITED] * 2
    await trio.sleep(1)  # the bucket refills
    reply = await ask(stream, mb.Deposit(envelope_for(Identity(os.urandom(32)).peer_id)))
    assert isinstance(reply, mb.Result) and reply.ok


def _events(peer: Peer, message: StoredMessage) -> list[str]:
    return [
        e.detail
        for e in peer.node.store.events(0, 500, [EventType.MESSAGE_STATUS])
        if e.message_id == message.id
    ]


async def test_a_full_mailbox_refusal_is_shown_with_the_message(nursery, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    net = FakeNetwork(nursery)
    full = mb.MailboxLimits(DAY_S, 100_000, 40, 1 << 20, 1, 1 << 30)
    box = await start_box(nursery, Box(net, limits=full))
    assert box.service.deposit(envelope_for(Identity(os.urandom(32)).peer_id)).ok
    alice, bob = Peer(net, "alice"), Peer(net, "bob")
    alice.node.add_contact_from_invite(bob.node.invite())
    await nursery.start(alice.delivery.run)
    bob.host.online = False
    sent = await alice.node.send(bob.node.peer_id, "is anyone holding this?")
    refused = f"mailbox {box.identity.peer_id.short()} refused: mailbox full"
    with trio.fail_after(60):
        while refused not in alice.node.status_detail(alice.node.message(sent.id.hex())[0]):  # noqa: ASYNC110
            await trio.sleep(0.1)
    message, history = alice.node.message(sent.id.hex())
    assert message.status is DeliveryStatus.QUEUED
    detail = alice.node.status_detail(message)
    note = history[-1].detail
    assert note.startswith(refused) and note.endswith(
        f"; bob is not reachable: {bob.node.peer_id.short()} is offline"
    )
    assert detail.startswith(note + " since ") and "UTC; next try " in detail
    assert history[-1].status is DeliveryStatus.QUEUED
    assert note in _events(alice, sent)
    # An hour of retries repeats the same refusal: noted once, not per round.
    await trio.sleep(3600)
    assert alice.node.message(sent.id.hex())[1] == history
    assert _events(alice, sent).count(note) == 1
    # Room again: deposited, and the detail says where it is held.
    box.service.limits = mb.MailboxLimits(DAY_S, 100_000, 40, 1 << 20, 10, 1 << 30)
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DEPOSITED, limit=600)
    assert "held by 1 mailbox(es) until" in alice.node.status_detail(
        alice.node.message(sent.id.hex())[0]
    )
    assert len(alice.node.message(sent.id.hex())[1]) <= MAX_STATUS_HISTORY
