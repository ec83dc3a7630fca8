"""What other peers may make our DHT node store: write rates, caps, eviction.

How this works: libp2p's KadDHT keeps value records in a dict
(``ValueStore.store``) and provider records in a dict of dicts
(``ProviderStore.providers``); it stores any valid record any peer sends.
:mod:`p2pdm.net._dht` swaps those dicts for the mappings made here
(:meth:`DhtGuard.record_store`, :meth:`DhtGuard.provider_index`), so every
insertion and deletion, whichever libp2p path makes it (inbound PUT_VALUE,
expiry, our own puts), goes through one :class:`Ledger` per store:

- every record has an *owner*: the peer that sent it (for a provider record,
  the provider, which libp2p checks is the sender), or ``None`` for records
  we stored ourselves (our own puts, copies of records we looked up); ours
  count towards the totals but are never refused or evicted;
- a peer holds at most ``per_peer_records`` records and ``per_peer_bytes``
  bytes; past that its new records are refused ("peer_cap");
- when the store is full, room is made by evicting the *newest* record of
  the peer holding the most, and only if that peer holds at least two more
  records than the sender: a peer holding a single record (a p2pdm node's
  own record) never loses it to a flood, and long-held records go last.
  Otherwise the new record is refused ("store_full"). Each step is O(1):
  owners sit in buckets by record count.

Writes are rate-limited first (:meth:`DhtGuard.charge`): one token bucket
per peer in a bounded table (:class:`WriteRates`), charged for every inbound
PUT_VALUE and ADD_PROVIDER before the record is even checked ("rate").
Refusals and evictions are counted (:meth:`DhtGuard.stats`) and logged in
aggregate (:meth:`DhtGuard.summary`), never one line per record.

No libp2p import and no I/O: the clock, the sender of the current write and
record sizes come in as callables.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Generic, Literal, NoReturn, TypeVar

from p2pdm.core.ratelimit import TokenBucket
from p2pdm.net.limits import (
    DHT_RATE_TABLE_PEERS,
    DHT_WRITE_BURST,
    DHT_WRITE_RATE_PER_SECOND,
    MAX_DHT_PROVIDER_BYTES_PER_PEER,
    MAX_DHT_PROVIDER_KEYS_PER_PEER,
    MAX_DHT_PROVIDER_RECORDS,
    MAX_DHT_PROVIDER_STORE_BYTES,
    MAX_DHT_RECORD_BYTES_PER_PEER,
    MAX_DHT_RECORD_STORE_BYTES,
    MAX_DHT_RECORDS,
    MAX_DHT_RECORDS_PER_PEER,
    MAX_DHT_REFUSED_PEERS_COUNTED,
)

__all__ = [
    "DEFAULT_DHT_LIMITS",
    "DhtGuard",
    "DhtLimits",
    "DhtStoreStats",
    "Ledger",
    "StoreCaps",
    "WriteRates",
    "WriteRefused",
]

Reason = Literal["rate", "peer_cap", "store_full", "too_large"]
Item = TypeVar("Item", bound=Hashable)
V = TypeVar("V")
#: A remote peer, as the caller names it (any hashable); None is ourselves.
Owner = Hashable


class WriteRefused(Exception):
    """A peer's DHT write was refused; libp2p resets the stream (or skips the provider)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(f"DHT write refused: {reason}")
        self.reason: Reason = reason


@dataclass(frozen=True, slots=True)
class StoreCaps:
    """Caps of one store: in all, and per owning peer."""

    records: int
    bytes: int
    per_peer_records: int
    per_peer_bytes: int

    def __post_init__(self) -> None:
        if min(self.records, self.bytes, self.per_peer_records, self.per_peer_bytes) < 1:
            raise ValueError("store caps must be positive")


