"""The in-memory store's event log: the main part and the request events, pruned apart.

How this works: :class:`EventLog` is plain data inside the in-memory store's
state (so a transaction's snapshot copies it). Each part is a list, oldest
first; ids come from one counter, so both together are ordered by id and a
reader merges them. Pruning a part records the highest id it dropped, which
is how ``gap`` is told (the same rule as the SQLite ``counters`` table).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Collection
from dataclasses import dataclass, field

from p2pdm.core.identity import PeerId
from p2pdm.core.model import Event, EventType

__all__ = ["EventLog"]


@dataclass(slots=True)
class EventLog:
    """Events, oldest first: ``main`` and ``requests``, each kept to its own cap."""

    main: list[Event] = field(default_factory=list)
    requests: list[Event] = field(default_factory=list)
    last_id: int = 0
    #: The highest id pruned from each part (0: none yet).
    pruned: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, event: Event, cap: int, *, request: bool) -> None:
        lane = self.requests if request else self.main
        lane.append(event)
        over = len(lane) - cap
        if over > 0:
            self.pruned[request] = max(self.pruned[request], lane[over - 1].id)
            del lane[:over]

    def after(
        self,
        after: int,
        size: int,
        types: Collection[EventType] | None,
        peers: Collection[PeerId] | None,
    ) -> list[Event]:
        """Up to ``size`` events with ``id > after`` matching the filters, by id."""
        found: list[Event] = []
        lanes = [
            lane[bisect.bisect_right(lane, after, key=lambda e: e.id) :]
            for lane in (
                self.main,
                self.requests,
            )
        ]
        for event in heapq.merge(*lanes, key=lambda e: e.id):
            if len(found) == size:
                break
            if (types is None or event.type in types) and (peers is None or event.peer in peers):
                found.append(event)
        return found

    def oldest(self) -> int:
        """The oldest id kept in either part; 0 if both are empty."""
        return min((lane[0].id for lane in (self.main, self.requests) if lane), default=0)
