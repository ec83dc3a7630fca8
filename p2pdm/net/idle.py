"""Which connections have been idle long enough to close.

How this works: the host's maintenance loop shows :class:`IdleTracker` every
live connection and whether it has a stream open right now; the tracker
remembers when each was last seen busy (or first seen) and answers with the
ones idle for ``idle_timeout`` seconds or more. Connections that disappear
are forgotten, so the tracker never holds more entries than there are live
connections. No I/O: time comes in as an argument.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

__all__ = ["IdleTracker"]

K = TypeVar("K", bound=Hashable)


class IdleTracker(Generic[K]):
    """Tracks the last busy time of each connection (any hashable key)."""

    __slots__ = ("_last_busy", "idle_timeout")

    def __init__(self, idle_timeout: float) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        self.idle_timeout = idle_timeout
        self._last_busy: dict[K, float] = {}

    def __len__(self) -> int:
        return len(self._last_busy)

    def observe(self, now: float, busy: Mapping[K, bool]) -> list[K]:
        """Record which connections are busy at ``now``; return those idle too long.

        ``busy`` must list every live connection; any other is forgotten.
        A returned connection is forgotten too (the caller closes it).
        """
        last_busy = {key: self._last_busy.get(key, now) for key in busy}
        expired = []
        for key, is_busy in busy.items():
            if is_busy:
                last_busy[key] = now
            elif now - last_busy[key] >= self.idle_timeout:
                expired.append(key)
                del last_busy[key]
        self._last_busy = last_busy
        return expired
