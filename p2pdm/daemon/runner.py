"""``p2pdm run``: one node with its network services, in one trio process.

How this works: :func:`run_node` locks the home (one node per home), opens
the store, runs the node's network services with :func:`serve_node` (the
composition ``p2pdm sim`` runs too, over TCP or an in-memory network) and
the local API beside them. :func:`serve_node` opens the libp2p host and runs
side by side in one nursery:

- the delivery service (outbox loop and the ``/p2pdm/dm/1.0.0`` handler);
- the record publisher: the node's signed record (its prekey bundle) under
  ``/p2pdm/<PeerID>`` in the DHT, with a sequence number that only grows,
  republished well inside libp2p's 24 h record expiry, after a prekey
  rotation, and soon again when no p2pdm DHT peer was there to take it
  (other Kademlia nodes route for us but drop p2pdm records);
- the greeting: at start-up the node connects to its contacts, the most
  recently seen first (:func:`greet_contacts`), so that a contact who
  queued messages for us while we were away (or on another address) sends
  them at once;
- the peer watcher: when a contact connects, its addresses and last-seen
  time go into the address book and anything queued for it is sent at once
  rather than at its next backoff;
- the mailbox service, if the node offers one;
- the handle directory: the key of our profile's handle provided in the DHT
  (if we published one), and lookups of others' handles for the node
  (:mod:`p2pdm.services.directory`). A profile change republishes the
  record and provides the new handle at once.

The local HTTP API's address is written to ``<home>/api_addr``. Leaving
(cancellation: the CLI cancels on SIGINT/SIGTERM) closes the API and the
network services, then the host with all its connections, then the store. Every change is
committed when it is made, so the outbox survives any stop.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final, cast

import trio

from p2pdm import hints
from p2pdm.api.server import serve_api
from p2pdm.api.sessions import LoginCodes, login_url
from p2pdm.core import records
from p2pdm.core.dm import DM_PROTOCOL
from p2pdm.core.identity import PeerId
from p2pdm.core.wire import PrekeyBundle
from p2pdm.daemon.demo import DEMO_LISTEN, Demo
from p2pdm.daemon.home import Home
from p2pdm.daemon.mailboxes import mailboxes_json
from p2pdm.daemon.netback import NetworkBack, gone_after
from p2pdm.daemon.reach import reachability_json
from p2pdm.errors import (
    ConfigError,
    HomeError,
    P2PDMError,
    PeerUnreachable,
    SignatureError,
    WireError,
)
from p2pdm.homefiles import api_addr_path, format_api_addr, parse_api_addr, write_api_addr
from p2pdm.net import (
    DhtMode,
    Host,
    PeerFilter,
    RelayKeeper,
    RelayLimits,
    announce_relay,
    open_host,
)
from p2pdm.net.limits import RECORD_QUORUM
from p2pdm.net.timers import sleep as shared_sleep
from p2pdm.net.upkeep import DEFAULT_UPKEEP, Upkeep
from p2pdm.node.housekeeping import purge_loop
from p2pdm.node.key_waits import key_lookup_loop
from p2pdm.node.live_location import (
    live_location_loop,
    orphans_for,
    own_shares_for,
    resend_live_location,
    stop_orphaned_shares,
)
from p2pdm.node.node import DEFAULT_API_PORT, DEFAULT_LISTEN, Node
from p2pdm.services.blob import BlobService
from p2pdm.services.directory import HandleDirectory
from p2pdm.services.dm import Delivery
from p2pdm.services.mailbox_client import MailboxDirectory
from p2pdm.store.blob_files import BLOBS_DIR, DirBlobFiles

if TYPE_CHECKING:  # the simulation's networks: `p2pdm run` does not load them
    from p2pdm.net import MemoryNetwork, TcpFaults
    from p2pdm.services.mailbox_server import MailboxService

__all__ = [
    "RunOptions",
    "Running",
    "Serving",
    "dht_stats_json",
    "fetch_bundle",
    "greet_contacts",
    "publish_record",
    "record_holders",
    "run_node",
    "serve_node",
]

log = logging.getLogger("p2pdm.node.node")

#: libp2p forgets records after 24 h; republishing every 6 h leaves three
#: more chances before a record can lapse.
RECORD_REPUBLISH_SECONDS: Final = 6 * 3600.0
#: A record published while no p2pdm DHT peer was connected is only stored
#: here (other Kademlia nodes drop it), and one that fewer than RECORD_QUORUM
#: peers took (most queries of the put failed or timed out: a busy machine, a
#: partition) may soon be nowhere else (its few holders restart); either would
#: otherwise wait RECORD_REPUBLISH_SECONDS while lookups find nothing
#: (docs/simulation.md "Record lookups with the real clock"): publish again this soon.
RECORD_RETRY_SECONDS: Final = 30.0
#: How often the signed prekey's age is checked (it rotates weekly).
PREKEY_CHECK_SECONDS: Final = 3600.0
#: How long a send waits for a contact's record when starting a session by PeerID.
BUNDLE_FETCH_TIMEOUT_SECONDS: Final = 15.0
#: How often the connected peers are compared with the address book.
PEER_WATCH_SECONDS: Final = 2.0
#: Contacts dialled at once when the node starts: enough to reach a few
#: dozen contacts in seconds, few enough not to flood the host (libp2p's
#: dials are CPU-bound here) or trip peers' connection rate limits.
GREET_CONCURRENCY: Final = 8
#: Contacts dialled at start-up at most, the most recently seen first; the
#: rest are reached when there is something to send or they connect.
GREET_MAX_CONTACTS: Final = 256
#: The whole start-up round of dials ends after this long, whatever is left.
GREET_SECONDS: Final = 30.0
#: Bytes of the node's randomness that seed its delivery retry jitter.
JITTER_SEED_BYTES: Final = 16
#: Store setting holding the last published record's sequence number.
RECORD_SEQ_SETTING: Final = "record_seq"
#: Store setting holding the last publication that reached a p2pdm DHT peer:
#: when, what it said and the signed record itself (``{"at_ms": wall ms,
#: "digest": hex, "signed": hex}``,
#: :meth:`~p2pdm.core.records.NodeRecord.content_digest`). A node started
#: again within RECORD_REPUBLISH_SECONDS of it, its record unchanged, puts that
#: same signed record again (same ``seq``: only the closest peers that lost it
#: get a PUT, the others answer the put's lookup with it) and publishes anew
#: when that time is up, as Kubo's reprovider keeps the time of its last
#: reprovide and, after a restart, waits for the rest of the interval. (Not
#: putting it at all lost a record among restarted holders in a churning
#: simulation.)
RECORD_PUBLISHED_SETTING: Final = "record_published"


#: What ``dht_mode`` may be (``run --dht-mode``, config.toml's ``dht_mode``).
DHT_MODES: Final = ("auto", "server", "client")


def config_dht_mode(text: str) -> DhtMode:
    """config.toml's ``dht_mode`` (empty: "auto"); raises ConfigError for anything else."""
    if text == "":
        return "auto"
    if text not in DHT_MODES:
        raise ConfigError(f"dht_mode is one of {', '.join(DHT_MODES)}, not {text!r}")
    return cast("DhtMode", text)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run; :meth:`resolve` merges the command line with ``config.toml``."""

    listen: tuple[str, ...] = DEFAULT_LISTEN
    api: tuple[str, int] = ("127.0.0.1", DEFAULT_API_PORT)
    bootstrap: tuple[str, ...] = ()
    dht_mode: DhtMode = "server"
    #: Offer the mailbox service (hold envelopes for offline nodes).
    mailbox: bool = False
    #: Mailboxes we prefer for our own envelopes, named in our DHT record.
    mailbox_peers: tuple[str, ...] = ()
    #: Offer circuit relay v2 to nodes behind NAT (with these limits).
    relay: RelayLimits | None = None
    #: Relays we prefer for our reservations when behind NAT (``…/p2p/<PeerID>``).
    relay_peers: tuple[str, ...] = ()
    #: Find p2pdm nodes on the LAN by mDNS (``run`` turns it on unless
    #: ``--no-mdns`` or config.toml's ``mdns = false``).
    mdns: bool = False
    upkeep: Upkeep = field(default=DEFAULT_UPKEEP)
    #: Seconds before the first mailbox fetch and the DHT join (the host then
    #: joins in the background): a simulation spreads its start-up wave with it.
    start_delay: float = 0.0
    #: Offer (and run) the local demo bot for newcomers (``--no-demo``: off).
    demo: bool = True

    @classmethod
    def resolve(
        cls,
        home: Home,
        *,
        listen: Sequence[str] = (),
        api: str | None = None,
        bootstrap: Sequence[str] = (),
        dht_mode: DhtMode = "server",
        mailbox: bool = False,
        mailbox_peers: Sequence[str] = (),
        demo: bool = True,
        relay: bool = False,
        relay_peers: Sequence[str] = (),
        mdns: bool = False,
    ) -> RunOptions:
        """Command-line values win over the config file; address lists are joined."""
        config = home.config()
        api_text = api or config.api or format_api_addr("127.0.0.1", DEFAULT_API_PORT)
        try:
            api_addr = parse_api_addr(api_text, "the API address", any_port=True)
        except HomeError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            listen=tuple(listen) or config.listen or DEFAULT_LISTEN,
            api=api_addr,
            bootstrap=tuple(dict.fromkeys([*bootstrap, *config.bootstrap])),
            dht_mode=dht_mode if dht_mode != "auto" else config_dht_mode(config.dht_mode),
            mailbox=mailbox or config.mailbox,
            mailbox_peers=tuple(dict.fromkeys([*mailbox_peers, *config.mailbox_peers])),
            demo=demo,
            relay=RelayLimits() if relay or config.relay else None,
            relay_peers=tuple(dict.fromkeys([*relay_peers, *config.relay_peers])),
            mdns=mdns and config.mdns,
        )


@dataclass(frozen=True, slots=True)
class Running:
    """What :func:`run_node` reports once the node serves."""

    node: Node
    host: Host
    delivery: Delivery
    api: tuple[str, int]

    @property
    def api_url(self) -> str:
        return f"http://{format_api_addr(*self.api)}/v1/"


def _record_checks(
    checker: records.RecordChecker,
) -> tuple[Callable[[bytes, bytes], None], Callable[[bytes, list[bytes]], int]]:
    """The DHT's validate and select for p2pdm records, through one node's checker."""

    def validate(key: bytes, value: bytes) -> None:
        checker.validate(key.decode(), value)

    def select(key: bytes, values: list[bytes]) -> int:
        return checker.select(key.decode(), values)

    return validate, select


async def fetch_record(host: Host, peer: PeerId) -> records.NodeRecord | None:
    """``peer``'s newest DHT record, or None if none (valid) is found."""
    key = records.record_key(peer)
    value = await host.get_record(key, BUNDLE_FETCH_TIMEOUT_SECONDS)
    if value is None:
        return None
    try:
        return records.validate(key, value)
    except (WireError, SignatureError) as exc:  # holders validate, but trust no one
        log.warning("record of %s is invalid: %s", peer.short(), exc)
        return None


