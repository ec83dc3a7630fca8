"""Groups in the in-memory store (as :mod:`p2pdm.store.sqlite_groups`)."""

from __future__ import annotations

from dataclasses import replace

from p2pdm.core.identity import PeerId
from p2pdm.errors import StoreError
from p2pdm.limits import MAX_GROUP_LOG, MAX_GROUPS
from p2pdm.store.groups import GroupRow
from p2pdm.store.memory_state import Dicts

__all__ = ["GroupDicts"]


class GroupDicts(Dicts):
    """Groups in a :class:`~p2pdm.store.memory.MemoryStore`."""

    def put_group(self, group: GroupRow) -> None:
        groups = self._live().groups
        if group.id not in groups and len(groups) >= MAX_GROUPS:
            raise StoreError(f"at most {MAX_GROUPS} groups")
        groups[group.id] = replace(group)

    def get_group(self, group_id: bytes) -> GroupRow | None:
        return self._live().groups.get(group_id)

    def list_groups(self) -> list[GroupRow]:
        return sorted(self._live().groups.values(), key=lambda g: (g.joined_at_ms, g.id))

    def delete_group(self, group_id: bytes) -> bool:
        state = self._live()
        state.group_entries.pop(group_id, None)
        for key in [k for k in state.group_heads if k[0] == group_id]:
            del state.group_heads[key]
        return state.groups.pop(group_id, None) is not None

    def add_group_entries(self, group_id: bytes, entries: list[tuple[bytes, bytes]]) -> int:
        kept = self._live().group_entries.setdefault(group_id, {})
        fresh = {d: e for d, e in entries if d not in kept}
        if len(kept) + len(fresh) > MAX_GROUP_LOG:
            raise StoreError(f"a group's log holds at most {MAX_GROUP_LOG} changes")
        kept.update(fresh)
        return len(fresh)

    def group_entries(self, group_id: bytes) -> list[bytes]:
        return list(self._live().group_entries.get(group_id, {}).values())

    def accept_conversation(self, conversation_id: bytes) -> int:
        state = self._live()
        accepted = 0
        for seq in state.conversation_seqs.get(conversation_id, []):
            message = state.messages[seq]
            if message.request:
                state.messages[seq] = replace(message, request=False)
                accepted += 1
        if conversation_id in state.conversations:
            state.conversations[conversation_id].request = False
        return accepted

    def set_peer_heads(self, group_id: bytes, peer: PeerId, heads: tuple[bytes, ...]) -> None:
        self._live().group_heads[(group_id, peer)] = tuple(heads)

    def get_peer_heads(self, group_id: bytes, peer: PeerId) -> tuple[bytes, ...]:
        return self._live().group_heads.get((group_id, peer), ())
