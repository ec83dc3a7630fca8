"""Taking deposits back (``withdraw`` on ``/p2pdm/mailbox/1.1.0``): an unsend
withdraws the message's deposits; a wrong secret, someone else's, or a bulk
guess removes nothing; an older mailbox keeps working for deposits."""

from __future__ import annotations

import os

import pytest
import trio

from p2pdm.core import mailbox as mb
from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus
from p2pdm.core.wire import Envelope
from p2pdm.services.limits import MAX_WITHDRAW_ATTEMPTS, WITHDRAW_RETRY_SECONDS
from p2pdm.services.mailbox_client import MailboxClient, withdraw_secret
from p2pdm.sim.network import wait_until
from tests.services.conftest import BROKEN, Box, Peer, World, ask, wait_status


def ids_at(box: Box, alice: Peer, bob: Peer) -> set[bytes]:
    now = int(trio.current_time() * 1000)
    return {
        Envelope.decode(e.envelope).id
        for e in box.store.mailbox_fetch(bob.node.peer_id, 0, now, 100)
    }


async def deposited_while_away(world: World, text: str) -> tuple[bytes, bytes]:
    """Bob is away; alice sends ``text``; returns (message id, envelope id) once
    mailboxes hold it."""
    _, alice, bob, _ = world
    bob.host.online = False
    sent = await alice.node.send(bob.node.peer_id, text)
    await wait_status(alice.node, sent.id.hex(), DeliveryStatus.DEPOSITED)
    [item] = [i for i in alice.node.store.outbox_for(bob.node.peer_id) if i.message_id == sent.id]
    return sent.id, item.envelope_id