async def fetch_bundle(host: Host, peer: PeerId) -> PrekeyBundle | None:
    """``peer``'s prekey bundle from its newest DHT record, or None if none is found."""
    record = await fetch_record(host, peer)
    return None if record is None else record.bundle


async def relayed_addrs_of(host: Host, peer: PeerId) -> list[str]:
    """``peer``'s relayed addresses, from its signed record ([] if none)."""
    record = await fetch_record(host, peer)
    return [] if record is None else list(record.relays)


def dht_stats_json(host: Host) -> dict[str, object]:
    """The host's DHT store counters, routing-table size and connected peers as JSON
    (``GET /v1/node``'s ``dht``)."""
    stats = host.dht_store_stats()
    return {
        "records": stats.records,
        "record_bytes": stats.record_bytes,
        "providers": stats.providers,
        "provider_bytes": stats.provider_bytes,
        "refused": dict(stats.refused),
        "evicted": stats.evicted,
        "routing_table": len(host.dht_peers()),
        "connected_peers": len(host.connected_peers()),
    }


def record_holders(host: Host) -> list[PeerId]:
    """DHT peers that keep p2pdm records: p2pdm nodes, known by their dm protocol.

    Other Kademlia nodes (js-libp2p, IPFS) route for us but drop ``/p2pdm/``
    records, having no validator for them; they never count as holders.
    """
    return [peer for peer in host.dht_peers() if DM_PROTOCOL in host.peer_protocols(peer)]


