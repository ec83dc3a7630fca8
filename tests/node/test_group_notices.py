"""Group changes leave a notice in the group's conversation ("Alice added
Bob"): one per applied change, on every member, once (docs/protocol.md §19)."""

from __future__ import annotations

import pytest

from p2pdm.core.model import Direction
from p2pdm.node.node import Node
from p2pdm.node.notices import GROUP_NOTICE_KIND, message_notice
from tests.conftest import make_node
from tests.node.conftest import flush


def notices(node: Node, group: bytes) -> list[str]:
    """The notice lines of a group as a reader sees them ("You ...", "Alice ...")."""
    out = []
    for m in reversed(node.messages(group, 200).messages):
        words = message_notice(m)
        if words is not None:
            who = "You" if m.direction is Direction.OUT else node.store.get_contact(m.peer).name  # type: ignore[union-attr]
            out.append(f"{who} {words}")
    return out


async def test_every_change_leaves_one_notice_on_every_member(
    four: tuple[Node, Node, Node, Node],
) -> None:
    alice, bob, carol, dave = four
    gid = (await alice.create_group("trip", [bob.peer_id, carol.peer_id])).row.id
    flush(*four)
    await alice.change_group(gid, "rename", name="Trip 2027")
    await alice.change_group(gid, "add", peers=(dave.peer_id,))
    await alice.change_group(gid, "promote", peers=(bob.peer_id,))
    await alice.change_group(gid, "timer", timer_s=86_400)
    flush(*four)
    await bob.change_group(gid, "remove", peers=(carol.peer_id,))
    flush(*four)
    await dave.change_group(gid, "leave")
    flush(*four)
    assert notices(alice, gid) == [
        "You created the group 'trip'",
        "You renamed the group to 'Trip 2027'",
        "You added dave",
        "You made bob an admin",
        "You set disappearing messages to 1 day",
        "bob removed carol",
        "dave left",
    ]
    assert notices(bob, gid)[:2] == [
        "alice created the group 'trip'",
        "alice renamed the group to 'Trip 2027'",
    ]
    assert "alice made you an admin" in notices(bob, gid)
    assert "You removed carol" in notices(bob, gid)
    # The removed member's conversation says so, and nothing after it.
    assert notices(carol, gid)[-1] == "bob removed you"
    # A new member learns the whole log, each change once, "added you" included.
    assert "alice added you" in notices(dave, gid)
    assert notices(dave, gid)[-1] == "You left"
    for n in four:
        seen = [m.id for m in n.messages(gid, 200).messages if m.kind == GROUP_NOTICE_KIND]
        assert len(seen) == len(set(seen))
        # Notices count nowhere as unread.
        conversation = n.store.get_conversation(gid)
        assert conversation is not None and conversation.unread == 0


async def test_concurrent_changes_folded_in_any_order_note_each_once(
    four: tuple[Node, Node, Node, Node],
) -> None:
    alice, bob, carol, dave = four
    gid = (await alice.create_group("g", [bob.peer_id, carol.peer_id])).row.id
    await alice.change_group(gid, "promote", peers=(bob.peer_id,))
    flush(*four)
    # Two admins change the group at once; each member folds both, in its order.
    await alice.change_group(gid, "rename", name="by alice")
    await bob.change_group(gid, "add", peers=(dave.peer_id,))
    flush(*four)
    flush(*four)
    for n in (alice, bob, carol):
        lines = notices(n, gid)
        assert sum("renamed the group to 'by alice'" in x for x in lines) == 1
        assert sum("added dave" in x for x in lines) == 1
    # Applying the same entries again changes nothing.
    glog = carol.group_wire.log(gid)
    before = len(carol.messages(gid, 200).messages)
    with carol.store.transaction():
        carol.group_wire.note(gid, glog.entries(), carol.now_ms(), request=False)
    assert len(carol.messages(gid, 200).messages) == before


async def test_the_words_of_each_kind_of_change(four: tuple[Node, Node, Node, Node]) -> None:
    from dataclasses import replace

    from p2pdm.node.notices import change_words

    alice, bob, carol, dave = four
    gid = (await alice.create_group("g", [bob.peer_id, carol.peer_id, dave.peer_id])).row.id
    [create] = alice.group_wire.log(gid).entries()
    me = bob.peer_id

    def words(op: str, **args: object) -> str:
        return change_words(replace(create, op=op, args=args), me, lambda p: p.short())

    assert words("photo", photo=b"webp") == "changed the group photo"
    assert words("photo", photo=None) == "removed the group photo"
    assert words("timer", timer_s=0) == "turned off disappearing messages"
    assert words("remove", peers=(me,)) == "removed you"
    assert words("demote", peers=(carol.peer_id,)) == f"removed {carol.peer_id.short()} as admin"
    many = tuple(n.peer_id for n in four) + tuple(make_node(f"n{i}").peer_id for i in range(3))
    assert words("add", peers=many).endswith(" and 2 others")
    assert (
        words("promote", peers=(me, carol.peer_id))
        == f"made you and {carol.peer_id.short()} admins"
    )


async def test_a_notice_takes_no_reaction_edit_or_unsend(
    four: tuple[Node, Node, Node, Node],
) -> None:
    from p2pdm.errors import ActionRefused

    alice, bob, _, _ = four
    gid = (await alice.create_group("g", [bob.peer_id])).row.id
    [notice] = alice.messages(gid, 10).messages
    with pytest.raises(ActionRefused, match="notice"):
        alice.react(notice.id, "👍")
    with pytest.raises(ActionRefused, match="notice"):
        alice.edit(notice.id, "changed")
    with pytest.raises(ActionRefused, match="notice"):
        alice.unsend(notice.id)
