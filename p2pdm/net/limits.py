"""Every limit and timeout of the network layer, with the reason for its value.

Frame and address caps shared with the wire format live in :mod:`p2pdm.limits`;
these are the ones only the libp2p host needs. Figures quoted are loopback
measurements from NOTES-libp2p.md (py-libp2p 0.8.1, 2 cores).
"""

from __future__ import annotations

import logging
from typing import Final

from p2pdm.limits import MAX_FRAME_BYTES

# --- dialing and handshakes ----------------------------------------------

#: Longest wait for one connection (TCP + Noise + Yamux). A loopback connect
#: takes ~6 ms and a WAN one well under a second; past this the address is
#: dead for a user staring at "sending…", and the outbox retries later.
DIAL_TIMEOUT_SECONDS: Final = 5.0

#: Longest Noise + Yamux upgrade of one connection, either direction.
#: libp2p's 10 s default lets a stalling peer hold an inbound slot twice as long.
HANDSHAKE_TIMEOUT_SECONDS: Final = 5.0

#: Longest multistream-select negotiation of one stream. libp2p truncates
#: this to whole seconds, hence an int.
STREAM_NEGOTIATION_TIMEOUT_SECONDS: Final = 5

#: Longest :meth:`Host.open_stream`, dial included.
OPEN_STREAM_TIMEOUT_SECONDS: Final = DIAL_TIMEOUT_SECONDS + STREAM_NEGOTIATION_TIMEOUT_SECONDS

#: How long addresses handed to :meth:`Host.connect` stay in libp2p's
#: peerstore. p2pdm keeps its own address book (NOTES pitfall 8), so this
#: only needs to outlive one delivery attempt and its stream reopenings.
PEERSTORE_ADDR_TTL_SECONDS: Final = 10 * 60
#: How long addresses put in a simulated node's routing table from the
#: simulation's plan (:meth:`Host.seed_routing_table`) stay in its peerstore:
#: libp2p's own TTL for addresses a DHT lookup learns, which is what the
#: join those entries stand for would have learnt them by.
SEEDED_ADDR_TTL_SECONDS: Final = 60 * 60
#: Seeded addresses kept parsed, by text and peer (:meth:`Host.seed_routing_table`):
#: a simulation's joins seed ~40 peers each from the same addresses (one a
#: node; more than a simulation's largest node count, p2pdm.sim.options.MAX_NODES).
SEEDED_ADDRS_PARSED: Final = 4096

# --- connection budget ------------------------------------------------------

#: Hard cap on open connections. Each costs a socket, Noise state and a few
#: tasks; a messaging node talks to tens of contacts plus ~20 DHT neighbours.
MAX_CONNECTIONS: Final = 256

#: Above this many connections libp2p's pruner trims the oldest unprotected
#: ones (outside their 20 s grace period) down to the low watermark.
CONNECTIONS_HIGH_WATERMARK: Final = 192
CONNECTIONS_LOW_WATERMARK: Final = 128

#: Most inbound connections alive at once. Leaves room under MAX_CONNECTIONS
#: for our own dials, so a flood of inbound peers cannot stop us sending.
MAX_INBOUND_CONNECTIONS: Final = 192

#: A connection with no stream open for this long is closed. DHT lookups
#: leave connections behind (NOTES pitfall 11: 100 nodes drift to a full
#: mesh); an active conversation keeps its long-lived stream open and is
#: never idle; reopening costs ~6 ms.
IDLE_CONNECTION_TIMEOUT_SECONDS: Final = 120.0

#: Period of the host's maintenance loop (idle connections, bootstrap
#: reconnection, routing-table hygiene). Short enough that an idle connection
#: lives at most ~10 % past its timeout.
MAINTENANCE_INTERVAL_SECONDS: Final = 10.0

#: Our bounded stand-in for libp2p's auto-connector (which aims at the
#: midpoint of the watermarks and would dial ~160 peers): when fewer than this
#: many peers are connected, re-dial the configured bootstrap peers.
MIN_CONNECTED_PEERS: Final = 2

#: Least time between two rounds of bootstrap re-dialing, so a node that is
#: offline does not spin on dead addresses.
BOOTSTRAP_RETRY_INTERVAL_SECONDS: Final = 60.0

#: Most bootstrap addresses used (the same cap as addresses in an invite).
MAX_BOOTSTRAP_PEERS: Final = 16

