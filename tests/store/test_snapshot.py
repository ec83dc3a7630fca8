"""The in-memory store's snapshot: every field copied as its values need."""

from __future__ import annotations

import copy
import dataclasses

from p2pdm.core.identity import PeerId
from p2pdm.store.memory_state import SNAPSHOT_COPIES, ConversationState, MemoryState

PEER = PeerId.from_public_key(b"\x05" * 32)


def test_every_field_has_its_copy() -> None:
    assert list(SNAPSHOT_COPIES) == [f.name for f in dataclasses.fields(MemoryState)]


def test_a_snapshot_is_not_reached_by_later_changes() -> None:
    state = MemoryState()
    state.settings["a"] = "1"
    state.conversation_seqs[b"c"] = [1, 2]
    state.conversations[b"c"] = ConversationState(PEER, 1, 2, 0, False)
    state.history[b"m"] = []
    state.deposits[b"e"] = {PEER: 5}
    state.reactions[b"m"] = {PEER: ("x", 1)}
    state.group_entries[b"g"] = {b"h": b"e"}
    state.group_held[b"g"] = {b"h": (1, b"e")}
    state.held.append("action")  # type: ignore[arg-type]
    state.blobs_attached.add(b"b")
    state.events.pruned[0] = 3
    deep = copy.deepcopy(state)
    twin = state.snapshot()
    assert twin == deep
    state.settings["a"] = "2"
    state.conversation_seqs[b"c"].append(3)
    state.conversations[b"c"].unread += 1
    state.history[b"m"].append(object())  # type: ignore[arg-type]
    state.deposits[b"e"][PEER] = 6
    state.reactions[b"m"][PEER] = ("y", 2)
    state.group_entries[b"g"][b"i"] = b"f"
    state.group_held[b"g"].clear()
    state.held.clear()
    state.blobs_attached.clear()
    state.events.pruned[0] = 4
    state.events.last_id += 1
    state.last_seq += 1
    assert twin != state
    assert twin.conversations[b"c"].unread == 0 and twin.events.pruned == [3, 0]
    assert twin.conversation_seqs == {b"c": [1, 2]} and twin.held and twin.blobs_attached