async def publish_record(node: Node, host: Host, directory: MailboxDirectory | None = None) -> bool:
    """Sign and put the node's record (bundle, preferred mailboxes); True if
    p2pdm DHT peers were there and enough of them took it: RECORD_QUORUM (what
    a reader waits for), or every one we know of when we know fewer."""
    stored = node.store.get_setting(RECORD_SEQ_SETTING, 0)
    # Milliseconds keep the sequence growing even if the setting were lost.
    seq = max(stored + 1 if isinstance(stored, int) else 0, node.now_ms())
    node.store.set_setting(RECORD_SEQ_SETTING, seq)
    directory = directory or MailboxDirectory(node.identity, host)
    try:
        bundle = node.messenger.bundle(one_time=0)
        record, holders = await directory.publish_record(
            bundle, seq, node.profiles.current(), host.relayed_addrs()
        )
    except P2PDMError as exc:
        log.warning("publishing our record failed: %s", exc)
        return False
    peers = len(record_holders(host))
    reached = peers > 0 and holders >= min(RECORD_QUORUM, peers)
    if peers and not reached:
        log.info(
            "%d peers took our record; publishing again in %g s", holders, RECORD_RETRY_SECONDS
        )
    if reached:
        published = {
            "at_ms": node.now_ms(),
            "digest": record.content_digest().hex(),
            "signed": record.sign(node.identity).hex(),  # Ed25519: the same bytes
        }
        try:
            node.store.set_setting(RECORD_PUBLISHED_SETTING, published)
        except P2PDMError as exc:
            log.info("could not note our record's publication: %s", exc)
    return reached


