"""Groups in the in-memory store (as :mod:`p2pdm.store.sqlite_groups`)."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from p2pdm.core.identity import PeerId
from p2pdm.errors import StoreError
from p2pdm.limits import (
    MAX_GROUP_LOG,
    MAX_GROUPS,
    MAX_HELD_GROUP_ENTRIES,
    MAX_HELD_GROUP_ENTRIES_TOTAL,
)
from p2pdm.store.groups import GroupRow
from p2pdm.store.memory_state import Dicts

__all__ = ["GroupDicts"]

_K = TypeVar("_K", bytes, tuple[bytes, bytes])


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
        state.group_held.pop(group_id, None)
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

    def hold_group_entries(
        self, group_id: bytes, entries: list[tuple[bytes, bytes]], now_ms: int
    ) -> None:
        state = self._live()
        held = state.group_held.setdefault(group_id, {})
        for digest, encoded in entries:
            held.setdefault(digest, (now_ms, encoded))
        for digest in _oldest(held, len(held) - MAX_HELD_GROUP_ENTRIES):
            del held[digest]
        everything = {
            (gid, digest): kept
            for gid, rows in state.group_held.items()
            for digest, kept in rows.items()
        }
        for gid, digest in _oldest(everything, len(everything) - MAX_HELD_GROUP_ENTRIES_TOTAL):
            del state.group_held[gid][digest]

    def held_group_entries(self, group_id: bytes, since_ms: int) -> list[bytes]:
        held = self._live().group_held.get(group_id, {})
        kept = sorted((at, digest, encoded) for digest, (at, encoded) in held.items())
        return [encoded for at, _, encoded in kept if at >= since_ms]

    def drop_held_group_entries(self, group_id: bytes, hashes: list[bytes]) -> None:
        held = self._live().group_held.get(group_id, {})
        for digest in hashes:
            held.pop(digest, None)

    def drop_stale_held_group_entries(self, before_ms: int) -> int:
        dropped = 0
        for held in self._live().group_held.values():
            for digest in [d for d, (at, _) in held.items() if at < before_ms]:
                del held[digest]
                dropped += 1
        return dropped

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


def _oldest(rows: dict[_K, tuple[int, bytes]], count: int) -> list[_K]:
    """The keys of the ``count`` oldest rows (by time, then key)."""
    if count <= 0:
        return []
    return sorted(rows, key=lambda k: (rows[k][0], k))[:count]
