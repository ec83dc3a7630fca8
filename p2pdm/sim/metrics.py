"""What a simulation measures: every message's fate, refusals, and the invariants.

How this works: a :class:`Tap` is a :class:`~p2pdm.sim.network.Probe`. It
gives each new node a :class:`~p2pdm.node.observer.NodeObserver` at
construction, which the node's services call for every envelope accepted
(with its path: a dm stream, or a mailbox fetch) or refused (by error),
wraps its host's DHT lookups to time them, and tells a :class:`Sink` what
it saw. The :class:`Recorder` is the
sink that keeps the figures: nodes in this process reach it through its own
Tap, nodes in worker processes through their Tap's events on the pipe. The
traffic generator calls :meth:`Recorder.sent`. Times are seconds since the
simulation started, on the simulation's clock (virtual or real).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from p2pdm.errors import P2PDMError
from p2pdm.node.observer import NodeObserver, Path

if TYPE_CHECKING:
    from p2pdm.node.messenger import Received
    from p2pdm.services.dm import Delivery
    from p2pdm.sim.groups import GroupLedger
    from p2pdm.sim.network import SimNode

__all__ = ["MessageRecord", "Path", "Recorder", "Sink", "Tap", "latency_summary", "percentile"]


#: The host calls that are DHT lookups, timed for the report.
LOOKUP_CALLS: Final = ("find_peer", "get_record")
#: Why a lookup found nothing, as the report counts it: the record's owner had
#: not published it (yet) when the lookup started; the caller's deadline cut
#: the lookup short; it asked the closest peers it could find and none had
#: it (find_peer: the peer was not found); it had no peer to ask; the node
#: stopped during the lookup; it raised; find_peer only: the peer looked for
#: was offline (stopped by the simulation) when the lookup ended, so there was
#: nothing to find.
LOOKUP_FAILURES: Final = (
    "offline",
    "not_published",
    "timed_out",
    "not_found",
    "no_peers",
    "cancelled",
    "error",
)
#: Errors that mean an envelope reached a node that cannot or must not read it.
MISDELIVERY_ERRORS: Final = frozenset({"WrongRecipient", "DecryptError"})
#: Messages not yet recorded as sent whose commits are kept: a send's reply
#: is at most a moment late, so a few per node; more are not a simulation's.
MAX_EARLY_COMMITS: Final = 10_000


@dataclass(slots=True)
class MessageRecord:
    """One message the simulation sent, and what became of it."""

    id: bytes
    sender: int
    recipient: int
    sent_s: float
    #: The recipient was offline (taken away for this message) when it was sent.
    recipient_offline: bool = False
    delivered_s: float | None = None
    path: Path | None = None
    #: Times the recipient committed it (more than 1 is a duplicate).
    copies: int = 0

    @property
    def latency_s(self) -> float | None:
        return None if self.delivered_s is None else self.delivered_s - self.sent_s


class Sink(Protocol):
    """Where a :class:`Tap` reports what the nodes do."""

    def stored(self, index: int, message_id: bytes, path: Path) -> None: ...
    def refused(self, error: str) -> None: ...
    def looked_up(self, call: str, seconds: float, found: bool, why: str = "") -> None: ...


class Tap:
    """A :class:`~p2pdm.sim.network.Probe` that hooks each node and tells a :class:`Sink`.

    ``clock`` times DHT lookups. The Recorder uses one in ``p2pdm sim``'s own
    process; a worker process uses one that streams to the Recorder.
    """

    def __init__(
        self, sink: Sink, clock: Callable[[], float], *, sees_every_node: bool = True
    ) -> None:
        self.sink = sink
        self.clock = clock
        #: Record keys whose owner's put_record had returned, and when (only
        #: when this tap sees every node: a worker's sees its own nodes).
        self.published: dict[str, float] | None = {} if sees_every_node else None
        #: The nodes this tap hooked, by PeerId (a worker's: its own nodes), to
        #: tell a find_peer of an offline node from a lookup that failed.
        self._nodes: dict[Any, SimNode] = {}

    def observer(self, sim_node: SimNode) -> NodeObserver:
        """What node ``sim_node`` tells this tap (given to its Node at construction)."""
        return _Observer(self, sim_node.index)

    def delivery_created(self, sim_node: SimNode, delivery: Delivery) -> None:
        self._nodes[sim_node.peer_id] = sim_node
        self._time_lookups(delivery.network)

    def _time_lookups(self, host: Any) -> None:
        """Wrap the host's DHT lookups (one host object serves delivery and mailboxes),
        and note when its own record was published."""
        for name in LOOKUP_CALLS:
            call = getattr(host, name)

            async def timed(
                key: Any,
                timeout: float,  # noqa: ASYNC109 (the wrapped call's own deadline)
                *args: Any,
                call: Any = call,
                name: str = name,
                **kw: Any,
            ) -> Any:
                start = self.clock()
                found = False
                why = "error"
                try:
                    result = await call(key, timeout, *args, **kw)
                    found = bool(result)
                    # Nothing ran since the call returned (no checkpoint).
                    why = "" if found else self._why_not_found(name, host, key, start)
                    return result
                except P2PDMError:
                    why = (
                        self._why_not_found(name, host, key, start)
                        if name == "find_peer"
                        else "error"
                    )
                    raise
                except trio.Cancelled:
                    why = "cancelled"  # the node stopped (churn, an absence) meanwhile
                    raise
                except BaseExceptionGroup as group:
                    # The lookup's queries each cancelled by the caller's scope (the
                    # node stopped, its sender gave up): a cancelled lookup too.
                    if group.split(trio.Cancelled)[1] is None:
                        why = "cancelled"
                    raise
                finally:
                    self.sink.looked_up(name, self.clock() - start, found, why)

            setattr(host, name, timed)
        put = host.put_record

        async def put_record(key: str, value: bytes) -> int:
            holders: int = await put(key, value)
            if self.published is not None and holders:  # a put no peer took published nothing
                self.published.setdefault(key, self.clock())
            return holders

        host.put_record = put_record

    def _why_not_found(self, name: str, host: Any, key: Any, start: float) -> str:
        """Why a lookup that returned found nothing (:data:`LOOKUP_FAILURES`)."""
        if name == "find_peer":
            sought = self._nodes.get(key)
            return "offline" if sought is not None and not sought.online else "not_found"
        if name != "get_record":
            return "not_found"
        published = None if self.published is None else self.published.get(key)
        if self.published is not None and (published is None or published > start):
            return "not_published"
        lookup = getattr(host, "last_record_lookup", None)
        if lookup is None:
            return "not_found"
        if lookup.timed_out:
            return "timed_out"
        return "no_peers" if lookup.ended == "no_peers" else "not_found"


@dataclass(frozen=True, slots=True)
class _Observer:
    """One node's observer: tells the tap's sink about stored messages and refusals."""

    tap: Tap
    index: int

    def envelope_accepted(self, received: Received, path: Path) -> None:
        if received.message is not None:  # not a receipt
            self.tap.sink.stored(self.index, received.inner.id, path)

    def envelope_refused(self, error: P2PDMError) -> None:
        self.tap.sink.refused(type(error).__name__)


@dataclass
class Recorder:
    """Collects per-message records and refusals from every node.

    It is the probe of nodes in this process (through its :class:`Tap`);
    nodes in worker processes reach it through :meth:`stored`,
    :meth:`refused` and :meth:`looked_up` with the time they saw.
    """

    clock: Callable[[], float]
    messages: dict[bytes, MessageRecord] = field(default_factory=dict)
    #: Nodes (by index) that stored each sent message.
    stored_at: dict[bytes, set[int]] = field(default_factory=dict)
    #: Envelopes refused by a node, by error name.
    refusals: Counter[str] = field(default_factory=Counter)
    #: Deliveries over time: (seconds, path), in order.
    deliveries: list[tuple[float, Path]] = field(default_factory=list)
    #: DHT lookups the nodes made: (seconds taken, found, why not found: one
    #: of LOOKUP_FAILURES, "" if found), by call name.
    lookups: dict[str, list[tuple[float, bool, str]]] = field(
        default_factory=lambda: {name: [] for name in LOOKUP_CALLS}
    )
    #: Commits of messages whose send is not recorded yet (a worker's
    #: delivery can overtake another worker's reply to the send).
    _early: dict[bytes, list[tuple[int, Path, float]]] = field(default_factory=dict)
    #: Group messages' fates (``--groups``); None in a run without groups.
    groups: GroupLedger | None = None

    def __post_init__(self) -> None:
        self._tap = Tap(self, self.clock)

    # --- the probe -------------------------------------------------------------

    def observer(self, sim_node: SimNode) -> NodeObserver:
        return self._tap.observer(sim_node)

    def delivery_created(self, sim_node: SimNode, delivery: Delivery) -> None:
        self._tap.delivery_created(sim_node, delivery)

    # --- events ------------------------------------------------------------------

    def sent(
        self,
        message_id: bytes,
        sender: int,
        recipient: int,
        *,
        offline: bool,
        at: float | None = None,
    ) -> None:
        """A message was sent (at ``at`` simulation seconds; default now)."""
        sent_s = self.clock() if at is None else at
        record = MessageRecord(message_id, sender, recipient, sent_s, offline)
        self.messages[message_id] = record
        for index, path, stored_s in self._early.pop(message_id, []):
            self.stored(index, message_id, path, at=stored_s)

    def stored(self, index: int, message_id: bytes, path: Path, at: float | None = None) -> None:
        """Node ``index`` committed a message (at ``at`` simulation seconds; default now)."""
        at = self.clock() if at is None else at
        if self.groups is not None and self.groups.stored(index, message_id, at):
            return
        record = self.messages.get(message_id)
        if record is None:
            if message_id in self._early or len(self._early) < MAX_EARLY_COMMITS:
                self._early.setdefault(message_id, []).append((index, path, at))
            return  # else: nothing the simulation sent
        self.stored_at.setdefault(record.id, set()).add(index)
        if index != record.recipient:
            return  # an invariant breach, reported from stored_at
        record.copies += 1
        if record.copies == 1:
            record.delivered_s = at
            record.path = path
            self.deliveries.append((at, path))

    def refused(self, error: str) -> None:
        self.refusals[error] += 1

    def looked_up(self, call: str, seconds: float, found: bool, why: str = "") -> None:
        if call in self.lookups:
            self.lookups[call].append((seconds, found, "" if found else why or "not_found"))

    # --- figures -------------------------------------------------------------------

    @property
    def delivered(self) -> int:
        return sum(1 for r in self.messages.values() if r.delivered_s is not None)

    @property
    def duplicates(self) -> int:
        return sum(r.copies - 1 for r in self.messages.values() if r.copies > 1)

    def misdelivered(self) -> list[bytes]:
        """Messages stored by a node other than their recipient (must be none)."""
        return [
            mid for mid, nodes in self.stored_at.items() if nodes - {self.messages[mid].recipient}
        ]


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ascending values; NaN if there are none."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(latencies: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50, p95, p99 and max of latencies in seconds (None when empty)."""
    values = sorted(latencies)

    def value(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 3)

    return {
        "count": len(values),
        "p50": value(percentile(values, 0.50)),
        "p95": value(percentile(values, 0.95)),
        "p99": value(percentile(values, 0.99)),
        "max": value(values[-1]) if values else None,
    }