def published_unchanged(
    node: Node, host: Host, directory: MailboxDirectory
) -> tuple[float, bytes] | None:
    """Seconds since our last publication that reached a p2pdm DHT peer, and the
    signed record it put, if the record we would publish now says the same
    (bundle, preferred mailboxes, profile, relayed addresses) and that was less
    than RECORD_REPUBLISH_SECONDS ago (and not in the future: a wall clock set
    back); else None."""
    try:
        value = node.store.get_setting(RECORD_PUBLISHED_SETTING)
        if not isinstance(value, dict):
            return None
        at_ms, digest, signed = value.get("at_ms"), value.get("digest"), value.get("signed")
        if type(at_ms) is not int or not isinstance(digest, str) or not isinstance(signed, str):
            return None
        put = bytes.fromhex(signed)
        if records.validate(records.record_key(node.peer_id), put).content_digest().hex() != digest:
            return None
        age = (node.now_ms() - at_ms) / 1000
        if not 0 <= age < RECORD_REPUBLISH_SECONDS:
            return None
        now = records.NodeRecord(
            node.peer_id,
            0,
            node.messenger.bundle(one_time=0),
            directory.preferred_addrs,
            node.profiles.current(),
            tuple(host.relayed_addrs()[: records.MAX_RELAY_ADDRS]),
        )
    except (P2PDMError, ValueError) as exc:
        log.info("could not compare our record with the one published: %s", exc)
        return None
    return (age, put) if now.content_digest().hex() == digest else None


class _Republish:
    """Asks the record publisher to publish now (the profile or our relayed addresses changed)."""

    def __init__(self) -> None:
        self.due = trio.Event()

    def now(self) -> None:
        self.due.set()