@dataclass(frozen=True, slots=True)
class DhtLimits:
    """What other peers may write to our DHT node (defaults: :mod:`p2pdm.net.limits`)."""

    write_rate: float = DHT_WRITE_RATE_PER_SECOND
    write_burst: int = DHT_WRITE_BURST
    rate_table_peers: int = DHT_RATE_TABLE_PEERS
    records: StoreCaps = StoreCaps(
        MAX_DHT_RECORDS,
        MAX_DHT_RECORD_STORE_BYTES,
        MAX_DHT_RECORDS_PER_PEER,
        MAX_DHT_RECORD_BYTES_PER_PEER,
    )
    providers: StoreCaps = StoreCaps(
        MAX_DHT_PROVIDER_RECORDS,
        MAX_DHT_PROVIDER_STORE_BYTES,
        MAX_DHT_PROVIDER_KEYS_PER_PEER,
        MAX_DHT_PROVIDER_BYTES_PER_PEER,
    )

    def __post_init__(self) -> None:
        if self.write_rate <= 0 or self.write_burst < 1 or self.rate_table_peers < 1:
            raise ValueError("write rate, burst and rate table size must be positive")


#: The production limits.
DEFAULT_DHT_LIMITS = DhtLimits()


@dataclass(frozen=True, slots=True)
class DhtStoreStats:
    """What the DHT holds for others, and what it refused or evicted so far."""

    records: int
    record_bytes: int
    providers: int
    provider_bytes: int
    #: Writes refused since the host started, by reason.
    refused: Mapping[str, int] = field(default_factory=dict)
    #: Records and provider records evicted to make room.
    evicted: int = 0


