"""The edge between libp2p and p2pdm: IDs, errors, and the callables a host takes.

How this works: libp2p's peer IDs become :class:`~p2pdm.core.identity.PeerId`
here (:func:`to_id`, :func:`from_id`), and the exceptions the network throws
become PeerUnreachable (:func:`unreachable`, like httpcore's
``map_exceptions``). The other libp2p modules of this package share these;
nothing outside the package sees a libp2p type.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import trio
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID

from p2pdm.core.identity import PeerId
from p2pdm.errors import PeerUnreachable, SchemaError
from p2pdm.net.stream import Stream

__all__ = [
    "DEFAULT_LISTEN",
    "NETWORK_ERRORS",
    "DhtMode",
    "PeerFilter",
    "RecordSelector",
    "RecordValidator",
    "StreamHandler",
    "asks",
    "dial_failure",
    "from_id",
    "quietly",
    "to_id",
    "unreachable",
]

logger = logging.getLogger(__name__)

#: Loopback only unless the caller says otherwise: a node is not exposed to
#: the network by accident.
DEFAULT_LISTEN: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)

StreamHandler = Callable[[Stream], Awaitable[None]]
#: "server" answers DHT queries, "client" does not, "auto" serves while public.
DhtMode = Literal["server", "client", "auto"]
#: ``validate(key, value)`` raises (a P2PDMError, ideally) if the record is bad.
RecordValidator = Callable[[bytes, bytes], None]
#: ``select(key, values)`` returns the index of the best (newest) value.
RecordSelector = Callable[[bytes, list[bytes]], int]
#: ``allowed(peer)``: whether the host may talk to ``peer`` (:meth:`Host.set_peer_filter`).
PeerFilter = Callable[[PeerId], bool]

# Everything the network can throw at us: libp2p's own errors, and the
# socket and trio errors that leak through it.
NETWORK_ERRORS = (BaseLibp2pError, OSError, trio.BrokenResourceError, trio.ClosedResourceError)
#: Exceptions looked through (causes, contexts, group members) for a dial
#: failure's socket error: libp2p wraps it three or four deep.
MAX_CAUSE_DEPTH = 16


def dial_failure(exc: BaseException) -> str:
    """Why a dial failed, in a few words: the socket error at the root of
    libp2p's wrapped exceptions ("connection refused"), else the error's text."""
    pending: list[BaseException] = [exc]
    for _ in range(MAX_CAUSE_DEPTH):  # a chain (and groups) of bounded depth
        if not pending:
            break
        current = pending.pop(0)
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, TimeoutError):
            return "timed out"
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return str(exc) or type(exc).__name__


@contextmanager
def unreachable(what: str, error: type[PeerUnreachable] = PeerUnreachable) -> Iterator[None]:
    """Map the network's exceptions to PeerUnreachable (or ``error``, a kind of it)."""
    try:
        yield
    except NETWORK_ERRORS as exc:
        raise error(f"{what}: {exc or type(exc).__name__}") from exc


async def quietly(action: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``action``; log (at debug) instead of raising if it fails."""
    try:
        await action()
    except Exception as exc:
        logger.debug("%s failed: %r", what, exc)


def to_id(peer: PeerId) -> ID:
    return ID(peer.raw)


def from_id(peer_id: ID) -> PeerId | None:
    """Our PeerId for a libp2p ID; None if its key is not Ed25519 (p2pdm speaks to no others)."""
    try:
        return PeerId(peer_id.to_bytes())
    except SchemaError:
        return None


def asks(allowed: PeerFilter, peer: PeerId) -> bool:
    """``allowed(peer)``; False (logged) if the filter raises."""
    try:
        return allowed(peer)
    except Exception:
        logger.exception("the peer filter failed on %s; peer refused", peer.short())
        return False
