"""Groups over five real nodes (the sim network: hosts, DHT, dm streams,
mailboxes): create, send, a member offline during an add and a remove,
refusals, and concurrent changes by two admins (docs/protocol.md §19)."""

from __future__ import annotations

import io
import os

import pytest
import trio
from PIL import Image

from p2pdm.core.groups import make_entry, photo_type
from p2pdm.core.kinds import GroupChangeBody, GroupMsgBody, TextBody
from p2pdm.core.model import Direction
from p2pdm.node.media_ops import location_body
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.sim.network import SimNetwork, wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory

pytestmark = pytest.mark.slow


def node_of(net: SimNetwork, i: int) -> Node:
    return net[i].running.node


def members(net: SimNetwork, i: int, gid: bytes) -> set[int]:
    node = node_of(net, i)
    if node.store.get_group(gid) is None:
        return set()
    state = node.group_info(gid).state
    return {j for j in range(len(net)) if net[j].peer_id in state.members}


def texts(net: SimNetwork, i: int, gid: bytes) -> list[str]:
    page = node_of(net, i).messages(gid, 100)
    return sorted(message_text(m) or "" for m in page.messages if m.kind == "text")


async def converged(net: SimNetwork, gid: bytes, who: set[int], want: set[int]) -> None:
    await wait_until(
        lambda: all(members(net, i, gid) == want for i in who),
        describe=lambda: f"members seen: { {i: members(net, i, gid) for i in who} }",
    )


