"""Groups on nodes joined by hand (no network): changes, fan-out, refusals,
invitations (docs/protocol.md §19)."""

from __future__ import annotations

import pytest

from p2pdm.core.groups import make_entry
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import GroupChangeBody, GroupMsgBody, TextBody
from p2pdm.core.model import DeliveryStatus, Direction, EventType
from p2pdm.errors import GroupRefused, NotFound, PeerBlocked
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.store.groups import GroupRow
from tests.conftest import make_node
from tests.node.conftest import flush


def texts(node: Node, group: bytes) -> list[str | None]:
    page = node.messages(group, 50)
    return sorted(message_text(m) for m in page.messages if m.kind == "text")  # type: ignore[type-var]


async def test_create_send_react_unsend(four: tuple[Node, Node, Node, Node]) -> None:
    alice, bob, carol, dave = four
    info = await alice.create_group("friends", [bob.peer_id, carol.peer_id])
    gid = info.row.id
    flush(*four)
    for n in (bob, carol):
        got = n.group_info(gid)
        assert got.row.state == "active"
        assert got.state.members == {alice.peer_id, bob.peer_id, carol.peer_id}
        assert got.state.admins == {alice.peer_id}
    with pytest.raises(NotFound):
        dave.group_info(gid)

    sent = (await alice.send_group_text(gid, "hello all")).message
    assert {r.peer for r in sent.recipients} == {bob.peer_id, carol.peer_id}
    flush(*four)
    assert texts(bob, gid) == ["hello all"] and texts(carol, gid) == ["hello all"]
    assert dave.store.get_conversation(gid) is None
    # Acks move each member's state; read receipts from each member.
    bob.mark_read(gid)
    flush(*four)
    mine = alice.store.get_message(sent.id)
    assert mine is not None
    statuses = {r.peer: r.status for r in mine.recipients}
    assert statuses[bob.peer_id] is DeliveryStatus.READ

    reply = (await carol.send_group_text(gid, "hi alice", reply_to=sent.id)).message
    flush(*four)
    assert texts(bob, gid) == ["hello all", "hi alice"]
    bob.react(reply.id, "👍")
    flush(*four)
    for n in (alice, carol):
        from p2pdm.node.actions import extras_of

        extras = extras_of(n.store, [n.store.get_message(reply.id)])  # type: ignore[list-item]
        assert extras[reply.id].reactions == {"👍": [bob.peer_id]}
    alice.unsend(sent.id)
    flush(*four)
    for n in (bob, carol):
        gone = n.store.get_message(sent.id)
        assert gone is not None and gone.unsent


async def test_add_and_remove_and_a_removed_members_messages_refused(
    four: tuple[Node, Node, Node, Node],
) -> None:
    alice, bob, carol, dave = four
    gid = (await alice.create_group("g", [bob.peer_id, carol.peer_id])).row.id
    flush(*four)
    await alice.change_group(gid, "add", peers=(dave.peer_id,))
    flush(*four)
    assert dave.group_info(gid).state.members == bob.group_info(gid).state.members
    assert len(dave.group_info(gid).state.members) == 4
    await alice.change_group(gid, "remove", peers=(carol.peer_id,))
    flush(*four)
    assert carol.group_info(gid).row.state == "removed"
    removed_events = carol.store.events(0, 100, [EventType.GROUP_REMOVED], None)
    assert len(list(removed_events)) == 1
    for n in (alice, bob, dave):
        assert carol.peer_id not in n.group_info(gid).state.members
    # Carol's node refuses to send; a forged send by Carol is refused by everyone.
    with pytest.raises(GroupRefused, match=r"^you were removed from this group \('g'\)$"):
        await carol.send_group_text(gid, "still here?")
    with pytest.raises(GroupRefused, match=r"^you were removed from this group"):
        await carol.change_group(gid, "rename", name="mine now")
    for n in (alice, bob, dave):
        n.group_wire.refused_messages = 0
    carol.store.put_group(GroupRow(gid, "active", None, 0, "g"))  # as a hostile node would
    carol.group_wire.forget(gid)
    log = carol.group_wire.log(gid)
    for peer in (alice, bob, dave):
        carol.group_wire.queue(
            peer.peer_id,
            GroupMsgBody(log.heads, TextBody("sneaky")),
            gid,
            carol.now_ms(),
        )
    flush(*four)
    for n in (alice, bob, dave):
        assert "sneaky" not in texts(n, gid)
        assert n.group_wire.refused_messages == 1
    # Added again (by a contact), Carol is a member again.
    await alice.change_group(gid, "add", peers=(carol.peer_id,))
    flush(*four)
    assert carol.group_info(gid).row.state == "active"
    assert carol.group_info(gid).state.members == alice.group_info(gid).state.members