class WriteRates:
    """A token bucket per peer, in a table of at most ``max_peers`` (least recently seen go)."""

    __slots__ = ("_buckets", "burst", "max_peers", "rate")

    def __init__(self, rate: float, burst: int, max_peers: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_peers = max_peers
        self._buckets: OrderedDict[Owner, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, peer: Owner, now: float) -> bool:
        """Spend one of ``peer``'s tokens at ``now``; False if it has none."""
        bucket = self._buckets.pop(peer, None) or TokenBucket(self.rate, self.burst, at=now)
        self._buckets[peer] = bucket
        while len(self._buckets) > self.max_peers:
            self._buckets.popitem(last=False)
        return bucket.take(now)


class Ledger(Generic[Item]):
    """Who owns which record of one store; decides admission and eviction (module doc)."""

    def __init__(self, caps: StoreCaps) -> None:
        self.caps = caps
        self.count = 0
        self.bytes = 0
        self._entries: dict[Item, tuple[Owner, int]] = {}
        # Per owner (None too), its records oldest first, and their bytes.
        self._owned: dict[Owner, OrderedDict[Item, None]] = {}
        self._owned_bytes: Counter[Owner] = Counter()
        # Remote owners by how many records they hold; _top >= the highest count.
        self._by_count: dict[int, dict[Owner, None]] = {}
        self._top = 0

    def __len__(self) -> int:
        return self.count

    def __contains__(self, item: object) -> bool:
        return item in self._entries

    def held_by(self, owner: Owner) -> int:
        return len(self._owned.get(owner, ()))

    def admit(self, item: Item, owner: Owner, size: int) -> list[Item]:
        """Account ``item`` (new or replacing itself) to ``owner``; return the items evicted.

        Raises WriteRefused ("peer_cap", "store_full") and then changes
        nothing, except that records evicted before the room proved too small
        stay evicted (they belonged to peers holding more than their share).
        """
        old = self._entries.get(item)
        replaced = old[1] if old is not None else 0
        held, held_bytes = self.held_by(owner), self._owned_bytes[owner]
        if old is not None and old[0] == owner:
            held, held_bytes = held - 1, held_bytes - old[1]
        if owner is not None and (
            held + 1 > self.caps.per_peer_records or held_bytes + size > self.caps.per_peer_bytes
        ):
            raise WriteRefused("peer_cap")
        evicted: list[Item] = []
        while (
            self.count + (old is None) > self.caps.records
            or self.bytes - replaced + size > self.caps.bytes
        ):
            victim = self._victim(held if owner is not None else 0)
            if victim is None or victim == item:
                if owner is None:  # our own records always fit
                    break
                raise WriteRefused("store_full")
            self.forget(victim)
            evicted.append(victim)
        if old is not None:
            self.forget(item)
        self._add(item, owner, size)
        return evicted

    def forget(self, item: Item) -> None:
        """Drop ``item``'s accounting (no-op if unknown)."""
        entry = self._entries.pop(item, None)
        if entry is None:
            return
        owner, size = entry
        self.count -= 1
        self.bytes -= size
        self._owned_bytes[owner] -= size
        owned = self._owned[owner]
        del owned[item]
        if not owned:
            del self._owned[owner]
            del self._owned_bytes[owner]
        if owner is not None:
            self._move(owner, len(owned) + 1, len(owned))

    def _add(self, item: Item, owner: Owner, size: int) -> None:
        self._entries[item] = (owner, size)
        self.count += 1
        self.bytes += size
        self._owned_bytes[owner] += size
        owned = self._owned.setdefault(owner, OrderedDict())
        owned[item] = None
        if owner is not None:
            self._move(owner, len(owned) - 1, len(owned))

    def _move(self, owner: Owner, before: int, after: int) -> None:
        if before:
            bucket = self._by_count[before]
            del bucket[owner]
            if not bucket:
                del self._by_count[before]
        if after:
            self._by_count.setdefault(after, {})[owner] = None
            self._top = max(self._top, after)

    def _victim(self, sender_holds: int) -> Item | None:
        """The newest record of the peer holding the most, if it holds >= sender + 2."""
        while self._top and self._top not in self._by_count:
            self._top -= 1  # counts move by one, so this is amortised O(1)
        if self._top < sender_holds + 2:
            return None
        owner = next(reversed(self._by_count[self._top]))
        return next(reversed(self._owned[owner]))


class GuardedRecords(MutableMapping[bytes, V]):
    """libp2p's ``ValueStore.store`` (key → (Record, expiry)), bounded by a :class:`Ledger`."""

    def __init__(
        self, guard: DhtGuard, sender: Callable[[], Owner], size_of: Callable[[V], int]
    ) -> None:
        self._guard = guard
        self._sender = sender
        self._size_of = size_of
        self._data: dict[bytes, V] = {}

    def __getitem__(self, key: bytes) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setitem__(self, key: bytes, value: V) -> None:
        ledger = self._guard.records
        for evicted in self._guard.admit(ledger, key, self._sender(), self._size_of(value)):
            del self._data[evicted]
        self._data[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self._data[key]
        self._guard.records.forget(key)


class ProviderIndex(MutableMapping[bytes, MutableMapping[str, V]]):
    """libp2p's ``ProviderStore.providers`` (key → provider → record), bounded by a :class:`Ledger`.

    libp2p adds a provider with ``providers.setdefault``-like code
    (``providers[key] = {}`` then ``providers[key][peer] = record``); the
    inner mappings made here account each (key, provider) pair.
    """

    def __init__(self, guard: DhtGuard, local: str, size_of: Callable[[bytes, V], int]) -> None:
        self._guard = guard
        self._local = local
        self._size_of = size_of
        self._data: dict[bytes, _ProviderSet[V]] = {}

    def __getitem__(self, key: bytes) -> MutableMapping[str, V]:
        return self._data[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setitem__(self, key: bytes, value: MutableMapping[str, V]) -> None:
        if key in self._data:
            del self[key]
        self._data[key] = _ProviderSet(self, key)
        for peer, record in list(value.items()):
            self._data[key][peer] = record

    def __delitem__(self, key: bytes) -> None:
        for peer in self._data.pop(key)._data:
            self._guard.providers.forget((key, peer))

    def _admit(self, key: bytes, peer: str, record: V) -> None:
        owner = None if peer == self._local else peer
        size = self._size_of(key, record)
        try:
            evicted = self._guard.admit(self._guard.providers, (key, peer), owner, size)
        except WriteRefused:
            self._discard_if_empty(key)
            raise
        for other_key, other_peer in evicted:
            del self._data[other_key]._data[other_peer]
            if other_key != key:
                self._discard_if_empty(other_key)

    def _discard_if_empty(self, key: bytes) -> None:
        providers = self._data.get(key)
        if providers is not None and not providers:
            del self._data[key]


class _ProviderSet(MutableMapping[str, V]):
    """The providers of one key (provider peer → record)."""

    def __init__(self, index: ProviderIndex[V], key: bytes) -> None:
        self._index = index
        self._key = key
        self._data: dict[str, V] = {}

    def __getitem__(self, peer: str) -> V:
        return self._data[peer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setitem__(self, peer: str, record: V) -> None:
        self._index._admit(self._key, peer, record)
        self._data[peer] = record

    def __delitem__(self, peer: str) -> None:
        del self._data[peer]
        self._index._guard.providers.forget((self._key, peer))


class DhtGuard:
    """Write rates, both ledgers and the refusal counters of one host's DHT."""

    def __init__(self, limits: DhtLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self.rates = WriteRates(limits.write_rate, limits.write_burst, limits.rate_table_peers)
        self.records: Ledger[bytes] = Ledger(limits.records)
        self.providers: Ledger[tuple[bytes, str]] = Ledger(limits.providers)
        self._refused: Counter[str] = Counter()
        self._evicted = 0
        # Since the last summary: refusals by reason, peers refused, evictions.
        self._recent: Counter[str] = Counter()
        self._recent_peers: set[Owner] = set()
        self._recent_evicted = 0

    def charge(self, peer: Owner) -> None:
        """Spend one of ``peer``'s writes; WriteRefused("rate") if it has none left."""
        if not self.rates.take(peer, self._clock()):
            self.refuse("rate", peer)

    def allows(self, peer: Owner) -> bool:
        """:meth:`charge` as a yes/no answer."""
        try:
            self.charge(peer)
        except WriteRefused:
            return False
        return True

    def refuse(self, reason: Reason, peer: Owner) -> NoReturn:
        """Count a refusal of ``peer``'s write and raise WriteRefused."""
        self._refused[reason] += 1
        self._recent[reason] += 1
        if len(self._recent_peers) < MAX_DHT_REFUSED_PEERS_COUNTED:
            self._recent_peers.add(peer)
        raise WriteRefused(reason)

    def admit(self, ledger: Ledger[Item], item: Item, owner: Owner, size: int) -> list[Item]:
        """:meth:`Ledger.admit`, counting refusals and evictions."""
        try:
            evicted = ledger.admit(item, owner, size)
        except WriteRefused as exc:
            self.refuse(exc.reason, owner)
        self._evicted += len(evicted)
        self._recent_evicted += len(evicted)
        return evicted

    def record_store(
        self, sender: Callable[[], Owner], size_of: Callable[[V], int]
    ) -> GuardedRecords[V]:
        """The mapping to put in place of libp2p's value store dict.

        ``sender()`` names the peer whose write is being handled (None: ours).
        """
        return GuardedRecords(self, sender, size_of)

    def provider_index(self, local: str, size_of: Callable[[bytes, V], int]) -> ProviderIndex[V]:
        """The mapping to put in place of libp2p's provider dict; ``local`` is our peer string."""
        return ProviderIndex(self, local, size_of)

    def stats(self) -> DhtStoreStats:
        return DhtStoreStats(
            records=self.records.count,
            record_bytes=self.records.bytes,
            providers=self.providers.count,
            provider_bytes=self.providers.bytes,
            refused=dict(self._refused),
            evicted=self._evicted,
        )

    def summary(self) -> str | None:
        """One line on what was refused and evicted since the last call; None if nothing."""
        if not self._recent and not self._recent_evicted:
            return None
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self._recent.items()))
        peers = len(self._recent_peers)
        line = (
            f"DHT writes refused: {self._recent.total()} ({reasons or 'none'}) "
            f"from {peers}{'+' if peers >= MAX_DHT_REFUSED_PEERS_COUNTED else ''} peers; "
            f"{self._recent_evicted} records evicted; holding {self.records.count} records, "
            f"{self.providers.count} provider records"
        )
        self._recent.clear()
        self._recent_peers.clear()
        self._recent_evicted = 0
        return line
