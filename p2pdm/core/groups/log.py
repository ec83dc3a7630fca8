"""A group's change log and the fold that gives its state (docs/protocol.md §19.2).

How this works: :class:`GroupLog` holds one group's verified entries as a
DAG. An entry whose parents are not all known is held (bounded) until they
are. Each entry gets an index, a depth (one more than its deepest parent)
and the set of its ancestors as a bit mask over indices, so "is *a* an
ancestor of *b*" and "are they concurrent" are one bit test each. Whether an
entry is *authorised* depends only on its ancestors and is decided once,
when it is added: its author held the right in the fold of its ancestors.

The fold (:meth:`GroupLog.state_of`) of a set of entries closed under
ancestors walks them by (depth, hash), skips entries that are not
authorised, skips entries concurrent with an authorised revocation of their
author (revocation wins), skips adds of a peer concurrent with its removal
or leave (removal wins) and applies the rest. Every member holding the same
entries gets the same state, whatever order they arrived in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

from p2pdm.core.groups.entry import ADMIN_OPS, GROUP_ID_BYTES, ChangeEntry
from p2pdm.core.identity import PeerId
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_GROUP_LOG, MAX_GROUP_MEMBERS, MAX_HELD_GROUP_ENTRIES

__all__ = ["GroupLog", "GroupState", "Outcome"]


@dataclass(frozen=True, slots=True)
class GroupState:
    """What the fold of a set of changes says the group is."""

    name: str = ""
    photo: bytes | None = None
    timer_s: int = 0
    members: frozenset[PeerId] = frozenset()
    admins: frozenset[PeerId] = frozenset()
    created_by: PeerId | None = None
    created_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What adding entries did: the ones taken into the log (in order), the
    ones held for their parents, and the ones refused (with why)."""

    added: tuple[ChangeEntry, ...] = ()
    held: int = 0
    refused: tuple[tuple[ChangeEntry, str], ...] = ()


@dataclass(slots=True)
class _Node:
    entry: ChangeEntry
    index: int
    depth: int
    #: Bit i set: the entry with index i is an ancestor.
    ancestors: int
    authorised: bool = False