async def _publish_records(
    node: Node,
    host: Host,
    directory: MailboxDirectory,
    republish: _Republish,
    gate: Callable[[], Awaitable[None]] | None = None,
) -> None:
    if gate is not None:
        await gate()
    next_due = -1.0
    # Started again with the record the DHT holds: the same signed record again
    # (to the closest peers that lost it), a new one when it is due.
    unchanged = published_unchanged(node, host, directory)
    if unchanged is not None:
        since, signed = unchanged
        next_due = trio.current_time() + RECORD_REPUBLISH_SECONDS - since
        try:
            holders = await host.put_record(records.record_key(node.peer_id), signed)
            if holders < min(RECORD_QUORUM, len(record_holders(host))):
                # Too few peers took it (RECORD_RETRY_SECONDS): a new publication then.
                next_due = trio.current_time() + RECORD_RETRY_SECONDS
        except P2PDMError as exc:  # a newer one is stored here, or no validator
            log.info("putting our record again failed: %s", exc)
            next_due = -1.0
    while True:
        rotated = node.messenger.rotate_prekeys()
        if rotated or republish.due.is_set() or trio.current_time() >= next_due:
            republish.due = trio.Event()
            reached = await publish_record(node, host, directory)
            pause = RECORD_REPUBLISH_SECONDS if reached else RECORD_RETRY_SECONDS
            next_due = trio.current_time() + pause
        wait = min(PREKEY_CHECK_SECONDS, max(0.0, next_due - trio.current_time()))
        with trio.move_on_after(wait):
            await republish.due.wait()


def _own_handle(node: Node) -> str:
    profile = node.profiles.current()
    return "" if profile is None else profile.handle


async def greet_contacts(node: Node, host: Host) -> int:
    """Connect to our contacts, the most recently seen first; returns how many answered.

    A node that comes back (restarted, on a new address after changing
    networks) tells its contacts where it is now: each one connected sees
    it come online and sends what it queued for us at once, instead of
    dialling our stale addresses on a growing backoff. A contact whose
    known addresses fail is looked up in the DHT (it may have moved too).
    At most GREET_CONCURRENCY dials at once, GREET_MAX_CONTACTS contacts,
    GREET_SECONDS in all.
    """
    contacts = sorted(
        (c for c in node.contacts() if not c.blocked and c.peer_id != node.peer_id),
        key=lambda c: c.last_seen_ms or 0,
        reverse=True,
    )[:GREET_MAX_CONTACTS]
    limiter = trio.Semaphore(GREET_CONCURRENCY)
    answered = 0

    async def greet(peer: PeerId, addrs: list[str]) -> None:
        nonlocal answered
        async with limiter:
            try:
                try:
                    await host.connect(peer, addrs)
                except PeerUnreachable:
                    found = await host.find_peer(peer, BUNDLE_FETCH_TIMEOUT_SECONDS, fresh=True)
                    await host.connect(peer, found)
            except P2PDMError as exc:
                log.debug("contact %s not reachable at start-up: %s", peer.short(), exc)
                return
            answered += 1

    with trio.move_on_after(GREET_SECONDS):
        async with trio.open_nursery() as nursery:
            for contact in contacts:
                nursery.start_soon(greet, contact.peer_id, list(contact.addrs))
    if contacts:
        log.info("reached %d of %d contacts at start-up", answered, len(contacts))
    return answered


