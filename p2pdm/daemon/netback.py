"""When the node's network has come back, so that its mailboxes may hold mail for it.

Mail waits in our mailboxes only when a sender could not reach us: while
our node runs and can be dialled, senders deliver directly. So the peer
watch fetches from the mailboxes (besides the fetcher's own rounds: at
start-up and every ``FETCH_INTERVAL_SECONDS``) when the node was out of
reach and is back, and not whenever it has a connection again.

How this works: :class:`NetworkBack` is shown the numbers of the node's
open connections (never reused: :meth:`p2pdm.net.Host.connections`) at each
look of the peer watch, with the monotonic clock and the wall clock, and
says when the network is back:

- **Dials failed.** A node with no connection at all re-dials its bootstrap
  peers (the host does so whenever it has fewer than two connections, at
  most every ``bootstrap_retry_interval``, checked every maintenance
  ``interval``); when its network works, that dial succeeds within
  ``DIAL_TIMEOUT_SECONDS``. A spell with no connection longer than that
  (:func:`gone_after`) means the node's dials failed: its network was away
  (cable out, Wi-Fi gone, every bootstrap peer gone), so senders may have
  failed too. The first connection after such a spell is "network back".
  A shorter spell is the node's quiet connections closing as idle (ours or
  the peer's ``idle_timeout``) and the next dial (a bootstrap re-dial, a
  lookup) opening one again: nothing was out of reach, nothing is fetched.
- **A bootstrap dial failed.** A spell with no connection during which a
  re-dial of a bootstrap peer failed (``failed_dials`` grew) is the network
  away however short it was (a Wi-Fi blip, a partition): the host re-dials
  at once when it has fewer than two connections, so the spell's first
  re-dial tells which of the two it is well before :func:`gone_after`.
- **Not yet connected since the start.** A spell with no connection that
  began before the node's first connection counts whatever its length: the
  start-up round may have run before the network was there.
- **The computer slept.** The wall clock ran on past the monotonic clock
  (which stops while the computer sleeps) by ``SLEPT_SECONDS`` or more
  between two looks: a laptop resumed. Its old connections may look open
  until they fail, so the first connection opened after the wake (a number
  above every one seen before it) is "network back".

A node without bootstrap peers does not re-dial: its quiet spells end when
a peer dials it, and each one longer than :func:`gone_after` fetches once
(at most one fetch per spell, and spells are that long).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from p2pdm.net.limits import DIAL_TIMEOUT_SECONDS
from p2pdm.net.upkeep import Upkeep

__all__ = ["SLEPT_SECONDS", "NetworkBack", "gone_after"]

#: The wall clock running ahead of the monotonic one by this much between two
#: looks (2 s apart) means the computer slept: far above clock adjustments
#: (NTP slews at most 0.5 ms a second; a step is rare), far below a sleep
#: worth noticing (senders give up on a direct delivery after 8 s).
SLEPT_SECONDS: Final = 30.0


def gone_after(upkeep: Upkeep, watch_period: float) -> float:
    """How long a spell with no connection lasts, at least, when the node's dials fail.

    A node whose network works has a connection again within a bootstrap
    retry interval and a maintenance round of losing its last one (the
    host re-dials then), the dial taking at most ``DIAL_TIMEOUT_SECONDS``,
    and the watch sees it within one of its periods (``watch_period``).
    """
    return upkeep.bootstrap_retry_interval + upkeep.interval + DIAL_TIMEOUT_SECONDS + watch_period


class NetworkBack:
    """Says at which look the node's network came back (see the module's text)."""

    __slots__ = (
        "_alone_since",
        "_connected_once",
        "_failed_before",
        "_highest",
        "_last",
        "_newer_than",
        "gone_after",
    )

    def __init__(self, gone_after: float) -> None:
        if gone_after <= 0:
            raise ValueError("gone_after must be positive")
        self.gone_after = gone_after
        #: When the current spell with no connection began (monotonic), if in one.
        self._alone_since: float | None = None
        self._connected_once = False
        #: Bootstrap dials failed (since the start) when the current spell began.
        self._failed_before = 0
        #: The highest connection number seen so far.
        self._highest = 0
        #: After a sleep: a connection numbered above this is back; else None.
        self._newer_than: int | None = None
        #: The last look's (monotonic, wall) times, in seconds.
        self._last: tuple[float, float] | None = None

    def observe(
        self, now: float, wall: float, numbers: Iterable[int], failed_dials: int = 0
    ) -> bool:
        """One look: the monotonic and wall clocks (seconds), the numbers of the
        open connections and how many bootstrap dials have failed since the
        start. True when the node should fetch from its mailboxes now."""
        opened = frozenset(numbers)
        if self._last is not None:
            last_now, last_wall = self._last
            if (wall - last_wall) - (now - last_now) >= SLEPT_SECONDS:
                self._newer_than = self._highest  # what was open before proves nothing
        self._last = (now, wall)
        back = False
        if not opened:
            if self._alone_since is None:
                # Before the first connection, any spell counts.
                self._alone_since = now if self._connected_once else -math.inf
                self._failed_before = failed_dials
            return False
        if self._alone_since is not None and (
            now - self._alone_since >= self.gone_after or failed_dials > self._failed_before
        ):
            back = True
        if self._newer_than is not None and max(opened) > self._newer_than:
            back = True
        if back:
            self._newer_than = None
        self._alone_since = None
        self._connected_once = True
        self._highest = max(self._highest, max(opened))
        return back
