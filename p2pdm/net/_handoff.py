"""Kademlia's join rule, bounded: hand a joining peer the records it should hold.

How this works: a node that joins the DHT (or comes back after a restart,
with an empty record store) looks itself up: it sends FIND_NODE for its own
PeerID to the peers closest to it, which are the peers holding the records
whose keys are near it. :func:`watch_self_lookups` notices such a query
while the DHT's handler answers it; :class:`RecordHandoff` then puts to the
querier the records we hold for which it is among the
``RECORD_HANDOFF_CLOSEST`` closest peers we know of (Kademlia, §2.5: "any
node learning of a new node issues STORE RPCs to transfer relevant
key-value pairs to the new node"). libp2p moves a record only when its
owner republishes, so without this a restarted holder stays empty and a
record put while the network was smaller stays on peers that are no longer
the closest to its key, until the owner's next publication (p2pdm: 6 h).

Once per run of the peer: a peer's DHT refresh looks itself up too (every
``DHT_REFRESH_INTERVAL_SECONDS``), though it still holds what it was handed.
A node signs a new peer record (libp2p's, sent with every DHT request) each
time it starts, so a peer whose signed record has the sequence number it had
at a complete handoff is the same run of it: it gets nothing again. A
restart (a new record, an empty store) or a handoff cut short by the bound
below is handed records again. (Before, every refresh drew PUTs of records
it held from each of the refresher's closest peers.)

Bounded: at most ``RECORD_HANDOFF_MAX_RECORDS`` records per handoff (below
the receiver's write burst), one handoff per peer per
``RECORD_HANDOFF_PEER_INTERVAL_SECONDS``, ``RECORD_HANDOFF_CONCURRENCY``
handoffs at a time (more are skipped, not queued), each within
``RECORD_HANDOFF_TIMEOUT_SECONDS``. The records are sent as they are
(signed by their owners), as PUT_VALUE: nothing new on the wire.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress

import trio
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.kad_dht.pb.kademlia_pb2 import Record
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStoreError

from p2pdm.net.limits import (
    RECORD_HANDOFF_CLOSEST,
    RECORD_HANDOFF_CONCURRENCY,
    RECORD_HANDOFF_MAX_RECORDS,
    RECORD_HANDOFF_PEER_INTERVAL_SECONDS,
    RECORD_HANDOFF_PEERS_REMEMBERED,
    RECORD_HANDOFF_SCAN,
    RECORD_HANDOFF_TIMEOUT_SECONDS,
)

__all__ = ["RecordHandoff", "watch_self_lookups"]

logger = logging.getLogger(__name__)


def _point(data: bytes) -> int:
    """A key's or PeerID's place in libp2p's keyspace (SHA-256, as its routing table)."""
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


