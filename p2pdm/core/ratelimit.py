"""Rate limits: the per-peer token bucket of every stream protocol p2pdm serves, and
the per-peer throttle of failure logs on the receive paths.

:class:`FailureLog` keeps a hostile peer from flooding the log: per peer and
per window it logs the first few failures one by one, counts the rest, and
logs one summary line with the count when the window closes (at the next
failure from anyone, or at :meth:`FailureLog.flush`, which the services call
now and then). :class:`Pacer` lets a costly action (a DHT lookup) happen
at most once per interval per peer. Time is passed in, so tests and simulations control it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from p2pdm.core.identity import PeerId

__all__ = [
    "FAILURE_LOG_FIRST",
    "FAILURE_LOG_MAX_PEERS",
    "FAILURE_LOG_WINDOW_SECONDS",
    "FailureLog",
    "Pacer",
    "TokenBucket",
]

#: Failures logged line by line per peer and window: enough to see what goes wrong.
FAILURE_LOG_FIRST: Final = 5
#: The window: a flood costs one summary line a minute per peer.
FAILURE_LOG_WINDOW_SECONDS: Final = 60.0
#: Peers counted at once; a new one closes (and summarises) the oldest window early,
#: so many peers cost at most this many entries and one line each per window.
FAILURE_LOG_MAX_PEERS: Final = 256


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full at time ``at``."""

    rate: float
    burst: float
    tokens: float = field(default=0.0)
    at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def ready(self, now: float) -> bool:
        """True if :meth:`take` at ``now`` would succeed; spends nothing."""
        return min(self.burst, self.tokens + (now - self.at) * self.rate) >= 1

    def take(self, now: float) -> bool:
        """Spend one token at time ``now``; False if there is none."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class _Window:
    started: float
    count: int = 0


class FailureLog:
    """Logs ``what`` failures per peer at ``level``, the first few one by one, then a count.

    ``what`` names the failures in the summary, e.g. "refused envelopes".
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        level: int = logging.INFO,
        first: int = FAILURE_LOG_FIRST,
        window_s: float = FAILURE_LOG_WINDOW_SECONDS,
        max_peers: int = FAILURE_LOG_MAX_PEERS,
    ) -> None:
        self.logger = logger
        self.what = what
        self.level = level
        self.first = first
        self.window_s = window_s
        self.max_peers = max_peers
        #: Open windows, oldest first (all have the same length, so also by end).
        self._windows: OrderedDict[PeerId | None, _Window] = OrderedDict()

    def note(self, now: float, peer: PeerId | None, message: str, *args: object) -> None:
        """One failure caused by ``peer`` (None: unknown) at ``now``: logged or counted.

        ``message`` and ``args`` are the logging call's; the peer is not added.
        """
        self.flush(now)
        window = self._windows.get(peer)
        if window is None:
            while len(self._windows) >= self.max_peers:
                self._close(now, *self._windows.popitem(last=False))
            window = self._windows[peer] = _Window(now)
        window.count += 1
        if window.count <= self.first:
            self.logger.log(self.level, message, *args)

    def flush(self, now: float) -> None:
        """Close the windows that are over and log their summaries."""
        while self._windows:
            peer, window = next(iter(self._windows.items()))
            if now - window.started < self.window_s:
                return
            del self._windows[peer]
            self._close(now, peer, window)

    def _close(self, now: float, peer: PeerId | None, window: _Window) -> None:
        more = window.count - self.first
        if more > 0:
            span = min(now - window.started, self.window_s)
            self.logger.log(
                self.level,
                "dropped %s more %s from %s in the last %.0f s",
                f"{more:,}",
                self.what,
                peer.short() if peer is not None else "unknown peers",
                max(span, 1.0),
            )


class Pacer:
    """At most one go per ``interval`` seconds per peer; remembers at most ``cap`` peers.

    Past ``cap`` the peer paced longest ago is forgotten (it may go again at
    once): memory stays bounded whoever is asked about.
    """

    def __init__(self, interval: float, cap: int) -> None:
        if interval < 0 or cap < 1:
            raise ValueError("a pacer needs interval >= 0 and cap >= 1")
        self.interval = interval
        self.cap = cap
        #: Each peer's last go, oldest first.
        self._last: OrderedDict[PeerId, float] = OrderedDict()

    def allow(self, peer: PeerId, now: float) -> bool:
        """True (and the go is counted) if ``peer`` had none in the last ``interval``."""
        last = self._last.get(peer)
        if last is not None and now - last < self.interval:
            return False
        self._last[peer] = now
        self._last.move_to_end(peer)
        while len(self._last) > self.cap:
            self._last.popitem(last=False)
        return True
