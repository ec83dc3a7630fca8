"""Groups and offline or unacquainted members over real nodes (the sim network):
files follow a group message into an offline member's mailboxes, and members
who are not each other's contacts write to each other (docs/protocol.md §19.5)."""

from __future__ import annotations

import os

import pytest
import trio

import p2pdm.node.media as media_module
from p2pdm.core.model import Direction
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.sim.network import SimNetwork, wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory

pytestmark = pytest.mark.slow

#: The mailbox file limit for the test: one chunk under it, three over it.
_SMALL_LIMIT = 300 << 10


def node_of(net: SimNetwork, i: int) -> Node:
    return net[i].running.node


def blob_state(node: Node, blob_id: bytes) -> tuple[str, str] | None:
    got = node.store.get_blob(blob_id)
    return None if got is None else (got.state, got.detail)


async def _group_with_one_away(net: SimNetwork) -> bytes:
    """The id of the group node 3 makes of its contacts 1 and 2 (not each
    other's), once both are in it and node 1 has gone away."""
    others = [net[1].peer_id, net[2].peer_id]
    gid = (await node_of(net, 3).create_group("away", others)).row.id
    await wait_until(lambda: all(node_of(net, i).is_group(gid) for i in (1, 2)))
    await net.stop(net[1])
    await wait_until(lambda: net[1].peer_id not in node_of(net, 2).online)
    return gid


async def test_a_group_file_reaches_an_offline_member_through_its_mailbox(
    sim_network: SimNetworkFactory,
    autojump_clock: trio.abc.Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Node 1 is away when node 2 (not its contact) sends a small and a large file to the group,
    then node 2 leaves too: node 1 gets the message and the small file from its
    mailbox alone; the large one waits for node 2, and says so."""
    monkeypatch.setattr(media_module, "MAILBOX_FILE_BYTES", _SMALL_LIMIT)
    small, large = os.urandom(100 << 10), os.urandom(700 << 10)
    # Node 3 makes the group of its contacts 1 and 2, who are not each other's.
    async with sim_network(4, store="sqlite", contacts=[(3, 1), (3, 2)]) as net:
        mailbox, author = net[0], node_of(net, 2)
        gid = await _group_with_one_away(net)
        records = [
            author.media.add_file(data, "application/octet-stream", name)
            for data, name in ((small, "small.bin"), (large, "large.bin"))
        ]
        ids = [r.blob_id for r in records]
        sent = (await author.send_group_body(gid, author.media.body_for(ids, "for later"))).message
        # The message and the small file's one chunk are left at the mailbox.
        await wait_until(lambda: mailbox.store.mailbox_usage(net[1].peer_id)[0] >= 2)
        # The member online fetched both from the author.
        await wait_until(lambda: all(blob_state(node_of(net, 3), b) == ("ready", "") for b in ids))
        await net.stop(net[2])
        await net.start(net[1])
        member = node_of(net, 1)
        await wait_until(lambda: blob_state(member, ids[0]) == ("ready", ""))
        got = member.store.get_blob(ids[0])
        assert got is not None and b"".join(member.media.read_plain(got, 0, got.size)) == small
        mine = member.store.get_message(sent.id)
        assert mine is not None and mine.conversation_id == gid
        assert mine.direction is Direction.IN and not mine.request
        await wait_until(
            lambda: (
                (s := blob_state(member, ids[1])) is not None
                and s[0] == "fetching"
                and s[1].startswith("waiting for ")
                and s[1].endswith(" to come online to send the file")
            )
        )
        # (That it comes once both are online is the one-to-one fetch's: a
        # restarted sim node keeps its store but not its files.)


async def test_an_unsent_group_file_is_taken_back_from_an_offline_members_mailbox(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    """Node 1 is away when node 2 sends a file to the group and unsends it: the
    mailbox gives back the message and its chunk; node 1, back, gets nothing of it."""
    data = os.urandom(100 << 10)
    async with sim_network(4, contacts=[(3, 1), (3, 2)]) as net:
        mailbox, author = net[0], node_of(net, 2)
        gid = await _group_with_one_away(net)
        record = author.media.add_file(data, "application/octet-stream", "plan.bin")
        body = author.media.body_for([record.blob_id], "for later")
        sent = (await author.send_group_body(gid, body)).message
        await wait_until(lambda: mailbox.store.mailbox_usage(net[1].peer_id)[0] >= 2)
        author.unsend(sent.id)
        service = mailbox.running.mailbox
        assert service is not None
        await wait_until(lambda: author.store.withdrawals_count() == 0 and service.withdrawn >= 2)
        assert service.withdrawn == 2  # the message and its one chunk
        await net.stop(net[2])
        await net.start(net[1])
        member = node_of(net, 1)
        await wait_until(lambda: mailbox.store.mailbox_usage(net[1].peer_id)[0] == 0)
        assert member.store.get_blob(record.blob_id) is None
        got = member.store.get_message(sent.id)
        assert got is None or got.unsent


async def test_members_who_are_not_contacts_write_to_each_other(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    """Node 0 makes a group of its contacts 1 and 2 (not each other's) and of
    node 3, a stranger to all: 3 gets an invitation; everyone writes to
    everyone, and nobody becomes anybody's contact."""
    async with sim_network(4, contacts=[(0, 1), (0, 2)], mailboxes=0) as net:
        creator = node_of(net, 0)
        others = [net[i].peer_id for i in (1, 2, 3)]
        gid = (await creator.create_group("mixed", others)).row.id
        await wait_until(lambda: all(node_of(net, i).is_group(gid) for i in (1, 2, 3)))
        assert [node_of(net, i).group_info(gid).row.state for i in (1, 2, 3)] == [
            "active",
            "active",
            "request",
        ]
        node_of(net, 3).answer_group(gid, "accept")

        def said(i: int) -> set[str]:
            page = node_of(net, i).messages(gid, 100).messages
            return {message_text(m) or "" for m in page if m.kind == "text" and not m.request}

        sent = {}
        for i in (1, 2, 3):
            sent[i] = (await node_of(net, i).send_group_text(gid, f"hello from {i}")).message
        await wait_until(
            lambda: all(
                said(i) >= {f"hello from {j}" for j in (1, 2, 3) if j != i} for i in (0, 1, 2, 3)
            ),
            describe=lambda: str({i: said(i) for i in range(4)}),
        )
        # Read receipts and reactions between non-contacts too.
        n1, n2 = node_of(net, 1), node_of(net, 2)
        n2.mark_group_read(gid)
        n2.react(sent[1].id, "👍")

        def read_by_2() -> bool:
            mine = n1.store.get_message(sent[1].id)
            return mine is not None and any(
                r.peer == net[2].peer_id and r.status.value == "read" for r in mine.recipients
            )

        await wait_until(read_by_2)
        await wait_until(lambda: n1.extras([sent[1]])[sent[1].id].reactions == {"👍": [n2.peer_id]})
        # Connected, a co-member is online as a contact is: typing reaches it.
        await wait_until(lambda: net[2].peer_id in n1.online)
        assert await n1.send_typing(gid, net[2].peer_id) is None
        for i in (1, 2, 3):
            node = node_of(net, i)
            strangers = [net[j].peer_id for j in (1, 2, 3) if j != i]
            assert all(node.store.get_contact(p) is None for p in strangers)
            assert not any(node.store.has_requests(p) for p in strangers)
        assert node_of(net, 0).store.get_contact(net[3].peer_id) is None