class RecordHandoff:
    """Hands the records we hold to peers that joined close to their keys."""

    def __init__(self, dht: KadDHT, clock: Callable[[], float] = trio.current_time) -> None:
        self._dht = dht
        self._clock = clock
        #: When each peer was last handed records (or considered), oldest first.
        self._last: OrderedDict[ID, float] = OrderedDict()
        #: Each peer's signed record sequence number at its last complete
        #: handoff (that run of the peer holds what we had for it), oldest first.
        self._handed: OrderedDict[ID, int] = OrderedDict()
        self._running = 0
        #: Handoffs started / records put (for measurements).
        self.handoffs = 0
        self.records_put = 0

    def records_for(self, peer: ID) -> list[tuple[bytes, Record]]:
        """The records we hold for which ``peer`` is among the RECORD_HANDOFF_CLOSEST
        peers we know of (our routing table and ourselves), nearest to it first."""
        store = self._dht.value_store
        keys = store.get_keys()
        if not keys:
            return []
        me = self._dht.local_peer_id
        known = [p for p in self._dht.routing_table.get_peer_ids() if p != peer]
        points = [_point(p.to_bytes()) for p in known] + [_point(me.to_bytes())]
        here = _point(peer.to_bytes())
        # Keys near the peer first; only the nearest RECORD_HANDOFF_SCAN are examined.
        ranked = sorted((_point(key) ^ here, key) for key in keys)[:RECORD_HANDOFF_SCAN]
        chosen: list[tuple[bytes, Record]] = []
        for distance, key in ranked:
            target = _point(key)
            closer = sum(1 for p in points if p ^ target < distance)
            if closer >= RECORD_HANDOFF_CLOSEST:
                continue
            record = store.get(key)
            if record is not None:
                chosen.append((key, record))
                if len(chosen) >= RECORD_HANDOFF_MAX_RECORDS:
                    break
        return chosen

    def _serves_dht(self, peer: ID) -> bool:
        """False if identify told us ``peer`` does not serve the DHT (a client)."""
        try:
            protocols = self._dht.host.get_peerstore().get_protocols(peer)
        except PeerStoreError:
            return True
        return not protocols or KAD_PROTOCOL_ID in protocols

    def joined(self, peer: ID, nursery: trio.Nursery) -> None:
        """``peer`` looked itself up through us: hand it its records in ``nursery``."""
        if peer == self._dht.local_peer_id or self._running >= RECORD_HANDOFF_CONCURRENCY:
            return
        now = self._clock()
        last = self._last.get(peer)
        if last is not None and now - last < RECORD_HANDOFF_PEER_INTERVAL_SECONDS:
            return
        self._last[peer] = now
        self._last.move_to_end(peer)
        while len(self._last) > RECORD_HANDOFF_PEERS_REMEMBERED:
            self._last.popitem(last=False)
        if not self._serves_dht(peer):
            return
        run = self._run_of(peer)
        if run is not None and self._handed.get(peer) == run:
            return  # this run of the peer was handed its records: a refresh
        records = self.records_for(peer)
        if not records:
            return
        self._running += 1
        self.handoffs += 1
        try:
            nursery.start_soon(self._hand, peer, records, run)
        except RuntimeError:  # the host is closing
            self._running -= 1

    def _run_of(self, peer: ID) -> int | None:
        """The sequence number of ``peer``'s signed peer record (new at each of its
        starts), or None if we have none."""
        try:
            envelope = self._dht.host.get_peerstore().get_peer_record(peer)
            return None if envelope is None else int(envelope.record().seq)
        except Exception:  # a record we cannot read: as if none
            return None

    async def _hand(
        self, peer: ID, records: list[tuple[bytes, Record]], run: int | None = None
    ) -> None:
        store = self._dht.value_store
        complete = False
        try:
            with trio.move_on_after(RECORD_HANDOFF_TIMEOUT_SECONDS):
                for key, record in records:
                    stored = False
                    with suppress(Exception):
                        stored = await store._store_at_peer(peer, key, record.value, record=record)
                    if stored:
                        self.records_put += 1
                    elif not self._serves_dht(peer):
                        break  # identify arrived meanwhile: a client takes no records
                else:
                    complete = len(records) < RECORD_HANDOFF_MAX_RECORDS
        finally:
            self._running -= 1
        if complete and run is not None:
            self._handed[peer] = run
            self._handed.move_to_end(peer)
            while len(self._handed) > RECORD_HANDOFF_PEERS_REMEMBERED:
                self._handed.popitem(last=False)


def watch_self_lookups(
    dht: KadDHT, querier: Callable[[], bytes | None], joined: Callable[[ID], None]
) -> None:
    """Call ``joined(peer)`` whenever ``dht``'s handler answers a peer's FIND_NODE
    for its own PeerID (a join, a rejoin after a restart, a refresh).

    ``querier()`` names the peer whose inbound DHT stream the current task
    serves (None elsewhere: our own lookups use the same routing table).
    The handler asks the routing table for the peers closest to the
    query's key; that call is where the query is seen.
    """
    table = dht.routing_table
    closest = table.find_local_closest_peers

    def find_local_closest_peers(key: bytes, count: int = 20) -> list[ID]:
        peer = querier()
        if peer is not None and key == peer:
            try:
                joined(ID(peer))
            except Exception:  # never let the handoff break the DHT's answer
                logger.exception("record handoff failed")
        return closest(key, count)

    table.find_local_closest_peers = find_local_closest_peers  # type: ignore[method-assign]