class _PeerWatch:
    """Notices contacts (and co-members of groups) connecting and disconnecting,
    and the node coming back online.

    A new connection from a contact (even one that was back before we saw it
    gone: a restart on a new port takes a second): its addresses into the
    address book and what waits for it is sent now; ``peer.online`` if it
    was offline; the same for a peer already connected when it becomes a
    contact. The last connection to a contact going: ``peer.offline``.
    The node's network back after it was out of reach (its bootstrap re-dials
    failed, it had no connection for longer than they take, or the computer
    slept: :mod:`p2pdm.daemon.netback`): fetch from our
    mailboxes; connections that only closed as idle fetch nothing. A peer
    with a new connection (contact or group member: it may have been away)
    gets the position of each live location we share with it at once
    (``returned``, sent by :meth:`run`).
    """

    def __init__(
        self,
        node: Node,
        host: Host,
        delivery: Delivery,
        blobs: BlobService | None = None,
        upkeep: Upkeep = DEFAULT_UPKEEP,
    ) -> None:
        self.node = node
        self.host = host
        self.delivery = delivery
        self.blobs = blobs
        self.network = NetworkBack(gone_after(upkeep, PEER_WATCH_SECONDS))
        #: The connections seen at the last check, by peer.
        self.seen: dict[PeerId, frozenset[int]] = {}
        #: Peers with a connection not there at the last check.
        self.returned: list[PeerId] = []
        #: Peers our live locations are being sent to again now.
        self._resending: set[PeerId] = set()

    def check(self) -> None:
        connections = self.host.connections()
        opened = (number for numbers in connections.values() for number in numbers)
        now, wall = trio.current_time(), self.node.now_ms() / 1000
        if self.network.observe(now, wall, opened, self.host.failed_bootstrap_dials):
            log.info("network back: fetching from our mailboxes")
            self.delivery.fetch_now()
        # A connection not seen before: the peer may have been away (a restart
        # between two checks shows as a new connection, never as a gap).
        self.returned = [
            p for p, numbers in connections.items() if not numbers <= self.seen.get(p, frozenset())
        ]
        for peer, numbers in connections.items():
            new = not numbers <= self.seen.get(peer, frozenset())
            # A peer connected before it became a contact (added, its request
            # accepted) counts as a new connection once it is one.
            if not new and peer in self.node.online:
                continue
            contact = self.node.store.get_contact(peer) is not None
            # A co-member of a group we accepted is online as a contact is
            # (typing, files pushed or fetched), though not in the address book.
            if not contact and not self.node.messenger.known.co_member(peer):
                continue
            if peer not in self.node.online:
                self.node.peer_online(peer)
            if contact:
                self.node.set_contact_addrs(peer, self.host.peer_addrs(peer))
            self.delivery.retry_now(peer)
            if self.blobs is not None:
                self.blobs.wake()
        self.seen = connections
        for peer in self.node.online - connections.keys():
            self.node.peer_offline(peer)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    self.check()
                    self._resend_live(nursery)
                except P2PDMError as exc:
                    log.warning("peer watch: %s", exc)
                await shared_sleep(PEER_WATCH_SECONDS)  # no cancel scope per round

    def _resend_live(self, nursery: trio.Nursery) -> None:
        """Each returned peer that one of our live shares is for gets it now (one
        task per such peer at a time: bounded by peers and shares)."""
        live = self.node.live_locations
        if not live.own(self.node.now_ms()) and not live.orphans:
            return
        for peer in self.returned:
            due = own_shares_for(self.node, peer) or orphans_for(self.node, peer)
            if peer not in self._resending and due:
                self._resending.add(peer)
                nursery.start_soon(self._resend, peer)

    async def _resend(self, peer: PeerId) -> None:
        try:
            await resend_live_location(self.node, peer)
        except P2PDMError as exc:
            log.info("could not send live locations again to %s: %s", peer.short(), exc)
        finally:
            self._resending.discard(peer)


async def _stop_orphaned_shares(node: Node) -> None:
    """Tell the recipients of the live shares that ran when the node last stopped."""
    try:
        told = await stop_orphaned_shares(node)
    except P2PDMError as exc:
        log.warning("could not stop the live locations of before the restart: %s", exc)
        return
    if told:
        log.info(
            "told %d %s a live location stopped with the restart",
            told,
            "peer" if told == 1 else "peers",
        )


@dataclass(frozen=True, slots=True)
class Serving:
    """What :func:`serve_node` reports once the node's network services run."""

    node: Node
    host: Host
    delivery: Delivery
    directory: MailboxDirectory
    #: The mailbox service, if this node offers one.
    mailbox: MailboxService | None
    #: Serves our files to their recipients and fetches those sent to us.
    blobs: BlobService | None = None