# --- streams --------------------------------------------------------------

#: Most streams of one protocol handled at once; more are reset at once.
#: Bounds the tasks (and frame buffers) a peer can make us hold.
MAX_CONCURRENT_HANDLERS: Final = 64

#: Largest single read from a stream while a frame's length is not known:
#: Yamux's own frame payload cap, so one read never holds more than one
#: muxer frame beyond the frame being decoded. Once the length is known
#: (and within the reader's cap), a read asks for the rest of the frame:
#: py-libp2p's Yamux sends a window update for every read, so a 256 KiB
#: frame read in one or two reads costs a quarter of the updates.
READ_CHUNK_BYTES: Final = 64 << 10

#: Largest frame :meth:`Stream.write_frame` sends. Protocol frames wrap an
#: envelope of up to MAX_FRAME_BYTES in a few bytes of headers, and the
#: reader's cap is the real limit; this only stops a bug from queueing an
#: unbounded write.
MAX_WRITE_FRAME_BYTES: Final = 2 * MAX_FRAME_BYTES

#: Longest wait for a ping reply before the peer counts as unreachable.
PING_TIMEOUT_SECONDS: Final = 10.0

# --- shutdown -------------------------------------------------------------

#: Longest close of a dial-back connection (a socket and its Noise session),
#: shielded from a shutdown's cancellation so that the socket is never left
#: open: closing takes well under a millisecond on a live link.
DIAL_BACK_CLOSE_SECONDS: Final = 1.0

#: Longest shutdown of a host. Connections are closed concurrently; libp2p
#: spends ~0.2 s on each (two fixed 0.1 s sleeps), so this is ample.
SHUTDOWN_TIMEOUT_SECONDS: Final = 2.0

#: Longest :meth:`Host.announce_protocols`: one small identify push per
#: connected peer, concurrently; a peer that does not take it in time learns
#: our protocols at its next connection.
IDENTIFY_PUSH_TIMEOUT_SECONDS: Final = 5.0

# --- DHT ------------------------------------------------------------------

#: Period of our routing-table refresh. The Kademlia spec's default is 10
#: min; p2pdm nodes are laptops and phones that come and go, and peer routing
#: is how a contact's new address is found, so refresh twice as often.
DHT_REFRESH_INTERVAL_SECONDS: Final = 5 * 60.0

#: Longest one routing-table refresh may take (100 nodes: lookups 4.5 s median).
DHT_REFRESH_TIMEOUT_SECONDS: Final = 60.0

#: Longest wait, after connecting to a bootstrap peer, for it to fetch our
#: identify (two round trips after the handshake). Past it we look ourselves
#: up anyway; the peer then learns of us at our next refresh.
IDENTIFY_WAIT_SECONDS: Final = 5.0

#: Longest wait for the lookup of our own ID after joining through bootstrap peers.
JOIN_LOOKUP_TIMEOUT_SECONDS: Final = 10.0

#: Longest life of one inbound DHT stream; then it is reset. libp2p's server
#: serves at most 12 DHT streams at once and resets every stream beyond them,
#: and its handler waits for the next request with no deadline: streams that
#: queriers gave up on (a lookup cancelled at its own deadline) held all 12
#: slots for 8 to 40 s in a 20-node churn simulation, so every newcomer's (and
#: restarted node's) join lookup was refused. libp2p's own queriers wait at
#: most 10 s for an answer (its QUERY_TIMEOUT), so no one waits longer on one.
DHT_INBOUND_STREAM_SECONDS: Final = 10.0

#: Longest :meth:`Host.put_record`; the record is stored locally first, so a
#: slow network only delays replication.
RECORD_PUT_TIMEOUT_SECONDS: Final = 30.0

#: Valid copies of a record to collect before choosing the newest. One is
#: not enough: a single stale holder would win (NOTES: quorum 3 returned the
#: new value, median 137 ms).
RECORD_QUORUM: Final = 3

#: Peers asked at once during a record lookup (Kademlia's alpha: the libp2p
#: spec's 10; the paper's 3 takes more round trips, and each may be a dial
#: of ~0.65 s: 60 peers at 3 a time would not fit a 10 s lookup).
RECORD_LOOKUP_CONCURRENCY: Final = 10

