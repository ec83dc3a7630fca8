"""Group changes that wait for their parents are kept in the store: a node
restarted in the middle still applies them when the parents come
(docs/protocol.md §19.2)."""

from __future__ import annotations

import os
from pathlib import Path

from p2pdm.core.groups import make_entry
from p2pdm.core.identity import Identity
from p2pdm.limits import HELD_GROUP_ENTRY_TTL_MS
from p2pdm.node.node import Node
from p2pdm.store import SQLiteStore
from tests.node.conftest import acquainted, flush


def _node(name: str, path: Path, identity: Identity | None = None) -> Node:
    node = Node(identity or Identity.generate(os.urandom(32)), SQLiteStore(path))
    node.update_settings({"name": name})
    return node


def _new_envelopes(sender: Node, to: Node, before: set[bytes]) -> list[bytes]:
    return [
        item.envelope
        for item in sender.store.outbox_for(to.peer_id)
        if item.envelope_id not in before
    ]


async def test_a_held_change_survives_a_restart(tmp_path: Path) -> None:
    alice, bob = _node("alice", tmp_path / "a.db"), _node("bob", tmp_path / "b.db")
    acquainted(alice, bob)
    gid = (await alice.create_group("first", [bob.peer_id])).row.id
    flush(alice, bob)
    queued: set[bytes] = set()
    await alice.change_group(gid, "rename", name="second")
    [second] = _new_envelopes(alice, bob, queued)
    queued = {i.envelope_id for i in alice.store.outbox_for(bob.peer_id)}
    await alice.change_group(gid, "rename", name="third")
    [third] = _new_envelopes(alice, bob, queued)
    # The later change comes first: it waits for its parent, in the store too.
    bob.messenger.receive(third)
    assert bob.group_info(gid).state.name == "first"
    assert len(bob.store.held_group_entries(gid, 0)) == 1
    # Bob's node stops and starts again: its memory is gone, its store is not.
    bob.store.close()
    bob = _node("bob", tmp_path / "b.db", bob.identity)
    assert bob.group_info(gid).state.name == "first"
    bob.messenger.receive(second)
    info = bob.group_info(gid)
    assert (info.state.name, info.log_length) == ("third", 3)
    assert bob.store.held_group_entries(gid, 0) == []
    # What the restarted node took is in its log for good.
    bob.store.close()
    bob = _node("bob", tmp_path / "b.db", bob.identity)
    assert bob.group_info(gid).log_length == 3
    bob.store.close()
    alice.store.close()


async def test_a_held_change_too_old_is_not_taken_back(tmp_path: Path) -> None:
    """Past HELD_GROUP_ENTRY_TTL_MS a held change is not loaded, and the
    node's purge drops it from the store."""
    alice, bob = _node("alice", tmp_path / "a.db"), _node("bob", tmp_path / "b.db")
    acquainted(alice, bob)
    gid = (await alice.create_group("first", [bob.peer_id])).row.id
    flush(alice, bob)
    await alice.change_group(gid, "rename", name="second")
    queued = {i.envelope_id for i in alice.store.outbox_for(bob.peer_id)}
    await alice.change_group(gid, "rename", name="third")
    [third] = _new_envelopes(alice, bob, queued)
    bob.messenger.receive(third)
    assert len(bob.store.held_group_entries(gid, 0)) == 1
    bob.store.close()
    later = bob.now_ms() + HELD_GROUP_ENTRY_TTL_MS + 1
    bob = Node(bob.identity, SQLiteStore(tmp_path / "b.db"), now_ms=lambda: later)
    assert bob.group_wire.log(gid).held() == []
    bob.purge_expired()
    assert bob.store.held_group_entries(gid, 0) == []
    bob.store.close()
    alice.store.close()


async def test_a_held_change_whose_parents_are_here_is_taken_on_load(tmp_path: Path) -> None:
    """A held change whose parents the log already holds (a crash between the
    two writes, say) is applied when the log is loaded, and stored as a change."""
    alice, bob = _node("alice", tmp_path / "a.db"), _node("bob", tmp_path / "b.db")
    acquainted(alice, bob)
    gid = (await alice.create_group("first", [bob.peer_id])).row.id
    flush(alice, bob)
    rename = make_entry(
        alice.identity,
        group=gid,
        parents=bob.group_wire.log(gid).heads,
        ts_ms=alice.now_ms(),
        op="rename",
        name="second",
    )
    bob.store.hold_group_entries(gid, [(rename.hash, rename.encoded)], bob.now_ms())
    bob.group_wire.forget(gid)
    assert bob.group_info(gid).state.name == "second"
    assert bob.store.held_group_entries(gid, 0) == []
    assert rename.encoded in bob.store.group_entries(gid)
    bob.store.close()
    alice.store.close()
