"""The host's background upkeep: its timings, and which connections are idle.

How this works: :class:`Upkeep` holds the periods of the host's maintenance
loop (defaults from :mod:`p2pdm.net.limits`; tests and simulations shorten
them). Each round the loop shows :class:`IdleTracker` every
live connection and whether it has a stream open right now; the tracker
remembers when each was last seen busy (or first seen) and answers with the
ones idle for ``idle_timeout`` seconds or more. Connections that disappear
are forgotten, so the tracker never holds more entries than there are live
connections. No I/O: time comes in as an argument.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from p2pdm.net.limits import (
    BOOTSTRAP_RETRY_INTERVAL_SECONDS,
    DHT_REFRESH_INTERVAL_SECONDS,
    IDLE_CONNECTION_TIMEOUT_SECONDS,
    MAINTENANCE_INTERVAL_SECONDS,
)

__all__ = ["DEFAULT_UPKEEP", "IdleTracker", "Upkeep"]


@dataclass(frozen=True, slots=True)
class Upkeep:
    """Periods of a host's maintenance loop, in seconds."""

    #: How often the loop runs (idle check, bootstrap re-dial, refresh due?).
    interval: float = MAINTENANCE_INTERVAL_SECONDS
    #: A connection with no open stream for this long is closed.
    idle_timeout: float = IDLE_CONNECTION_TIMEOUT_SECONDS
    #: How often the DHT routing table is refreshed.
    dht_refresh_interval: float = DHT_REFRESH_INTERVAL_SECONDS
    #: Least time between two rounds of re-dialing bootstrap peers.
    bootstrap_retry_interval: float = BOOTSTRAP_RETRY_INTERVAL_SECONDS

    def __post_init__(self) -> None:
        if min(self.interval, self.idle_timeout, self.dht_refresh_interval) <= 0:
            raise ValueError("upkeep periods must be positive")
        if self.bootstrap_retry_interval < 0:
            raise ValueError("bootstrap_retry_interval must not be negative")


#: The production timings.
DEFAULT_UPKEEP = Upkeep()


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
