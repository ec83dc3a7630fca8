"""What the store keeps of groups, for both stores (docs/protocol.md §19).

How this works: a :class:`GroupRow` is one group this node is in or was
invited to: its id (also its conversation's id), where it stands for this
node (``active``, ``request`` — an invitation from a stranger —, ``left``,
``removed``), who invited us and when, and the name the last fold gave it
(so a group is found by name without folding). The group's truth is its
change log: the verified entries as received (``group_entries``, in
arrival order), folded by :class:`~p2pdm.core.groups.GroupLog` when the
node loads it. ``group_peer_heads`` remembers, per member, the heads this
node last sent it or heard from it, so a change or a message carries only
the entries the member may lack. ``group_held`` keeps the verified
entries still waiting for their parents (so a restart does not lose them),
bounded per group and in all, and dropped when applied or too old.
Deleting a group deletes its entries, heads and held entries (SQLite:
``ON DELETE CASCADE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from p2pdm.core.identity import PeerId

__all__ = ["GroupRow", "GroupStanding", "GroupStore"]

GroupStanding = Literal["active", "request", "left", "removed"]


@dataclass(frozen=True, slots=True)
class GroupRow:
    id: bytes
    state: GroupStanding
    #: Who added us (None: we created it).
    invited_by: PeerId | None
    joined_at_ms: int
    #: The name as the last fold gave it.
    name: str = ""


class GroupStore(Protocol):
    """The group rows, change entries and members' heads of a store."""

    def put_group(self, group: GroupRow) -> None:
        """Insert or replace; raises StoreError past MAX_GROUPS."""
        ...

    def get_group(self, group_id: bytes) -> GroupRow | None: ...
    def list_groups(self) -> list[GroupRow]: ...
    def delete_group(self, group_id: bytes) -> bool: ...

    def add_group_entries(self, group_id: bytes, entries: list[tuple[bytes, bytes]]) -> int:
        """Keep (hash, encoded) entries not kept yet; how many were new.
        Raises StoreError past MAX_GROUP_LOG."""
        ...

    def group_entries(self, group_id: bytes) -> list[bytes]:
        """The encoded entries, in the order they were kept."""
        ...

    def hold_group_entries(
        self, group_id: bytes, entries: list[tuple[bytes, bytes]], now_ms: int
    ) -> None:
        """Keep (hash, encoded) entries waiting for their parents (those kept
        already keep their time); past MAX_HELD_GROUP_ENTRIES for the group or
        MAX_HELD_GROUP_ENTRIES_TOTAL in all, the oldest are dropped."""
        ...

    def held_group_entries(self, group_id: bytes, since_ms: int) -> list[bytes]:
        """The group's held entries kept at or after ``since_ms``, oldest first."""
        ...

    def drop_held_group_entries(self, group_id: bytes, hashes: list[bytes]) -> None:
        """Forget held entries (applied, refused, or known)."""
        ...

    def drop_stale_held_group_entries(self, before_ms: int) -> int:
        """Forget every held entry kept before ``before_ms``; how many."""
        ...

    def accept_conversation(self, conversation_id: bytes) -> int:
        """Turn the message requests of one conversation (an accepted group's)
        into normal messages; returns how many."""
        ...

    def set_peer_heads(self, group_id: bytes, peer: PeerId, heads: tuple[bytes, ...]) -> None: ...
    def get_peer_heads(self, group_id: bytes, peer: PeerId) -> tuple[bytes, ...]: ...