async def test_non_admin_add_and_forged_change_refused(
    four: tuple[Node, Node, Node, Node],
) -> None:
    alice, bob, carol, dave = four
    gid = (await alice.create_group("g", [bob.peer_id, carol.peer_id])).row.id
    flush(*four)
    with pytest.raises(GroupRefused):
        await bob.change_group(gid, "add", peers=(dave.peer_id,))
    # Bob's node made the change anyway: members refuse it by the fold.
    log = bob.group_wire.log(gid)
    entry = make_entry(
        bob.identity, group=gid, parents=log.heads, ts_ms=1, op="add", peers=(dave.peer_id,)
    )
    # A change claiming Alice as author, signed by Bob: refused at decoding.
    forged = bytearray(
        make_entry(
            bob.identity, group=gid, parents=log.heads, ts_ms=2, op="rename", name="x"
        ).encoded
    )
    forged[forged.find(bob.peer_id.raw) : forged.find(bob.peer_id.raw) + len(bob.peer_id.raw)] = (
        alice.peer_id.raw
    )
    with bob.store.transaction():
        for peer in (alice, carol):
            bob.group_wire.queue(
                peer.peer_id,
                GroupChangeBody(log.heads, (entry.encoded, bytes(forged))),
                gid,
                bob.now_ms(),
            )
    flush(*four)
    for n in (alice, carol):
        state = n.group_info(gid).state
        assert dave.peer_id not in state.members and state.name == "g"
        assert n.group_wire.refused_changes == 2  # the forged one, and the unauthorised one
    assert dave.store.get_group(gid) is None


async def test_a_strangers_invitation_is_a_request() -> None:
    alice, bob, carol = (make_node(n) for n in ("alice", "bob", "carol"))
    # Alice knows both; Bob and Carol do not know Alice.
    alice.add_contact_from_invite(bob.invite(), "bob")
    alice.add_contact_from_invite(carol.invite(), "carol")
    gid = (await alice.create_group("shop", [bob.peer_id, carol.peer_id])).row.id
    await alice.send_group_text(gid, "welcome")
    flush(alice, bob, carol)
    assert bob.group_info(gid).row.state == "request"
    page = bob.messages(gid)
    # The message and the notice "alice created the group", both a request.
    assert [(m.kind, m.request) for m in page.messages] == [("text", True), ("group_notice", True)]
    bob.answer_group(gid, "accept")
    assert bob.group_info(gid).row.state == "active"
    assert not any(m.request for m in bob.messages(gid).messages)
    assert bob.store.get_contact(alice.peer_id) is None  # members do not become contacts
    carol.answer_group(gid, "decline")
    assert carol.store.get_group(gid) is None and carol.store.get_conversation(gid) is None
    # A member's later message does not bring a declined group back.
    await alice.send_group_text(gid, "still there?")
    flush(alice, bob, carol)
    assert carol.store.get_group(gid) is None and carol.store.get_conversation(gid) is None
    assert [m.request for m in bob.messages(gid).messages] == [False, False, False]
    assert Direction.OUT  # keep the import honest


async def test_a_blocked_peer_neither_adds_you_to_a_group_nor_is_added_by_you(
    four: tuple[Node, Node, Node, Node],
) -> None:
    alice, bob, carol, dave = four
    bob.block(alice.peer_id)
    events = len(bob.store.events(0, 1000))
    gid = (await alice.create_group("party", [bob.peer_id, carol.peer_id])).row.id
    await alice.send_group_text(gid, "you are invited")
    flush(*four)
    assert carol.group_info(gid).row.state == "active"
    # Bob's node dropped all of it unseen: no group, no conversation, no event.
    assert bob.store.get_group(gid) is None and bob.store.get_conversation(gid) is None
    assert len(bob.store.events(0, 1000)) == events
    # Nor can Bob put Alice in a group of his, new or old.
    with pytest.raises(PeerBlocked):
        await bob.create_group("no alice", [alice.peer_id, dave.peer_id])
    mine = (await bob.create_group("no alice", [dave.peer_id])).row.id
    with pytest.raises(PeerBlocked):
        await bob.change_group(mine, "add", peers=(alice.peer_id,))
    assert alice.peer_id not in bob.group_info(mine).state.members


async def test_co_members_are_read_once_until_a_group_changes(
    four: tuple[Node, Node, Node, Node],
) -> None:
    alice, bob, carol, dave = four
    known = bob.messenger.known
    reads: list[int] = []
    real = known.members_of

    def counted() -> set[PeerId]:
        reads.append(1)
        return real()

    known.members_of = counted
    gid = (await alice.create_group("walk", [bob.peer_id, carol.peer_id])).row.id
    flush(*four)
    assert known.co_member(carol.peer_id) and not known.co_member(dave.peer_id)
    before = len(reads)
    for _ in range(3):
        assert known.co_member(alice.peer_id) and bob.group_wire.co_member(carol.peer_id)
    assert len(reads) == before  # the set was made once
    await alice.change_group(gid, "remove", peers=(carol.peer_id,))
    flush(*four)
    assert not known.co_member(carol.peer_id) and known.co_member(alice.peer_id)
    await bob.change_group(gid, "leave")
    assert not known.co_member(alice.peer_id)


async def test_a_long_log_reaches_a_new_member_in_parts(
    four: tuple[Node, Node, Node, Node],
) -> None:
    """More changes than one group_change carries: the new member asks for the rest."""
    from p2pdm.limits import MAX_GROUP_ENTRIES_PER_MESSAGE

    alice, bob, _carol, dave = four
    gid = (await alice.create_group("g", [bob.peer_id])).row.id
    for n in range(MAX_GROUP_ENTRIES_PER_MESSAGE + 6):
        await alice.change_group(gid, "rename", name=f"g{n}")
    flush(*four)
    await alice.change_group(gid, "add", peers=(dave.peer_id,))
    flush(*four, rounds=12)
    want = alice.group_info(gid)
    got = dave.group_info(gid)
    assert got.log_length == want.log_length and got.state == want.state
    assert dave.store.group_entries(gid) and len(dave.store.group_entries(gid)) == want.log_length