async def serve_node(
    node: Node,
    options: RunOptions,
    *,
    network: MemoryNetwork | None = None,
    peer_filter: PeerFilter | None = None,
    faults: TcpFaults | None = None,
    on_delivery: Callable[[Delivery], None] | None = None,
    publish_gate: Callable[[], Awaitable[None]] | None = None,
    join_gate: Callable[[], Awaitable[None]] | None = None,
    task_status: Any = trio.TASK_STATUS_IGNORED,  # trio.TaskStatus[Serving]
) -> None:
    """Run ``node``'s network services until cancelled; reports :class:`Serving`.

    The composition every p2pdm node shares, whether ``p2pdm run`` or one of
    ``p2pdm sim``'s nodes: the libp2p host, the record namespace, delivery
    and its mailbox fetcher, group commit, the record publisher, the peer
    watch and, with ``options.mailbox``, the mailbox service. ``network``:
    run over this in-memory network (simulations) instead of TCP; the host
    then listens on a fresh address of it and ``options.listen`` is unused.
    ``peer_filter``: the host's peer filter from the start (a simulated
    partition, :meth:`~p2pdm.net.Host.set_peer_filter`); ``faults``:
    latency and loss on its TCP connections. ``on_delivery``
    sees the delivery service before it accepts anything (simulations time
    the DHT lookups of its network; what the node accepts they learn from
    the node's observer). ``publish_gate``: awaited before the node's first
    record publication (a simulation publishes once its network has formed);
    ``join_gate``: awaited in the background before the DHT join, the node
    serving meanwhile (a real-clock simulation joins once every node listens).
    Cancelling stops the services, then closes the host; the store stays
    open (it is the caller's). Raises ConfigError for bad addresses or a
    taken port.
    """
    listen = options.listen if network is None else (network.new_listen_addr(),)
    async with open_host(
        node.identity.seed,
        listen,
        bootstrap=options.bootstrap,
        dht_mode=options.dht_mode,
        upkeep=options.upkeep,
        network=network,
        peer_filter=peer_filter,
        faults=faults,
        relay=options.relay,
        mdns=options.mdns,
        join_delay=options.start_delay,
        join_gate=join_gate,
        # Before joining: our DHT neighbours hand us the records we should hold.
        record_namespaces={records.RECORD_NAMESPACE: _record_checks(records.RecordChecker())},
    ) as host:
        node.addrs = host.listen_addrs()
        # The providers found last (kept in the store): the start-up fetch needs no lookup.
        directory = MailboxDirectory(
            node.identity,
            host,
            preferred=options.mailbox_peers,
            memory=node.store,
            now_ms=node.now_ms,
        )
        # Retry jitter from the node's own randomness (seeded in simulations).
        jitter = random.Random(node.random_bytes(JITTER_SEED_BYTES))
        delivery = Delivery(node, host, rng=jitter, mailboxes=directory)
        blobs = BlobService(node, host)
        if on_delivery is not None:
            on_delivery(delivery)
        node.on_outbox = delivery.wake
        node.fetch_bundle = partial(fetch_bundle, host)
        node.send_now = delivery.send_now
        node.send_dialing = delivery.send_dialing
        node.connected_to = lambda peer: peer in host.connected_peers()
        node.dht_stats = partial(dht_stats_json, host)
        handles = HandleDirectory(host, node.peer_id)
        republish = _Republish()
        node.profiles.lookup = handles.claims

        def profile_changed() -> None:
            republish.now()
            handles.changed()

        node.profiles.on_change = profile_changed
        node.reachability = partial(reachability_json, host)
        host.relayed_addrs_of = partial(relayed_addrs_of, host)
        # A node found on the LAN may be our only DHT peer: it should hold our record.
        host.lan_peer_listeners.append(lambda peer: republish.now())
        # Peers met while joining the DHT learn that we speak p2pdm now.
        await host.announce_protocols()
        async with trio.open_nursery() as nursery:
            service = None
            if options.mailbox:
                # The mailbox server's code loads only in a node that offers one.
                from p2pdm.services.mailbox_server import MailboxService

                service = MailboxService(
                    node.store,
                    node.peer_id,
                    host,
                    now_ms=node.now_ms,
                    random_bytes=node.random_bytes,
                )
                await nursery.start(service.run)
            node.mailboxes = partial(mailboxes_json, directory, service, delivery.withdrawer)
            await nursery.start(node.batcher.run)
            await nursery.start(delivery.run)
            await nursery.start(partial(delivery.run_fetcher, first_delay=options.start_delay))
            await nursery.start(delivery.run_withdrawer)
            await nursery.start(blobs.run_fetcher)
            # At once: our record (where our mailboxes are, our prekeys), and
            # our contacts (they learn where we are now and send what waits).
            nursery.start_soon(_publish_records, node, host, directory, republish, publish_gate)
            nursery.start_soon(handles.provide, partial(_own_handle, node))
            if network is None:  # reachability is checked on TCP only
                keeper = RelayKeeper(host, options.relay_peers, changed=republish.now)
                nursery.start_soon(keeper.run)
            if options.relay is not None:
                nursery.start_soon(announce_relay, host)
            nursery.start_soon(greet_contacts, node, host)
            nursery.start_soon(_PeerWatch(node, host, delivery, blobs, options.upkeep).run)
            # Disappearing messages: what expired while we were off, then on a schedule.
            nursery.start_soon(purge_loop, node)
            # Messages to peers whose prekeys were not found yet: looked up again.
            nursery.start_soon(key_lookup_loop, node)
            nursery.start_soon(live_location_loop, node)  # shares end with their period
            # Shares that ran when the node stopped: their position source is gone.
            nursery.start_soon(_stop_orphaned_shares, node)
            task_status.started(Serving(node, host, delivery, directory, service, blobs))
            try:
                await trio.sleep_forever()
            finally:  # the host closes: lookups and republishing stop with it
                node.profiles.lookup = None
                node.profiles.on_change = lambda: None


