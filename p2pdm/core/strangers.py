"""How fast strangers may write to this node: the acceptance rate of message requests.

How this works: an envelope from a peer who is not a contact passes
:class:`StrangerGate` twice in :meth:`Messenger.receive`. Right after the
sealed box is opened the sender is known but not yet proven (anyone may
write any PeerID there), so :meth:`StrangerGate.admits` only *looks*: if
that sender's bucket or the bucket of all strangers is empty, the envelope
is refused before the costly session decryption and signature check. Once
the inner message's signature has proven the sender, :meth:`StrangerGate.take`
spends the tokens. A forger can therefore not spend a real stranger's
tokens, and a flooder is turned away at the cost of one key agreement.

A stranger's first message while it has no pending request (a *new*
request) also spends a token of the hourly bucket of new requests
(NEW_REQUESTS_PER_HOUR from all strangers together): a flood of fresh
identities gets a few requests in, then waits.

A refused envelope raises :class:`~p2pdm.errors.RateLimited`, answered
``retry`` on the wire: nothing is lost for a legitimate stranger (its node
tries again later), and the flooder pays for every retry.
"""

from __future__ import annotations

from collections import OrderedDict

from p2pdm.core.identity import PeerId
from p2pdm.core.ratelimit import TokenBucket
from p2pdm.limits import (
    MAX_TRACKED_STRANGERS,
    NEW_REQUESTS_BURST,
    NEW_REQUESTS_PER_HOUR,
    STRANGER_BURST,
    STRANGER_BURST_PER_PEER,
    STRANGER_RATE,
    STRANGER_RATE_PER_PEER,
)

__all__ = ["StrangerGate"]


class StrangerGate:
    """A token bucket per stranger and one for all strangers together (times in seconds)."""

    def __init__(
        self,
        *,
        rate_per_peer: float = STRANGER_RATE_PER_PEER,
        burst_per_peer: float = STRANGER_BURST_PER_PEER,
        rate: float = STRANGER_RATE,
        burst: float = STRANGER_BURST,
        max_tracked: int = MAX_TRACKED_STRANGERS,
        new_per_hour: float = NEW_REQUESTS_PER_HOUR,
        new_burst: float = NEW_REQUESTS_BURST,
    ) -> None:
        self._rate_per_peer = rate_per_peer
        self._burst_per_peer = burst_per_peer
        self._max_tracked = max_tracked
        self._all: TokenBucket | None = None
        self._all_rate = (rate, burst)
        self._new: TokenBucket | None = None
        self._new_rate = (new_per_hour / 3600, new_burst)
        self._peers: OrderedDict[PeerId, TokenBucket] = OrderedDict()
        #: Envelopes refused since the count was last taken (for aggregate logs).
        self.refused = 0

    def _global(self, now: float) -> TokenBucket:
        if self._all is None:
            self._all = TokenBucket(*self._all_rate, at=now)
        return self._all

    def _bucket(self, peer: PeerId, now: float) -> TokenBucket:
        bucket = self._peers.pop(peer, None)
        if bucket is None:
            bucket = TokenBucket(self._rate_per_peer, self._burst_per_peer, at=now)
        self._peers[peer] = bucket
        while len(self._peers) > self._max_tracked:
            self._peers.popitem(last=False)
        return bucket

    def admits(self, peer: PeerId, now: float) -> bool:
        """True if an envelope claiming to be from ``peer`` may be opened further."""
        bucket = self._peers.get(peer)
        ok = self._global(now).ready(now) and (bucket is None or bucket.ready(now))
        self.refused += not ok
        return ok

    def take(self, peer: PeerId, now: float, *, new: bool = False) -> bool:
        """Spend a token of ``peer`` (a proven sender) and of all strangers, and
        one of the new requests' bucket if ``new``; False if out."""
        bucket = self._bucket(peer, now)
        every = self._global(now)
        if self._new is None:
            self._new = TokenBucket(*self._new_rate, at=now)
        fresh = self._new
        ok = bucket.ready(now) and every.ready(now) and (not new or fresh.ready(now))
        if ok:
            bucket.take(now)
            every.take(now)
            if new:
                fresh.take(now)
        self.refused += not ok
        return ok