#: A record lookup ends once this many of the closest peers it heard of have
#: answered (Kademlia's k, the replication of a put), if the quorum was not
#: reached before.
RECORD_LOOKUP_CLOSEST: Final = 20

#: If none of those held it, the lookup goes on until this many of the
#: closest have answered: a record put while the network was smaller sits on
#: what were then the closest peers (the 20 closest of a network a third of
#: today's size rank up to ~60th now), and peers that restarted lost the
#: copies they held. Only lookups that find nothing pay for it.
RECORD_LOOKUP_WIDEST: Final = 60

#: A record lookup from a routing table with fewer peers than this also asks
#: the connected peers and those with known addresses (libp2p's threshold).
RECORD_LOOKUP_MIN_TABLE: Final = 5

#: How long the addresses of the closer peers a record lookup is told of stay
#: in the peerstore (libp2p's own figure for them): long enough to dial them
#: during this lookup and its correction.
CLOSER_PEER_ADDR_TTL_SECONDS: Final = 600

#: Longest wait for one peer's answer during a record lookup; a peer that
#: does not answer in time counts as failed and the lookup moves on.
RECORD_QUERY_TIMEOUT_SECONDS: Final = 5.0

#: Longest a lookup's entry correction (the newest record, put to the
#: closest peers that answered without it) runs in the background.
RECORD_CORRECTION_TIMEOUT_SECONDS: Final = 30.0

#: A peer that looks itself up through us (a join, or a rejoin after a
#: restart with an empty record store) is handed the records we hold for
#: which it is among this many of the closest peers we know of: Kademlia's
#: k, the replication of a put (:mod:`p2pdm.net._handoff`).
RECORD_HANDOFF_CLOSEST: Final = RECORD_LOOKUP_CLOSEST

#: Most records handed to one peer at a time: below the receiver's
#: DHT_WRITE_BURST, so its DHT guard takes them all. A node holds ~20
#: records for others on average; those nearest the joiner go first.
RECORD_HANDOFF_MAX_RECORDS: Final = 16

#: Records examined for one handoff (those whose keys are nearest the
#: joiner), however many we hold: bounds the work one query can cause.
RECORD_HANDOFF_SCAN: Final = 4 * RECORD_HANDOFF_MAX_RECORDS

#: A peer is handed records at most once in this long: a restarted node is
#: away for longer, and a peer asking about itself in a loop costs us one
#: handoff per interval.
RECORD_HANDOFF_PEER_INTERVAL_SECONDS: Final = 60.0

#: Peers whose last handoff is remembered (least recent forgotten first).
RECORD_HANDOFF_PEERS_REMEMBERED: Final = 4096

#: Handoffs running at once; a joiner seen while this many run gets none from
#: us (the other holders it asked still hand it theirs).
RECORD_HANDOFF_CONCURRENCY: Final = 4

#: Longest one handoff (its PUTs, one after another) may take.
RECORD_HANDOFF_TIMEOUT_SECONDS: Final = 30.0

#: Largest DHT record accepted into a p2pdm namespace. A node record holds a
#: prekey bundle, mailbox and other addresses, maybe a profile with a 16 KiB
#: avatar, and a signature: at most 32 KiB (MAX_NODE_RECORD_BYTES in
#: p2pdm/limits.py), so this leaves room for a later field.
MAX_RECORD_BYTES: Final = 64 << 10

#: Longest record key, in UTF-8 bytes ("/<namespace>/" + a PeerID and a tag).
MAX_RECORD_KEY_BYTES: Final = 256

#: Longest provider key: the DHT's ADD_PROVIDER handler refuses longer ones.
MAX_PROVIDER_KEY_BYTES: Final = 80

#: Most providers returned by one :meth:`Host.find_providers` (one k-bucket).
MAX_PROVIDERS: Final = 20

# --- DHT writes from other peers --------------------------------------------
# libp2p's KadDHT stores whatever valid record any peer sends, up to 50,000,
# then evicts the oldest with a full scan (70 ms each): one peer flooding
# fresh self-signed records (measured: 363 records/s, +21 MiB for 3,640)
# pushed genuine records out. These bound what a peer can make us hold.

#: Sustained inbound PUT_VALUE + ADD_PROVIDER messages per second from one
#: peer. A p2pdm node republishes its record every 6 h, a mailbox its
#: provider record daily, and a reader corrects a few stale holders per
#: lookup: well under one a second. More is refused (the stream is reset).
DHT_WRITE_RATE_PER_SECOND: Final = 1.0