async def run_node(
    home: Home,
    options: RunOptions,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,  # trio.TaskStatus[Running]
) -> None:
    """Run the node of ``home`` until cancelled; reports :class:`Running` once serving.

    Raises HomeError if another node runs from this home, IdentityError or
    PassphraseError if the identity cannot be unlocked, ConfigError for bad
    addresses or a taken port.
    """
    identity = home.load_identity()
    token = home.api_token()
    with home.lock(), closing(home.open_store()) as store:
        node = Node(identity, store)
        node.media.files = DirBlobFiles(home.path / BLOBS_DIR)
        node.media.sweep(startup=True)
        codes = LoginCodes(node.random_bytes)
        async with trio.open_nursery() as nursery:
            serving: Serving = await nursery.start(serve_node, node, options)
            bot_options = RunOptions(listen=DEMO_LISTEN, dht_mode="client")
            demo = Demo(
                home, node, nursery, partial(serve_node, options=bot_options), offered=options.demo
            )
            api = await nursery.start(
                partial(
                    serve_api,
                    node,
                    token,
                    *options.api,
                    login_codes=codes,
                    demo=demo,
                    home=home.path,
                )
            )
            if options.demo and demo.exists:
                nursery.start_soon(demo.start_quietly)  # the newcomer kept it: it runs again
            write_api_addr(home, *api)
            try:
                running = Running(node, serving.host, serving.delivery, api)
                log.info(
                    "node %s listening on %s; local API %s",
                    node.peer_id,
                    ", ".join(node.addrs),
                    running.api_url,
                )
                code, _ = codes.make(node.now_ms())
                log.info(
                    "open the web app: %s (this link works once, for 5 minutes; "
                    "`%s` makes another)",
                    login_url(api, code),
                    hints.command(home.path, "ui"),
                )
                task_status.started(running)
                await trio.sleep_forever()
            finally:
                with suppress(OSError):
                    api_addr_path(home).unlink()