async def test_an_unsend_takes_the_deposits_back_from_every_mailbox(
    world: World, nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    _, alice, bob, boxes = world
    await nursery.start(alice.delivery.run_withdrawer)
    kept_id, kept_envelope = await deposited_while_away(world, "see you at 8")
    gone_id, gone_envelope = await deposited_while_away(world, "my pin is 1234")
    holders = [b for b in boxes if gone_envelope in ids_at(b, alice, bob)]
    assert len(holders) == 3
    # Each deposit carried a withdraw hash, one per mailbox and envelope.
    hashes = {
        e.withdraw for b in holders for e in b.store.mailbox_fetch(bob.node.peer_id, 0, 0, 100)
    }
    assert len(hashes) == 6 and b"" not in hashes

    alice.node.unsend(gone_id)
    await wait_until(lambda: all(gone_envelope not in ids_at(b, alice, bob) for b in boxes), 10)
    # The other message stays; the unsend itself is deposited for bob.
    for box in holders:
        assert kept_envelope in ids_at(box, alice, bob)
    assert sum(b.service.withdrawn for b in boxes) == 3
    assert alice.delivery.withdrawer.withdrawn == 3
    assert alice.node.store.withdrawals_count() == 0

    # Bob comes back: the unsent message's envelope is nowhere to fetch.
    bob.host.online = True
    alice.host.online = False
    await bob.delivery.fetch_mailboxes()
    got = bob.node.store.get_message(gone_id)
    assert got is None or got.unsent
    assert bob.node.store.get_message(kept_id) is not None


async def test_a_wrong_secret_someone_elses_or_a_bulk_guess_removes_nothing(
    world: World, autojump_clock: trio.abc.Clock
) -> None:
    net, alice, bob, boxes = world
    _, envelope_id = await deposited_while_away(world, "hello")
    box = next(b for b in boxes if envelope_id in ids_at(b, alice, bob))
    mailbox = box.identity.peer_id
    mallory = Identity(os.urandom(32))
    host = net.host(mallory.peer_id)
    client = MailboxClient(mallory, host)
    # Mallory knows the envelope id (say she is another of bob's mailboxes):
    # her own secrets for it remove nothing.
    assert await client.withdraw(mailbox, [], [envelope_id]) == 0
    # Nor do 64 random secrets, nor a secret keyed for another mailbox.
    stream = await host.open_stream(mailbox, mb.MAILBOX_PROTOCOL_WITHDRAW)
    guesses = tuple(os.urandom(32) for _ in range(mb.MAX_WITHDRAW_ITEMS))
    assert await ask(stream, mb.Withdraw(guesses)) == mb.Result(mb.OK)
    other = next(b for b in boxes if b is not box).identity.peer_id
    elsewhere = alice.delivery.mailbox_client.withdraw_secret(other, envelope_id)
    assert (await ask(stream, mb.Withdraw((elsewhere,)))).count == 0  # type: ignore[union-attr]
    # A request of more than MAX_WITHDRAW_ITEMS is not a request: disconnected.
    too_many = mb.Withdraw((*guesses, os.urandom(32)))
    with pytest.raises(BROKEN):
        await ask(stream, too_many)
    assert envelope_id in ids_at(box, alice, bob)
    # The right secret, from whoever presents it, does.
    secret = alice.delivery.mailbox_client.withdraw_secret(mailbox, envelope_id)
    stream = await host.open_stream(mailbox, mb.MAILBOX_PROTOCOL_WITHDRAW)
    assert (await ask(stream, mb.Withdraw((secret, secret)))).count == 1  # type: ignore[union-attr]
    assert envelope_id not in ids_at(box, alice, bob)


async def test_withdraw_is_not_spoken_on_1_0_and_unknown_requests_are_answered_on_1_1(
    world: World, autojump_clock: trio.abc.Clock
) -> None:
    net, _, _, boxes = world
    mailbox = boxes[0].identity.peer_id
    host = net.host(Identity(os.urandom(32)).peer_id)
    stream = await host.open_stream(mailbox, mb.MAILBOX_PROTOCOL_WITHDRAW)
    answer = await ask(stream, mb.UnknownRequest("compact"))
    assert isinstance(answer, mb.Result) and answer.code == mb.UNKNOWN_REQUEST
    assert (await ask(stream, mb.Fetch())).code == mb.UNAUTHORIZED  # type: ignore[union-attr]
    # 1.0.0 is as it was: a withdraw there is a broken protocol.
    old = await host.open_stream(mailbox, mb.MAILBOX_PROTOCOL)
    with pytest.raises(BROKEN):
        await ask(old, mb.Withdraw((os.urandom(32),)))


async def test_an_older_mailbox_takes_deposits_and_its_withdraws_are_let_go(
    world: World, nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    _, alice, bob, boxes = world
    for box in boxes:  # as a mailbox of before: 1.0.0 only
        del box.host.handlers[mb.MAILBOX_PROTOCOL_WITHDRAW]
    await nursery.start(alice.delivery.run_withdrawer)
    message_id, envelope_id = await deposited_while_away(world, "hi")
    holders = [b for b in boxes if envelope_id in ids_at(b, alice, bob)]
    assert len(holders) == 3
    assert all(
        e.withdraw == b"" for b in holders for e in b.store.mailbox_fetch(bob.node.peer_id, 0, 0, 9)
    )
    alice.node.unsend(message_id)
    await wait_until(lambda: alice.node.store.withdrawals_count() == 0, 10)
    # Nothing could be taken back: the copies expire there (the receiver
    # ignores them: the unsend overtakes them).
    assert all(envelope_id in ids_at(b, alice, bob) for b in holders)
    assert alice.delivery.withdrawer.withdrawn == 0


async def test_an_unreachable_mailbox_is_tried_a_bounded_number_of_times(
    world: World, nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    _, alice, bob, boxes = world
    message_id, envelope_id = await deposited_while_away(world, "hi")
    holders = [b for b in boxes if envelope_id in ids_at(b, alice, bob)]
    holders[0].host.online = False
    await nursery.start(alice.delivery.run_withdrawer)
    alice.node.unsend(message_id)
    await wait_until(lambda: alice.node.store.withdrawals_count() == 1, 10)
    [left] = alice.node.store.withdrawals_due(alice.node.now_ms() + 10**6, 10)
    assert left.mailbox == holders[0].identity.peer_id and left.attempts == 1
    # Backing off from WITHDRAW_RETRY_SECONDS, it gives up after MAX_WITHDRAW_ATTEMPTS.
    total = WITHDRAW_RETRY_SECONDS * (2**MAX_WITHDRAW_ATTEMPTS) + 120
    await wait_until(lambda: alice.node.store.withdrawals_count() == 0, total)
    assert envelope_id in ids_at(holders[0], alice, bob)  # it expires there


def test_withdraw_secrets_depend_on_key_mailbox_and_envelope() -> None:
    a, b = (Identity(os.urandom(32)).peer_id for _ in range(2))
    key = os.urandom(32)
    one = withdraw_secret(key, a, b"\x01" * 16)
    assert len(one) == mb.WITHDRAW_SECRET_BYTES
    assert one == withdraw_secret(key, a, b"\x01" * 16)
    assert one != withdraw_secret(key, b, b"\x01" * 16)
    assert one != withdraw_secret(key, a, b"\x02" * 16)
    assert one != withdraw_secret(os.urandom(32), a, b"\x01" * 16)
    assert mb.withdraw_hash(one) != one and len(mb.withdraw_hash(one)) == mb.WITHDRAW_HASH_BYTES
