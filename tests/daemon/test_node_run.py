"""Whole nodes on loopback, in one process.

Tests of the network between nodes take them from the ``sim_network`` fixture
(``serve_node``, the composition ``run_node`` shares); those that need a home,
the local API or a hand-built hostile host make them with :func:`node`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pdm.client import api_addr_path
from p2pdm.core import records
from p2pdm.core.dm import DM_PROTOCOL, Deliver
from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import FetchedEnvelope
from p2pdm.core.model import DeliveryStatus, Direction
from p2pdm.daemon.runner import (
    RECORD_SEQ_SETTING,
    RunOptions,
    fetch_bundle,
    publish_record,
    run_node,
)
from p2pdm.errors import HomeError, IdentityError
from p2pdm.net import open_host
from p2pdm.net.testing import host_seed
from p2pdm.node.messenger import message_text
from p2pdm.services.mailbox_client import MailboxClient
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from tests.conftest import LOOPBACK, UPKEEP, node, wait_for_status

pytestmark = pytest.mark.net


async def test_a_finds_c_by_peer_id_alone_through_b(sim_network: SimNetworkFactory) -> None:
    """A and C know only B; A adds C by PeerID, fetches its bundle from the DHT, sends;
    C decrypts and verifies; A sees delivered, then read."""
    async with sim_network(3, clock="real", contacts=0, mailboxes=0, upkeep=UPKEEP) as net:
        a, c = net[1].running.node, net[2].running.node  # both joined through B (node 0)
        assert a.store.get_contact(c.peer_id) is None
        # C's publisher puts its record into the DHT soon after C serves.
        with trio.fail_after(20):
            while await fetch_bundle(net[1].running.host, c.peer_id) is None:  # noqa: ASYNC110
                await trio.sleep(0.1)
        # Neither has the other's addresses or bundle: only a PeerID.
        a.add_contact_by_peer_id(str(c.peer_id), "carol")
        sent = await a.send(c.peer_id, "hi carol")
        await net.wait_delivered(1, sent, 20)

        [got] = c.messages(a.peer_id).messages
        assert message_text(got) == "hi carol" and got.direction is Direction.IN
        # Alice is not Carol's contact: the message is a request, not in the inbox.
        [conversation] = c.conversations()
        assert conversation.request is True

        # Carol accepts Alice (a request gets no read receipts), then reads.
        c.add_contact_by_peer_id(str(a.peer_id), "alice")
        c.mark_message_read(got.id.hex())
        await net.wait_status(1, sent, DeliveryStatus.READ, 20)
        history = [change.status for change in a.message(sent.id.hex())[1]]
        assert history[-3:] == [DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ]
        # Alice's address book learnt where Carol is.
        contact = a.store.get_contact(c.peer_id)
        assert contact is not None and contact.addrs


async def test_sending_to_a_peer_id_nobody_published_waits_for_its_keys(tmp_path: Path) -> None:
    """Accepted and kept, with no envelope yet, saying why (p2pdm.node.key_waits)."""
    async with node(tmp_path, "bob") as b, node(tmp_path, "alice", b.running) as a:
        stranger = PeerId.parse("12D3KooWGjssTSMGSG4tCMJCc5ju1r33TjS8GXjjaNVe3zGHAKcB")
        await a.call("POST", "/v1/contacts", json={"peer_id": str(stranger), "name": "x"})
        response = await a.http.post("/v1/messages", json={"to": "x", "text": "hello?"})
        assert response.status_code == 201
        shown = response.json()
        assert shown["status"] == "queued"
        assert shown["status_detail"].startswith("waiting for x's keys: x is not found")
        assert a.running.node.store.counts()["messages"] == 1
        assert a.running.node.store.outbox_for(stranger) == []


async def test_records_are_republished_with_a_growing_sequence(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(2, clock="real", contacts=0, mailboxes=0, upkeep=UPKEEP) as net:
        a, b = net[1].running, net[0].running
        key = records.record_key(a.node.peer_id)
        # The publisher's first round, soon after the node serves.
        await wait_until(lambda: a.node.store.get_setting(RECORD_SEQ_SETTING) is not None, 10)
        first = a.node.store.get_setting(RECORD_SEQ_SETTING)
        assert isinstance(first, int)
        assert await publish_record(a.node, a.host)
        second = a.node.store.get_setting(RECORD_SEQ_SETTING)
        assert isinstance(second, int) and second > first
        value = await b.host.get_record(key, 5)
        assert value is not None and records.validate(key, value).seq == second
        # The record carries no one-time prekeys: anyone can read it.
        assert records.validate(key, value).bundle.one_time_prekeys == ()


async def test_a_second_node_on_the_same_home_is_refused(tmp_path: Path) -> None:
    async with node(tmp_path, "alice") as a:
        with pytest.raises(HomeError, match="a node is running from"):
            await run_node(a.home, RunOptions(listen=LOOPBACK, api=("127.0.0.1", 0)))
        with pytest.raises(HomeError, match="a node is running from"):
            a.home.create_identity("other", force=True)
        assert api_addr_path(a.home).is_file()
    assert not api_addr_path(a.home).exists()
    with pytest.raises(IdentityError, match="already exists"):
        a.home.create_identity("other")


async def test_a_hostile_peer_on_the_real_stack_does_not_stop_delivery(tmp_path: Path) -> None:
    """Garbage, an oversized frame, a forged envelope, a replay and a stream flood
    from one peer; the victim keeps receiving from others."""
    async with (
        node(tmp_path, "bob") as b,
        node(tmp_path, "alice", b.running) as a,
        open_host(host_seed(66), LOOPBACK) as mallory,
    ):
        victim = b.running.node.peer_id
        first = await a.call("POST", "/v1/contacts", json={"invite": b.running.node.invite()})
        assert first["peer_id"] == b.id
        sent = await a.call("POST", "/v1/messages", json={"to": b.id, "text": "one"})
        await wait_for_status(a, sent["id"], "delivered", 10)
        [item] = b.running.node.store.messages(
            b.running.node.store.list_conversations()[0].id, 10, None
        ).messages
        assert item.direction == Direction.IN

        attacks: list[bytes] = [
            b"\x05garbage-not-cbor",
            (2 << 20).to_bytes(4, "big"),  # a length prefix far over the cap
        ]
        for payload in attacks:
            stream = await mallory.open_stream(victim, DM_PROTOCOL, b.running.node.addrs)
            await stream._raw.send_all(payload)  # raw bytes, not a well-formed frame
            await trio.sleep(0.2)
        # A forged envelope (random bytes inside a valid deliver frame) is refused.
        stream = await mallory.open_stream(victim, DM_PROTOCOL, b.running.node.addrs)
        await stream.write_frame(Deliver(1, b"\x00" * 200).encode(), 5)
        ack = await stream.read_frame(1024, 5)
        assert ack is not None and b"rejected" in ack
        # A flood of streams: beyond the per-peer limit they are reset.
        for _ in range(10):
            try:
                await mallory.open_stream(victim, DM_PROTOCOL, b.running.node.addrs)
            except Exception:
                break
        # The victim still takes Alice's messages.
        again = await a.call("POST", "/v1/messages", json={"to": b.id, "text": "two"})
        await wait_for_status(a, again["id"], "delivered", 10)
        assert b.running.node.store.counts()["messages"] == 2


@pytest.mark.slow
async def test_outbox_survives_a_restart_of_the_sender(tmp_path: Path) -> None:
    """Messages queued while the recipient is away are delivered after the
    sender itself restarts: the outbox is in the store."""
    async with node(tmp_path, "bob") as b:
        async with node(tmp_path, "alice", b.running) as a:
            async with node(tmp_path, "carol", b.running) as c:
                invite = c.running.node.invite()
            await a.call("POST", "/v1/contacts", json={"invite": invite})
            ids = [
                (await a.call("POST", "/v1/messages", json={"to": "carol", "text": f"m{i}"}))["id"]
                for i in range(5)
            ]
        # Alice stopped with five messages queued; Carol comes back, then Alice.
        async with node(tmp_path, "carol", b.running) as c, node(tmp_path, "alice", b.running) as a:
            for message_id in ids:
                await wait_for_status(a, message_id, "delivered", 30)
            assert c.running.node.store.counts()["messages"] == 5


@pytest.mark.slow
async def test_offline_both_ways_through_a_mailbox(sim_network: SimNetworkFactory) -> None:
    """Carol is offline: Alice deposits at the mailbox node and goes offline too;
    Carol comes back and gets the message; Alice comes back and sees delivered."""
    async with sim_network(3, clock="real", contacts=[(1, 2)], upkeep=UPKEEP) as net:
        m, carol, alice = net[0], net[1], net[2]  # node 0 offers the mailbox
        await net.stop(carol)
        sent = await net.send(2, 1, "while away")
        deposited = await net.wait_status(2, sent, DeliveryStatus.DEPOSITED, 30)
        detail = alice.running.node.status_detail(deposited)
        assert detail.startswith("held by 1 mailbox") and "until" in detail
        assert alice.store.outbox_count() == 1  # still tried directly
        await net.stop(alice)

        await net.start(carol)
        await net.wait_received(1, sent, 30)
        [got] = carol.running.node.messages(alice.peer_id).messages
        assert message_text(got) == "while away"
        # Carol's delivery receipt waits in Alice's mailboxes.
        await wait_until(lambda: m.store.mailbox_usage(alice.peer_id)[0] > 0, 30)
        await net.stop(carol)

        await net.start(alice)
        await net.wait_delivered(2, sent, 30)
        # Fetched and deleted.
        await wait_until(lambda: m.store.mailbox_usage() == (0, 0), 30)


@pytest.mark.slow
async def test_two_of_three_mailboxes_gone_still_delivered(sim_network: SimNetworkFactory) -> None:
    """Real libp2p: the message sits at three mailboxes; two of them stop
    before Carol comes back; she gets it from the third."""
    async with sim_network(5, clock="real", contacts=[(3, 4)], mailboxes=3, upkeep=UPKEEP) as net:
        mailboxes, carol, alice = net.nodes[:3], net[3], net[4]
        await net.stop(carol)
        sent = await net.send(4, 3, "kept")
        await net.wait_status(4, sent, DeliveryStatus.DEPOSITED, 30)
        [item] = alice.store.outbox_for(carol.peer_id)
        await wait_until(lambda: len(alice.store.deposits(item.envelope_id)) >= 3, 30)
        await net.stop(alice)
        assert [m.store.mailbox_usage()[0] for m in mailboxes] == [1, 1, 1]
        await net.stop(mailboxes[1])
        await net.stop(mailboxes[2])
        await net.start(carol)  # joins through the one left
        await net.wait_received(3, sent, 30)
        # Fetched, then deleted. (Carol's receipt to the absent Alice may be
        # deposited there meanwhile: count only what is held for Carol.)
        await wait_until(lambda: mailboxes[0].store.mailbox_usage(carol.peer_id) == (0, 0), 30)


async def test_nobody_else_can_fetch_or_delete_over_libp2p(sim_network: SimNetworkFactory) -> None:
    async with sim_network(4, clock="real", contacts=[(1, 2)], upkeep=UPKEEP) as net:
        m, carol, mallory = net[0], net[1], net[3]  # node 2 is Alice
        await net.stop(carol)
        sent = await net.send(2, 1, "private")
        await net.wait_status(2, sent, DeliveryStatus.DEPOSITED, 30)
        await net.stop(net[2])
        assert m.store.mailbox_usage(carol.peer_id)[0] == 1
        x = mallory.running
        client = MailboxClient(x.node.identity, x.host)
        seen: list[int] = []

        def take_all(page: list[FetchedEnvelope]) -> list[int]:
            seen.extend(item.seq for item in page)
            return [item.seq for item in page]

        fetched = await client.fetch(m.peer_id, m.running.node.addrs, take_all)
        assert fetched == 0 and seen == []  # she proves her own key: none are hers
        assert m.store.mailbox_usage(carol.peer_id)[0] == 1  # nothing read or deleted