@dataclass(slots=True)
class GroupLog:
    """The verified changes of one group, and their fold."""

    group: bytes
    _nodes: dict[bytes, _Node] = field(default_factory=dict)
    _order: list[_Node] = field(default_factory=list)
    _held: OrderedDict[bytes, ChangeEntry] = field(default_factory=OrderedDict)
    _children: set[bytes] = field(default_factory=set)
    _state: GroupState | None = None

    def __post_init__(self) -> None:
        if len(self.group) != GROUP_ID_BYTES:
            raise SchemaError("a group id is 16 bytes")

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, digest: object) -> bool:
        return digest in self._nodes

    def entries(self) -> list[ChangeEntry]:
        """Every entry, in fold order (parents before children)."""
        return [n.entry for n in sorted(self._order, key=_key)]

    @property
    def heads(self) -> tuple[bytes, ...]:
        """Hashes of the entries no other entry follows, sorted."""
        return tuple(sorted(d for d in self._nodes if d not in self._children))

    def held(self) -> list[ChangeEntry]:
        """The entries waiting for their parents, oldest first."""
        return list(self._held.values())

    def authorised(self, digest: bytes) -> bool:
        node = self._nodes.get(digest)
        return node is not None and node.authorised

    # --- adding -------------------------------------------------------------

    def add(self, entries: list[ChangeEntry] | tuple[ChangeEntry, ...]) -> Outcome:
        """Take verified entries in any order: each is added once its parents
        are known, held until then. Never raises on a verified entry."""
        added: list[ChangeEntry] = []
        refused: list[tuple[ChangeEntry, str]] = []
        for entry in entries:
            why = self._why_not(entry)
            if why is not None:
                if why != "known":
                    refused.append((entry, why))
                continue
            self._held[entry.hash] = entry
            while len(self._held) > MAX_HELD_GROUP_ENTRIES:
                self._held.popitem(last=False)
        progress = True
        while progress:
            progress = False
            for digest, entry in list(self._held.items()):
                if all(p in self._nodes for p in entry.parents):
                    del self._held[digest]
                    if len(self._order) >= MAX_GROUP_LOG:
                        refused.append((entry, "the group's log is full"))
                        continue
                    if not self._insert(entry):
                        refused.append((entry, "its author had no right to make it"))
                        continue
                    added.append(entry)
                    progress = True
        return Outcome(tuple(added), len(self._held), tuple(refused))

    def _why_not(self, entry: ChangeEntry) -> str | None:
        if entry.hash in self._nodes or entry.hash in self._held:
            return "known"
        if entry.group != self.group:
            return "it is for another group"
        if entry.op == "create" and self._order:
            return "the group has its create already"
        return None

    def _insert(self, entry: ChangeEntry) -> bool:
        """Add an entry whose parents are known, if its author held the right
        in the fold of its ancestors (which every member computes alike); an
        unauthorised one is never kept, so nobody can fill a log with them."""
        parents = [self._nodes[p] for p in entry.parents]
        ancestors = 0
        for p in parents:
            ancestors |= p.ancestors | (1 << p.index)
        if not self._may(entry, self._fold(ancestors)):
            return False
        depth = 1 + max((p.depth for p in parents), default=-1)
        node = _Node(entry, len(self._order), depth, ancestors, authorised=True)
        self._nodes[entry.hash] = node
        self._order.append(node)
        self._children.update(entry.parents)
        self._state = None
        return True

    @staticmethod
    def _may(entry: ChangeEntry, before: GroupState) -> bool:
        if entry.op == "create":
            return True
        if entry.author not in before.members:
            return False
        if entry.op in ADMIN_OPS:
            return entry.author in before.admins
        return True

    # --- the fold -----------------------------------------------------------

    def state(self) -> GroupState:
        """The state of the whole log."""
        if self._state is None:
            self._state = self._fold((1 << len(self._order)) - 1)
        return self._state

    def state_at(self, heads: tuple[bytes, ...]) -> GroupState | None:
        """The state of the log as of ``heads`` (None if one is unknown)."""
        mask = self._closure(heads)
        return None if mask is None else self._fold(mask)

    def _closure(self, heads: tuple[bytes, ...]) -> int | None:
        mask = 0
        for digest in heads:
            node = self._nodes.get(digest)
            if node is None:
                return None
            mask |= node.ancestors | (1 << node.index)
        return mask

    def _fold(self, mask: int) -> GroupState:
        nodes = sorted((n for n in self._order if mask >> n.index & 1 and n.authorised), key=_key)
        revocations = [
            (n, peer) for n in nodes if n.entry.op in ("remove", "demote") for peer in n.entry.peers
        ]
        kept = [n for n in nodes if not _revoked(n, revocations)]
        removals = [
            (n, peer)
            for n in kept
            for peer in (n.entry.peers if n.entry.op == "remove" else (n.entry.author,))
            if n.entry.op in ("remove", "leave")
        ]
        state = GroupState()
        members: set[PeerId] = set()
        admins: set[PeerId] = set()
        for n in kept:
            e = n.entry
            if e.op == "create":
                members = {e.author, *e.peers}
                admins = {e.author}
                state = GroupState(
                    name=e.args["name"],
                    timer_s=e.args.get("timer_s", 0),
                    created_by=e.author,
                    created_at_ms=e.ts_ms,
                )
            elif e.op == "add":
                for peer in e.peers:
                    raced = any(peer == p and _concurrent(n, r) for r, p in removals)
                    if not raced and len(members) < MAX_GROUP_MEMBERS:
                        members.add(peer)
            elif e.op in ("remove", "leave"):
                gone = e.peers if e.op == "remove" else (e.author,)
                members.difference_update(gone)
                admins.difference_update(gone)
            elif e.op == "promote":
                admins.update(p for p in e.peers if p in members)
            elif e.op == "demote":
                admins.difference_update(e.peers)
            elif e.op == "rename":
                state = _replace(state, name=e.args["name"])
            elif e.op == "photo":
                state = _replace(state, photo=e.args["photo"])
            elif e.op == "timer":
                state = _replace(state, timer_s=e.args["timer_s"])
        return _replace(state, members=frozenset(members), admins=frozenset(admins))

    # --- catching up --------------------------------------------------------

    def unknown(self, heads: tuple[bytes, ...]) -> tuple[bytes, ...]:
        """Those of ``heads`` this log does not hold."""
        return tuple(h for h in heads if h not in self._nodes)

    def missing_for(self, heads: tuple[bytes, ...], limit: int) -> list[ChangeEntry]:
        """Entries that are not at or below ``heads`` (unknown heads ignored),
        parents first, at most ``limit``."""
        mask = self._closure(tuple(h for h in heads if h in self._nodes)) or 0
        out = [n.entry for n in sorted(self._order, key=_key) if not mask >> n.index & 1]
        return out[:limit]


def _key(node: _Node) -> tuple[int, bytes]:
    return (node.depth, node.entry.hash)


def _concurrent(a: _Node, b: _Node) -> bool:
    return a is not b and not (a.ancestors >> b.index & 1) and not (b.ancestors >> a.index & 1)


def _revoked(node: _Node, revocations: list[tuple[_Node, PeerId]]) -> bool:
    """True if an authorised remove (or, for admin ops, demote) of the entry's
    author is concurrent with it: revocation wins. A leave always stands."""
    e = node.entry
    if e.op in ("leave", "create"):
        return False
    for r, peer in revocations:
        if peer != e.author or not _concurrent(node, r):
            continue
        if r.entry.op == "remove" or e.op in ADMIN_OPS:
            return True
    return False


def _replace(state: GroupState, **changes: object) -> GroupState:
    return replace(state, **changes)  # type: ignore[arg-type]