#: Writes one peer may send at once before the rate applies: a node that
#: joins, rotates its prekey and looks up a few contacts in a minute.
DHT_WRITE_BURST: Final = 20

#: Peers whose write rate is remembered. The least recently seen is forgotten
#: first; its bucket had refilled after DHT_WRITE_BURST / rate seconds unless
#: thousands of peers wrote within that time, and the store caps below still
#: hold then.
DHT_RATE_TABLE_PEERS: Final = 4096

#: Value records held for other peers. Kademlia places each record on the
#: ~20 nodes closest to its key, so a node holds ~20 records on average
#: whatever the network's size; this is 200 times that.
MAX_DHT_RECORDS: Final = 4096

#: Bytes of value records held for other peers. A p2pdm record is about a
#: kilobyte, up to 32 KiB with a profile's avatar: room for 1024 records that
#: size, 50 times the ~20 a node holds on average.
MAX_DHT_RECORD_STORE_BYTES: Final = 32 << 20

#: Records one peer may have stored here: its own record plus the copies it
#: pushes to stale holders when it reads others' records.
MAX_DHT_RECORDS_PER_PEER: Final = 64

#: Bytes of records one peer may have stored here (64 records of 32 KiB:
#: records with profiles are that large).
MAX_DHT_RECORD_BYTES_PER_PEER: Final = 2 << 20

#: Provider records held (key, provider) for other peers. p2pdm provides at
#: most two keys (the mailbox service, its handle); a libp2p peer a few.
MAX_DHT_PROVIDER_RECORDS: Final = 8192

#: Bytes of provider records held (key and addresses).
MAX_DHT_PROVIDER_STORE_BYTES: Final = 4 << 20

#: Keys one peer may be stored as a provider of.
MAX_DHT_PROVIDER_KEYS_PER_PEER: Final = 32

#: Bytes of provider records of one peer (32 keys with 16 addresses each).
MAX_DHT_PROVIDER_BYTES_PER_PEER: Final = 64 << 10

#: Most distinct peers named in one aggregate log line about refused writes.
MAX_DHT_REFUSED_PEERS_COUNTED: Final = 1000

# --- logging --------------------------------------------------------------

#: Level of the ``libp2p`` logger unless LIBP2P_DEBUG is set: py-libp2p logs
#: ordinary disconnects at ERROR (NOTES pitfall 13), so only CRITICAL passes.
LIBP2P_LOG_LEVEL: Final = logging.CRITICAL

# --- reachability (AutoNAT v1) -------------------------------------------------

#: Peers asked to dial us back in one reachability check: a few more than
#: the confirmations needed (core/reachability.py), as some refuse or are slow.
AUTONAT_PEERS_ASKED: Final = 4

#: Longest wait for one peer's dial-back verdict: its dial (DIAL_TIMEOUT_SECONDS
#: per address, at most AUTONAT_MAX_DIAL_ADDRS of them, tried concurrently)
#: plus the round trip.
AUTONAT_QUERY_TIMEOUT_SECONDS: Final = DIAL_TIMEOUT_SECONDS + 5.0

#: Addresses a serving node dials back for one request: all must be on the
#: requester's own observed IP, so this only bounds the work per request.
AUTONAT_MAX_DIAL_ADDRS: Final = 4

#: Dial-back requests served at once: each costs up to AUTONAT_MAX_DIAL_ADDRS
#: dials; more are reset (the asker asks someone else).
AUTONAT_MAX_CONCURRENT_DIALBACKS: Final = 8

#: An AutoNAT request or response: a PeerID and a few addresses (libp2p's
#: own cap is 64 KiB; ours needs no more than this).
AUTONAT_MAX_MESSAGE_BYTES: Final = 4096

#: First reachability check after start-up: once joining has connected us to
#: a few peers that can answer.
REACHABILITY_FIRST_CHECK_SECONDS: Final = 2.0

#: Checks while the verdict is unknown (too few peers yet, or they disagree).
REACHABILITY_RETRY_SECONDS: Final = 30.0

#: Checks while too few peers were there to ask (the first node of a
#: network, just started): asking nobody costs nothing, and peers arrive soon.
REACHABILITY_FEW_PEERS_RETRY_SECONDS: Final = 5.0

