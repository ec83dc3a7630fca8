"""Admission of inbound streams, the same for every protocol a node serves.

How this works: an :class:`InboundGuard` stands in front of one stream
handler. It refuses (resets) a stream past the cap of streams open at once
— per peer, and optionally in total — and hands each admitted stream to the
handler together with its peer's :class:`~p2pdm.core.ratelimit.TokenBucket`
(kept while the peer is active, least recently used dropped past
``max_buckets``). When the handler raises ProtocolViolation or WireError
the peer broke the protocol: the stream is reset and the peer disconnected.
Any other P2PDMError, a timeout or a broken stream resets just that stream.
Failures go to a per-peer throttled :class:`~p2pdm.core.ratelimit.FailureLog`,
so a flood costs a few log lines. Nobody else is affected either way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from p2pdm.core.identity import PeerId
from p2pdm.core.ratelimit import FailureLog, TokenBucket
from p2pdm.errors import P2PDMError, ProtocolViolation, WireError
from p2pdm.net.stream import Stream
from p2pdm.services.ports import Network

__all__ = ["InboundGuard", "InboundLimits", "bucket_of"]

Handler = Callable[[Stream, TokenBucket], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class InboundLimits:
    """What one protocol lets each peer do (values and reasons in services/limits.py)."""

    #: Streams of this protocol one peer may hold open at once.
    streams_per_peer: int
    #: Requests (frames) per second one peer may send, and the burst above it.
    rate: float
    burst: float
    #: Per-peer buckets kept (least recently used dropped first).
    max_buckets: int
    #: Streams of this protocol open at once from everyone; None: no such cap.
    streams: int | None = None


class InboundGuard:
    """Per-peer stream cap, token bucket and disconnect guard for one protocol.

    ``name`` names the protocol in log lines (e.g. "dm", "mailbox").
    """

    def __init__(
        self, name: str, network: Network, limits: InboundLimits, failures: FailureLog
    ) -> None:
        self.name = name
        self.network = network
        self.limits = limits
        self.failures = failures
        self._open = 0
        self._per_peer: defaultdict[PeerId, int] = defaultdict(int)
        self._buckets: dict[PeerId, TokenBucket] = {}

    def streams_of(self, peer: PeerId) -> int:
        """How many streams ``peer`` holds open now."""
        return self._per_peer.get(peer, 0)

    async def serve(self, stream: Stream, handler: Handler) -> None:
        """Run ``handler`` on ``stream`` if the peer may open it, under the rules above."""
        peer = stream.remote_peer
        limits = self.limits
        if self._per_peer[peer] >= limits.streams_per_peer or (
            limits.streams is not None and self._open >= limits.streams
        ):
            self.failures.note(
                trio.current_time(),
                peer,
                "%s stream from %s refused: too many streams",
                self.name,
                peer.short(),
            )
            self._drop_idle(peer)
            await stream.reset()
            return
        self._open += 1
        self._per_peer[peer] += 1
        try:
            await handler(stream, self._bucket(peer))
        except (ProtocolViolation, WireError) as exc:
            self.failures.note(
                trio.current_time(),
                peer,
                "disconnecting %s from %s: %s",
                peer.short(),
                self.name,
                exc,
            )
            await stream.reset()
            await self.network.disconnect(peer)
        except (P2PDMError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.reset()
        finally:
            self._open -= 1
            self._per_peer[peer] -= 1
            self._drop_idle(peer)
            self.failures.flush(trio.current_time())

    def _bucket(self, peer: PeerId) -> TokenBucket:
        limits = self.limits
        return bucket_of(self._buckets, peer, limits.rate, limits.burst, limits.max_buckets)

    def _drop_idle(self, peer: PeerId) -> None:
        if not self._per_peer.get(peer):
            self._per_peer.pop(peer, None)


def bucket_of(
    table: dict[PeerId, TokenBucket], peer: PeerId, rate: float, burst: float, max_buckets: int
) -> TokenBucket:
    """``peer``'s bucket in ``table`` (made full if new); keeps at most ``max_buckets``."""
    bucket = table.pop(peer, None)
    if bucket is None:
        bucket = TokenBucket(rate, burst, at=trio.current_time())
    table[peer] = bucket  # most recently used last
    while len(table) > max_buckets:
        del table[next(iter(table))]
    return bucket