async def test_groups_on_five_nodes(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(5, store="sqlite") as net:
        n1 = node_of(net, 1)
        info = await n1.create_group("five", [net[i].peer_id for i in (0, 2, 3)])
        gid = info.row.id
        await converged(net, gid, {0, 1, 2, 3}, {0, 1, 2, 3})
        assert node_of(net, 4).store.get_group(gid) is None

        hello = (await node_of(net, 2).send_group_text(gid, "hello from 2")).message
        await wait_until(lambda: all("hello from 2" in texts(net, i, gid) for i in (0, 1, 3)))
        await wait_until(
            lambda: (
                (m := node_of(net, 2).store.get_message(hello.id)) is not None
                and all(r.status.value in ("delivered", "read") for r in m.recipients)
            )
        )
        assert texts(net, 4, gid) == []

        # Node 3 is offline while 4 is added and 2 removed; it catches up after.
        await net.stop(net[3])
        await n1.change_group(gid, "add", peers=(net[4].peer_id,))
        await n1.change_group(gid, "remove", peers=(net[2].peer_id,))
        await n1.send_group_text(gid, "while 3 was away")
        await converged(net, gid, {0, 1, 4}, {0, 1, 3, 4})
        await net.start(net[3])
        await converged(net, gid, {0, 1, 3, 4}, {0, 1, 3, 4})
        await wait_until(lambda: all("while 3 was away" in texts(net, i, gid) for i in (0, 3, 4)))
        await wait_until(lambda: node_of(net, 2).group_info(gid).row.state == "removed")
        assert "while 3 was away" not in texts(net, 2, gid)

        # A removed member's later messages are refused by everyone.
        n2 = node_of(net, 2)
        before = {i: node_of(net, i).group_wire.refused_messages for i in (0, 1, 3, 4)}
        heads = n2.group_wire.log(gid).heads
        with n2.store.transaction():
            for i in (0, 1, 3, 4):
                n2.group_wire.queue(
                    net[i].peer_id, GroupMsgBody(heads, TextBody("let me in")), gid, n2.now_ms()
                )
        for i in (0, 1, 3, 4):
            n2.on_outbox(net[i].peer_id)
        await wait_until(
            lambda: all(node_of(net, i).group_wire.refused_messages > before[i] for i in before)
        )
        assert all("let me in" not in texts(net, i, gid) for i in (0, 1, 3, 4))

        # A non-admin's add and a forged change are refused by every member.
        n3 = node_of(net, 3)
        log3 = n3.group_wire.log(gid)
        add = make_entry(
            n3.identity,
            group=gid,
            parents=log3.heads,
            ts_ms=n3.now_ms(),
            op="add",
            peers=(net[2].peer_id,),
        )
        forged = bytearray(
            make_entry(
                n3.identity,
                group=gid,
                parents=log3.heads,
                ts_ms=n3.now_ms(),
                op="rename",
                name="taken",
            ).encoded
        )
        at = forged.find(net[3].peer_id.raw)
        forged[at : at + len(net[1].peer_id.raw)] = net[1].peer_id.raw  # claims node 1 wrote it
        refused = {i: node_of(net, i).group_wire.refused_changes for i in (0, 1, 4)}
        with n3.store.transaction():
            for i in (0, 1, 4):
                body = GroupChangeBody(log3.heads, (add.encoded, bytes(forged)))
                n3.group_wire.queue(net[i].peer_id, body, gid, n3.now_ms())
        for i in (0, 1, 4):
            n3.on_outbox(net[i].peer_id)
        await wait_until(
            lambda: all(
                node_of(net, i).group_wire.refused_changes >= refused[i] + 2 for i in refused
            )
        )
        for i in (0, 1, 3, 4):
            state = node_of(net, i).group_info(gid).state
            assert net[2].peer_id not in state.members and state.name == "five"

        # Files and places reach every member; each fetches the file from the author.
        data = os.urandom(3000)
        record = n1.media.add_file(data, "application/octet-stream", "notes.bin")
        await n1.send_group_body(gid, n1.media.body_for([record.blob_id], "notes"))
        await n1.send_group_body(gid, location_body(52.5, 13.4, label="here"))

        def has_file(i: int) -> bool:
            got = node_of(net, i).store.get_blob(record.blob_id)
            return got is not None and got.state == "ready"

        await wait_until(lambda: all(has_file(i) for i in (0, 3, 4)))
        for i in (0, 3, 4):
            node = node_of(net, i)
            got = node.store.get_blob(record.blob_id)
            assert got is not None and b"".join(node.media.read_plain(got, 0, got.size)) == data
            kinds = {m.kind for m in node.messages(gid, 100).messages}
            assert {"media", "location"} <= kinds

        # A photo set by an admin reaches every member with the signed change.
        picture = io.BytesIO()
        Image.new("RGB", (320, 200), (90, 160, 60)).save(picture, "PNG")
        upload = n1.media.add_file(picture.getvalue(), "image/png", "team.png")
        photo = (await n1.set_group_photo(gid, upload.blob_id)).state.photo
        assert photo is not None and photo_type(photo) == "image/webp"
        await wait_until(
            lambda: all(node_of(net, i).group_info(gid).state.photo == photo for i in (0, 3, 4))
        )

        # Two admins change the group concurrently (cut off from each other):
        # node 1 re-adds 2 while node 0 removes 4; everyone ends the same.
        await n1.change_group(gid, "promote", peers=(net[0].peer_id,))
        await wait_until(lambda: net[0].peer_id in node_of(net, 0).group_info(gid).state.admins)
        net.partition([[0], [1, 2, 3, 4]])
        await n1.change_group(gid, "add", peers=(net[2].peer_id,))
        await node_of(net, 0).change_group(gid, "remove", peers=(net[4].peer_id,))
        net.heal()
        await converged(net, gid, {0, 1, 2, 3}, {0, 1, 2, 3})
        states = {node_of(net, i).group_info(gid).state for i in (0, 1, 2, 3)}
        assert len(states) == 1
        all_heads = {node_of(net, i).group_wire.log(gid).heads for i in (0, 1, 2, 3)}
        assert len(all_heads) == 1
        # Node 4 learns of its removal from node 0 after the heal, perhaps
        # after the others have converged.
        await wait_until(lambda: node_of(net, 4).group_info(gid).row.state == "removed")
        incoming = [
            m for m in node_of(net, 0).messages(gid, 100).messages if m.direction is Direction.IN
        ]
        assert incoming