#: Checks once known: networks change (a laptop moves from a café to home).
REACHABILITY_RECHECK_SECONDS: Final = 10 * 60.0

# --- circuit relay v2 (a relay's limits; see docs/operating.md) ------------------

#: Reservations a relay holds at once: each is one node behind NAT that can
#: be reached through it. 128 such nodes cost a small server little (a
#: reservation is a table entry; only circuits carry bytes).
RELAY_MAX_RESERVATIONS: Final = 128

#: How long a reservation lasts unless renewed (clients renew at half-life).
RELAY_RESERVATION_SECONDS: Final = 60 * 60

#: Circuits open at once to one reserving node (its contacts reaching it).
RELAY_MAX_CIRCUITS_PER_PEER: Final = 8

#: Circuits open at once from one dialing node: one node cannot take every
#: circuit slot of the relay.
RELAY_MAX_CIRCUITS_FROM_PEER: Final = 8

#: Circuits open at once on the relay in all.
RELAY_MAX_CIRCUITS: Final = 256

#: Longest life of one circuit: long enough for a conversation and hole
#: punching (which then moves the conversation off the relay), short enough
#: that the relay is not a free tunnel. The node re-dials when it ends.
RELAY_CIRCUIT_SECONDS: Final = 10 * 60

#: Bytes one circuit may carry (both directions together): thousands of
#: text messages, but no media streaming through a volunteer's server.
RELAY_CIRCUIT_BYTES: Final = 4 << 20

#: Bytes read from one side of a circuit at a time.
RELAY_COPY_CHUNK_BYTES: Final = 16 << 10

#: Longest wait for a relay's answer to a reservation or connect request.
RELAY_REQUEST_TIMEOUT_SECONDS: Final = 10.0

# --- a node behind NAT using relays ------------------------------------------

#: Relays a private node keeps reservations on: two, so one relay going
#: away does not make the node unreachable until the next check.
RELAYS_KEPT: Final = 2

#: Relayed addresses published per relay (its public ones, loopback only if
#: it has nothing else): enough for one IPv4 and one IPv6 address.
MAX_CIRCUIT_ADDRS_PER_RELAY: Final = 2

#: How often the node checks its reservations (renews, replaces lost relays).
RELAY_CHECK_SECONDS: Final = 30.0

#: A reservation is renewed when it has less than this left.
RELAY_RENEW_MARGIN_SECONDS: Final = RELAY_RESERVATION_SECONDS / 2

#: A relay that refused or failed is not asked again for this long.
RELAY_RETRY_SECONDS: Final = 5 * 60.0

#: How often a relay re-announces itself under the relay key in the DHT.
RELAY_PROVIDE_SECONDS: Final = 30 * 60.0

#: Relays looked at from one provider lookup.
MAX_RELAY_CANDIDATES: Final = 16

#: A dial that has relayed addresses gives the direct ones this long first
#: (a private address of another network can blackhole the whole budget).
DIRECT_BEFORE_RELAY_SECONDS: Final = 2.0

# --- LAN discovery (mDNS) ---------------------------------------------------------

#: The mDNS service p2pdm nodes announce (libp2p's mDNS spec, with a private
#: network name): only p2pdm nodes answer, not every libp2p node on the LAN.
MDNS_NETWORK_NAME: Final = "p2pdm"

#: Peers found on the LAN that the node dials and remembers at most: a home
#: or office network has a handful; a conference Wi-Fi must not make the
#: node dial hundreds.
MAX_MDNS_PEERS: Final = 32

#: How long a LAN address found by mDNS stays valid without being heard again.
MDNS_ADDR_TTL_SECONDS: Final = 120

#: Discoveries waiting to be handled (they arrive on zeroconf's thread).
MDNS_QUEUE: Final = 64
#: Signed peer records (libp2p's envelopes) a host keeps verified, by their
#: bytes: every DHT message carries its sender's, the same bytes each time (a
#: node signs one and reuses it), and verifying it again costs an Ed25519
#: check and a parse per message. A host talks to about a routing table's
#: worth of peers at a time; beyond this many the least recent are verified
#: again when next seen. ~1.4 KB each (90 KB a host).
VERIFIED_PEER_RECORDS: Final = 64
