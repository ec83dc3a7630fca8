"""Attacks on whole nodes over real libp2p on 127.0.0.1 (TCP, Noise, Yamux).

Each test runs p2pdm nodes with the composition ``p2pdm run`` uses
(:func:`p2pdm.daemon.runner.serve_node`, through the ``sim_network``
fixture or directly) and an attacker that is a libp2p host of its own with a
fresh identity. The attacker speaks the p2pdm protocols with the project's
own code (the mailbox client, the dm frames, a node's messenger to seal its
envelopes) but sends hostile content:

- a mailbox operator squatting the ids of the envelopes it holds for an
  offline recipient, at the mailbox and directly to the recipient;
- strangers flooding a node with message requests;
- strangers using up a recipient's mailbox quota with junk.

The tests beside these (``test_envelope_ids``, ``test_mailbox_fair``,
``tests/node/test_request_flood``) perform the same attacks over the
in-memory ``tests.fakenet`` with virtual time, and at greater length.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import pytest
import trio

from p2pdm.core import mailbox as mb
from p2pdm.core.dm import DM_PROTOCOL, Ack, Deliver, decode_ack
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import DeliveryStatus, EventType, StoredMessage
from p2pdm.core.strangers import StrangerGate
from p2pdm.core.wire import Envelope
from p2pdm.limits import MAX_CONTROL_FRAME_BYTES
from p2pdm.net import Host, open_host
from p2pdm.node.messenger import wall_ms
from p2pdm.node.node import Node
from p2pdm.services.mailbox_client import REFUSALS, MailboxClient
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from p2pdm.store import MemoryStore
from p2pdm.store.base import RequestCaps
from tests.conftest import LOOPBACK, UPKEEP
from tests.served import served
from tests.services.conftest import DAY_S, FAIR

pytestmark = pytest.mark.net

#: Longest any one step of these tests waits (real seconds on a loaded machine).
STEP = 10.0
#: Attacker's per-request bound on frame writes and reads.
IO_TIMEOUT = 5.0


@dataclass
class Stranger:
    """An attacker: a libp2p host of a fresh identity, and a node (never served)
    of the same identity that seals its envelopes."""

    identity: Identity
    node: Node
    host: Host

    def sealed_for(self, recipient: PeerId, count: int) -> list[Envelope]:
        """``count`` valid envelopes from us to ``recipient``, as our outbox holds them."""
        before = len(self.node.store.outbox_for(recipient))
        for i in range(count):
            self.node.send_text(recipient, f"from a stranger {before + i}")
        queued = self.node.store.outbox_for(recipient)[before:]
        assert len(queued) == count
        return [Envelope.decode(item.envelope) for item in queued]

    def squat(self, recipient: PeerId, ids: Sequence[bytes]) -> list[bytes]:
        """Our own valid envelopes for ``recipient``, each under one of ``ids``."""
        ours = self.sealed_for(recipient, len(ids))
        return [
            Envelope(recipient, eid, env.expires_at_s, env.sealed).encode()
            for eid, env in zip(ids, ours, strict=True)
        ]

    async def deliver(
        self, peer: PeerId, addrs: Sequence[str], envelopes: Sequence[bytes]
    ) -> list[Ack]:
        """Write ``deliver`` frames on one ``/p2pdm/dm`` stream; the acks, in order."""
        async with await self.host.open_stream(peer, DM_PROTOCOL, addrs) as stream:
            for seq, envelope in enumerate(envelopes, 1):
                await stream.write_frame(Deliver(seq, envelope).encode(), IO_TIMEOUT)
            acks = []
            for _ in envelopes:
                frame = await stream.read_frame(MAX_CONTROL_FRAME_BYTES, IO_TIMEOUT)
                assert frame is not None
                acks.append(decode_ack(frame))
        return acks


@asynccontextmanager
async def stranger(invite: str | None = None) -> AsyncIterator[Stranger]:
    """A fresh identity on its own loopback host; ``invite``: whom it can seal for."""
    identity = Identity(os.urandom(32))
    node = Node(identity, MemoryStore())
    if invite is not None:
        node.add_contact_from_invite(invite)  # one way: it stays a stranger to them
    async with open_host(identity.seed, LOOPBACK, upkeep=UPKEEP) as host:
        yield Stranger(identity, node, host)


def junk_for(recipient: PeerId) -> bytes:
    """Random sealed bytes for ``recipient``: a mailbox cannot tell them from real ones."""
    return Envelope.create(recipient, wall_ms() // 1000 + DAY_S, os.urandom(100)).encode()


def from_peer(node: Node, peer: PeerId) -> list[StoredMessage]:
    return list(node.messages(peer, limit=100).messages)


# --- envelope-id squatting ----------------------------------------------------


@pytest.mark.slow  # a node restarting on loopback takes seconds
async def test_a_mailbox_operator_cannot_squat_alices_envelope_ids(
    sim_network: SimNetworkFactory,
) -> None:
    """Bob is away; Alice's two envelopes wait at a mailbox. Its operator reads
    their ids, withholds them and has a stranger deposit valid envelopes for
    Bob under those ids: refused. Served to Bob anyway, Bob refuses them; once
    the operator lets Alice's envelopes go, Bob stores them as hers, and only
    then does Alice see them delivered."""
    async with sim_network(3, clock="real", contacts=[(1, 2)], mailboxes=1, upkeep=UPKEEP) as net:
        box, bob, alice = net[0], net[1], net[2]
        invite = bob.running.node.invite()
        await net.stop(bob)
        sent = [await net.send(2, 1, f"genuine {i}") for i in range(2)]
        for message in sent:
            await net.wait_status(2, message, DeliveryStatus.DEPOSITED, STEP)
        # No direct retry meanwhile: only the mailbox can tell Bob.
        alice.running.host.set_peer_filter(lambda peer: peer != bob.peer_id)

        # The operator reads what it holds for Bob, and withholds it.
        held = box.store.mailbox_fetch(bob.peer_id, 0, wall_ms(), mb.MAX_FETCH_ITEMS)
        assert len(held) == 2
        box.store.mailbox_delete(bob.peer_id, [item.seq for item in held])
        ids = [Envelope.decode(item.envelope).id for item in held]

        async with stranger(invite) as mallory:
            forged = mallory.squat(bob.peer_id, ids)
            client = MailboxClient(mallory.identity, mallory.host)
            with trio.fail_after(STEP):
                results = await client.deposit(box.peer_id, box.running.node.addrs, forged)
        assert [r.code for r in results] == [mb.BAD_ID, mb.BAD_ID]
        assert box.store.mailbox_usage(bob.peer_id) == (0, 0)

        # The operator's mailbox serves them to Bob anyway: Bob refuses them
        # for good (so they are deleted there) and stores nothing.
        now = wall_ms()
        for eid, envelope in zip(ids, forged, strict=True):
            box.store.mailbox_add(
                mb.StoredEnvelope(bob.peer_id, eid, envelope, now, now + DAY_S * 1000)
            )
        await net.start(bob)  # fetches from its mailboxes at start
        await wait_until(lambda: box.store.mailbox_usage(bob.peer_id) == (0, 0), STEP)
        assert bob.store.counts()["messages"] == 0

        # The operator lets Alice's envelopes go: Bob stores them, as hers.
        for item in held:
            box.store.mailbox_add(replace(item, seq=0))
        bob.running.delivery.fetch_now()
        for message in sent:
            received = await net.wait_received(1, message, STEP)
            assert received.peer == alice.peer_id
            assert received.body == message.body
        assert sorted(m.id for m in from_peer(bob.running.node, alice.peer_id)) == sorted(
            m.id for m in sent
        )
        # Alice still only knows them deposited; she sees delivered once she reaches Bob.
        assert {alice.store.get_message(m.id).status for m in sent} == {  # type: ignore[union-attr]
            DeliveryStatus.DEPOSITED
        }
        alice.running.host.set_peer_filter(None)
        alice.running.delivery.retry_now(bob.peer_id)
        for message in sent:
            await net.wait_delivered(2, message, STEP)
        assert bob.store.counts()["messages"] == 2


@pytest.mark.slow  # a node restarting on loopback takes seconds
async def test_a_stranger_claiming_alices_envelope_id_is_refused_directly(
    sim_network: SimNetworkFactory,
) -> None:
    """Bob is away and Alice's envelope waits in her outbox. A stranger that
    learned its id delivers its own valid envelope for Bob under that id over
    ``/p2pdm/dm``: refused, not acked "already stored"; Alice's genuine
    envelope, sent later, is stored as hers."""
    async with sim_network(3, clock="real", contacts=[(1, 2)], mailboxes=0, upkeep=UPKEEP) as net:
        bob, alice = net[1], net[2]
        invite = bob.running.node.invite()
        await net.stop(bob)
        sent = await net.send(2, 1, "genuine")
        (queued,) = alice.store.outbox_for(bob.peer_id)
        # Alice cannot reach Bob for now: her envelope stays queued.
        alice.running.host.set_peer_filter(lambda peer: peer != bob.peer_id)

        await net.start(bob)
        async with stranger(invite) as mallory:
            (forged,) = mallory.squat(bob.peer_id, [queued.envelope_id])
            with trio.fail_after(STEP):
                (ack,) = await mallory.deliver(bob.peer_id, bob.running.node.addrs, [forged])
                # The same stranger's genuine envelope (its own id) is taken: only the id lied.
                (honest,) = mallory.sealed_for(bob.peer_id, 1)
                (ok,) = await mallory.deliver(
                    bob.peer_id, bob.running.node.addrs, [honest.encode()]
                )
        assert (ack.result, ack.detail) == ("rejected", "EnvelopeIdMismatch")
        assert (ok.result, ok.detail) == ("ok", "")
        assert from_peer(bob.running.node, alice.peer_id) == []
        assert alice.store.get_message(sent.id).status is DeliveryStatus.QUEUED  # type: ignore[union-attr]

        alice.running.host.set_peer_filter(None)
        alice.running.delivery.retry_now(bob.peer_id)
        await net.wait_delivered(2, sent, STEP)
        (stored,) = from_peer(bob.running.node, alice.peer_id)
        assert (stored.id, stored.body) == (sent.id, sent.body)


# --- message-request flood ----------------------------------------------------

#: Bob's caps, lowered so that a few dozen requests reach them.
CAPS = RequestCaps(messages_per_peer=5, bytes_per_peer=1 << 20, messages=10, bytes=1 << 20)
MAX_EVENTS = 12
MAX_REQUEST_EVENTS = 6
#: Strangers' budgets: 8 requests at once each, 20 at once together, and
#: (at a token per 1,000 s) no refill within the test.
BURST_PER_STRANGER = 8
BURST_ALL_STRANGERS = 20
NO_REFILL = 0.001
FLOODERS = 3
FLOOD = 12  # deliver frames per flooder, on one stream


async def test_a_request_flood_over_libp2p_is_refused_capped_and_spares_contacts() -> None:
    """Fresh identities flood Bob with message requests over ``/p2pdm/dm``: past
    their rate they are told to retry, pending requests stay within the caps,
    Alice's message gets through meanwhile, and a bot's cursor from before the
    flood still reads her events without a gap."""
    store = MemoryStore(
        request_caps=CAPS, max_events=MAX_EVENTS, max_request_events=MAX_REQUEST_EVENTS
    )
    gate = StrangerGate(
        rate_per_peer=NO_REFILL,
        burst_per_peer=BURST_PER_STRANGER,
        rate=NO_REFILL,
        burst=BURST_ALL_STRANGERS,
    )
    bob = Node(Identity(os.urandom(32)), store, strangers=gate)
    alice = Node(Identity(os.urandom(32)), MemoryStore())
    async with served(bob, start_s=STEP), served(alice, bob.addrs[0], start_s=STEP):
        alice.add_contact_from_invite(bob.invite(), name="bob")
        bob.add_contact_from_invite(alice.invite(), name="alice")
        first = alice.send_text(bob.peer_id, "hi bob, before the flood")
        await wait_until(lambda: store.get_message(first.id) is not None, STEP)
        cursor = bob.event_page(0, 500).cursor  # a bot has read everything up to here

        invite = bob.invite()
        acks: dict[PeerId, list[str]] = {}
        async with trio.open_nursery() as nursery:

            async def flood() -> None:
                async with stranger(invite) as mallory:
                    envelopes = [e.encode() for e in mallory.sealed_for(bob.peer_id, FLOOD)]
                    with trio.fail_after(STEP):
                        got = await mallory.deliver(bob.peer_id, bob.addrs, envelopes)
                    acks[mallory.identity.peer_id] = [a.result for a in got]

            for _ in range(FLOODERS):
                nursery.start_soon(flood)
            # Once the strangers are being turned away (or the flood is over,
            # if they never were), Alice writes to Bob.
            await wait_until(lambda: gate.refused > 0 or len(acks) == FLOODERS, STEP)
            during = alice.send_text(bob.peer_id, "still there, bob?")
            await wait_until(
                lambda: alice.message(during.id.hex())[0].status is DeliveryStatus.DELIVERED,
                STEP,
            )
        # The strangers' budget is still spent: one more fresh identity is told to retry.
        async with stranger(invite) as late:
            with trio.fail_after(STEP):
                (ack,) = await late.deliver(
                    bob.peer_id, bob.addrs, [late.sealed_for(bob.peer_id, 1)[0].encode()]
                )
        assert ack.result == "retry"

    # Each stranger got its burst at most, all of them the strangers' burst; the rest: retry.
    assert len(acks) == FLOODERS
    assert all(set(results) <= {"ok", "retry"} for results in acks.values())
    accepted = [results.count("ok") for results in acks.values()]
    assert all(n <= BURST_PER_STRANGER for n in accepted)
    assert sum(accepted) == BURST_ALL_STRANGERS
    # Pending requests stay within the caps; the oldest were dropped, and counted.
    usage = store.request_usage()
    assert usage.messages == CAPS.messages
    assert usage.dropped == sum(accepted) - CAPS.messages
    for peer in acks:
        assert len(from_peer(bob, peer)) <= CAPS.messages_per_peer
    # The bot resumes from its old cursor: no gap among contacts' events, and
    # Alice's message is there, although the strangers made more events than
    # both logs keep.
    assert store.event_bounds()[1] - cursor > MAX_EVENTS + MAX_REQUEST_EVENTS
    page = bob.event_page(cursor, 500)
    assert page.gap is False and page.requests_gap is True
    received = [e.message_id for e in page.events if e.type is EventType.MESSAGE_RECEIVED]
    assert during.id in received
    contacts_only = bob.event_page(cursor, 500, peers={alice.peer_id})
    assert contacts_only.gap is False
    # Alice's connection may drop and come back on a loaded machine: her
    # presence events are hers too, and nothing else of hers is there.
    presence = {EventType.PEER_ONLINE, EventType.PEER_OFFLINE}
    assert [e.message_id for e in contacts_only.events if e.type not in presence] == [during.id]


# --- mailbox quota flood ------------------------------------------------------

SHARE = FAIR.depositor_quota()[0]
JUNK_DEPOSITORS = 4
JUNK = 12  # envelopes per junk depositor


@pytest.mark.slow  # a node restarting on loopback takes seconds
async def test_strangers_flooding_a_mailbox_leave_alice_her_share(
    sim_network: SimNetworkFactory,
) -> None:
    """Four fresh identities deposit junk for Bob at a mailbox over libp2p: each
    gets its share only. Alice's node then deposits, paying a stamp, until her
    own share is used; that refusal shows with her message. Bob comes back and
    gets every message of hers."""
    async with sim_network(3, clock="real", contacts=[(1, 2)], mailboxes=1, upkeep=UPKEEP) as net:
        box, bob, alice = net[0], net[1], net[2]
        service = box.running.mailbox
        assert service is not None
        service.limits = FAIR
        await net.stop(bob)
        addrs = box.running.node.addrs

        for _ in range(JUNK_DEPOSITORS):
            async with stranger() as mallory:
                client = MailboxClient(mallory.identity, mallory.host)
                with trio.fail_after(STEP):
                    results = await client.deposit(
                        box.peer_id, addrs, [junk_for(bob.peer_id) for _ in range(JUNK)]
                    )
            assert [r.code for r in results] == [mb.OK] * SHARE + [mb.OVER_SHARE] * (JUNK - SHARE)
        junk_held = JUNK_DEPOSITORS * SHARE
        assert box.store.mailbox_usage(bob.peer_id)[0] == junk_held
        # Half of Bob's quota is used: an unstamped deposit is now refused.
        async with stranger() as probe:
            with trio.fail_after(STEP):
                stream = await probe.host.open_stream(box.peer_id, mb.MAILBOX_PROTOCOL, addrs)
                async with stream:
                    deposit = mb.Deposit(junk_for(bob.peer_id)).encode()
                    await stream.write_frame(deposit, IO_TIMEOUT)
                    frame = await stream.read_frame(mb.MAX_REPLY_FRAME_BYTES, IO_TIMEOUT)
        assert frame is not None
        reply = mb.decode_reply(frame)
        assert isinstance(reply, mb.Result) and reply.code == mb.STAMP_REQUIRED

        # Alice writes one more message than her share: her node mints stamps,
        # SHARE are deposited, and the refusal of the last is shown with it.
        sent = [await net.send(2, 1, f"alice {i}") for i in range(SHARE + 1)]
        refused = f"mailbox {box.peer_id.short()} refused: {REFUSALS[mb.OVER_SHARE]}"
        node = alice.running.node

        def settled() -> bool:
            statuses = [node.message(m.id.hex())[0] for m in sent]
            deposited = [m for m in statuses if m.status is DeliveryStatus.DEPOSITED]
            shown = [m for m in statuses if refused in node.status_detail(m)]
            return len(deposited) == SHARE and len(shown) == 1

        await wait_until(settled, STEP)
        # Held past half of Bob's quota, so each of them came with a stamp.
        assert box.store.mailbox_usage(bob.peer_id)[0] == junk_held + SHARE
        (left,) = [m for m in sent if node.message(m.id.hex())[0].status is DeliveryStatus.QUEUED]
        _, history = node.message(left.id.hex())
        assert refused in history[-1].detail

        # Bob comes back: he gets all of Alice's messages (from the mailbox,
        # and the last one directly), and the junk is gone from the mailbox.
        await net.start(bob)
        for message in sent:
            await net.wait_delivered(2, message, STEP)
        assert sorted(m.id for m in from_peer(bob.running.node, alice.peer_id)) == sorted(
            m.id for m in sent
        )
        await wait_until(lambda: box.store.mailbox_usage(bob.peer_id) == (0, 0), STEP)
