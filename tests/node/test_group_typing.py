"""Typing in a group: a signal to each online member over its open stream, at
most one per TYPING_INTERVAL_S per group; each member shows who is typing in
the group's conversation; a non-member's or a left group's signal is dropped."""

from __future__ import annotations

from p2pdm.core.identity import PeerId
from p2pdm.core.model import EventType
from p2pdm.node.node import Node
from tests.conftest import make_node
from tests.node.conftest import acquainted, flush


def typing_seen(node: Node, envelope: bytes) -> list[tuple[PeerId | None, bytes | None]]:
    """(peer, conversation) of the typing events ``node`` shows for ``envelope``."""
    with node.events.listener().follow() as follower:
        node.messenger.receive(envelope)
        return [(e.peer, e.conversation_id) for e in follower.take() if e.type is EventType.TYPING]


async def test_typing_reaches_each_online_member_as_the_groups() -> None:
    alice, bob, carol, dave = (make_node(n) for n in ("alice", "bob", "carol", "dave"))
    acquainted(alice, bob, carol, dave)
    made = await alice.create_group("bakers", [bob.peer_id, carol.peer_id])
    group = made.row.id
    flush(alice, bob, carol)
    sends: list[tuple[PeerId, bytes]] = []

    async def send_now(peer: PeerId, envelope: bytes) -> bool:
        sends.append((peer, envelope))
        return True

    alice.send_now = send_now
    assert await alice.send_typing(group, bob.peer_id) == "not connected to the peer now"
    alice.online.update({bob.peer_id, carol.peer_id, dave.peer_id})
    assert await alice.send_typing(group, bob.peer_id) is None
    assert sorted(p.raw for p, _ in sends) == sorted(p.raw for p in (bob.peer_id, carol.peer_id))
    # Rate-limited like one-to-one: once per interval per conversation.
    assert (await alice.send_typing(group, bob.peer_id) or "").startswith("sent less than")
    for member in (bob, carol):
        [envelope] = [e for p, e in sends if p == member.peer_id]
        assert typing_seen(member, envelope) == [(alice.peer_id, group)]
    # Nothing stored: typing is never written (the group's notices only).
    assert {m.kind for m in bob.messages(group, 50).messages} == {"group_notice"}

    # Dave is not a member: a signal naming the group is dropped, shown nowhere.
    forged = dave.messenger.seal_typing(bob.peer_id, group)
    assert typing_seen(bob, forged) == []
    # After Bob leaves, Carol still sees Alice; Bob's own signal is not sent.
    await bob.change_group(group, "leave")
    flush(alice, bob, carol)
    assert await bob.send_typing(group, alice.peer_id) == (
        "you are not in this group (or have not joined it)"
    )
    late = alice.messenger.seal_typing(bob.peer_id, group)
    assert typing_seen(bob, late) == []
