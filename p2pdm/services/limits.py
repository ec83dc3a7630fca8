"""Every limit and timeout of the protocol services, with the reason for its value.

Direct delivery (:mod:`p2pdm.services.dm`), the mailbox service
(:mod:`p2pdm.services.mailbox_server`) and its client
(:mod:`p2pdm.services.mailbox_client`) take their limits from here; those
modules re-export the names they use, so either import works. Frame and
text caps shared with the wire format live in :mod:`p2pdm.limits`, the
network layer's in :mod:`p2pdm.net.limits`, the pure rules' beside them in
:mod:`p2pdm.core` (e.g. ``DM_WINDOW``, ``MAX_FETCH_ITEMS``).
"""

from __future__ import annotations

from typing import Final

from p2pdm.core.dm import DM_WINDOW
from p2pdm.limits import ENVELOPE_TTL_SECONDS, MAX_FRAME_BYTES

# --- direct delivery (/p2pdm/dm/1.0.0) ---------------------------------------

#: Sender tasks running at once (one per recipient); more recipients wait.
MAX_ACTIVE_SENDERS: Final = 32
#: Due outbox entries read per scheduler pass.
MAX_DUE_BATCH: Final = 512
#: Longest the scheduler sleeps without a wake-up (clock drift, missed events).
SCHEDULER_MAX_SLEEP: Final = 5.0
#: First retry delay and cap; doubled per attempt, with ±50 % jitter.
RETRY_BASE_SECONDS: Final = 1.0
RETRY_MAX_SECONDS: Final = 300.0
#: How long an idle outgoing stream is kept for more messages.
STREAM_IDLE_SECONDS: Final = 30.0
#: Deadlines for one frame on the wire and for an ack to come back.
WRITE_TIMEOUT: Final = 10.0
ACK_TIMEOUT: Final = 15.0
#: How long the ``sent`` mark of written envelopes waits for their ack, to be
#: committed with it (one commit, so one fsync, a burst instead of two); an
#: ack comes within milliseconds on a live connection. Past this the mark is
#: committed on its own, so a message whose ack is slow still shows ``sent``.
SENT_MARK_WAIT_SECONDS: Final = 1.0
#: Dialling a peer, and looking it up in the DHT when its addresses fail.
DIAL_TIMEOUT: Final = 5.0
FIND_PEER_TIMEOUT: Final = 10.0
#: A peer whose known addresses fail is looked up afresh in the DHT (it may
#: have moved: a new port, another network), at most once per this long: a
#: contact that moved is found again within it, while one that is simply
#: offline costs one DHT lookup per half minute, not one per retry.
PEER_LOOKUP_INTERVAL_SECONDS: Final = 30.0
#: Peers whose last lookup time is kept for that pacing (oldest forgotten first).
MAX_PACED_LOOKUPS: Final = MAX_ACTIVE_SENDERS * 4
#: A contact not reachable within this long is treated as offline: its
#: envelopes go to mailboxes while direct delivery keeps being retried.
REACH_TIMEOUT: Final = 8.0
#: Envelopes for one unreachable peer deposited in one go, oldest first:
#: everything queued for it, not just the window a sender tried, yet well
#: inside a mailbox's per-peer burst (MAILBOX_BURST_PER_PEER, 500).
MAX_DEPOSIT_BATCH: Final = 256
#: How often a node fetches from its mailboxes without being asked to.
FETCH_INTERVAL_SECONDS: Final = 300.0
#: Mailboxes fetched from at once.
MAX_CONCURRENT_FETCHES: Final = 4
#: A receiving stream with nothing on it for this long is closed.
RECEIVE_IDLE_SECONDS: Final = 120.0
#: Concurrent incoming dm streams one peer may hold.
MAX_STREAMS_PER_PEER: Final = 2
#: Sustained envelopes per second one peer may deliver, and the burst above it.
MAX_RATE_PER_PEER: Final = 2000.0
RATE_BURST_PER_PEER: Final = 4000.0
#: Per-peer rate buckets kept for peers with no open dm stream (least
#: recently used dropped first): four for every sender slot.
MAX_RATE_BUCKETS: Final = MAX_ACTIVE_SENDERS * 4
#: Deliver frames that arrived together and are committed together, at most.
MAX_COMMIT_GROUP: Final = DM_WINDOW
#: Worker threads opening received envelopes at once (sealed-box decryption,
#: off the event loop): one per core of a small machine; more would only
#: queue for the interpreter lock.
MAX_OPENING_THREADS: Final = 2
#: Fewest envelopes arriving together that are opened in a worker thread:
#: handing work to a thread and back costs about as much as opening a few
#: envelopes (~0.1 ms each), so smaller bursts are opened on the event loop.
MIN_THREADED_OPENING: Final = 8
#: Deliver frames due together are written in one write up to about this
#: many bytes (a larger envelope goes alone): one Yamux frame and one Noise
#: message (at most 65,535 bytes) for a burst of small ones instead of one
#: each, which is most of the per-frame cost on both sides.
COALESCED_WRITE_BYTES: Final = 60 << 10
#: Longest status note (mailbox refusals and errors of one round), in characters.
MAX_NOTE: Final = 500
#: Deliver frames carry an envelope plus a few bytes of framing.
DELIVER_FRAME_BYTES: Final = MAX_FRAME_BYTES + 64

# --- the mailbox service (/p2pdm/mailbox/1.0.0, serving) --------------------

#: How long a mailbox keeps an envelope at most: an envelope lives this long
#: by default anyway (ENVELOPE_TTL_SECONDS), so a longer hold is useless.
MAILBOX_RETENTION_SECONDS: Final = ENVELOPE_TTL_SECONDS
#: Largest envelope a mailbox takes. A text message (64 KiB) or an unknown
#: kind's body (256 KiB) sealed fits; bigger media must be chunked.
MAILBOX_MAX_ENVELOPE_BYTES: Final = 384 << 10
#: Per recipient: enough for two weeks of a busy chat; a flood aimed at one
#: recipient stops here instead of eating the whole mailbox.
MAILBOX_MAX_ENVELOPES_PER_RECIPIENT: Final = 2000
MAILBOX_MAX_BYTES_PER_RECIPIENT: Final = 64 << 20
#: The whole mailbox: what a volunteer node gives to others on disk.
MAILBOX_MAX_ENVELOPES: Final = 200_000
MAILBOX_MAX_BYTES: Final = 2 << 30
#: One depositor (PeerID) holds at most 1/8 of a recipient's quota (250
#: envelopes, 8 MiB): a busy sender's two weeks for an offline friend, while
#: a flooder needs 8 identities to fill the quota.
MAILBOX_DEPOSITOR_SHARE: Final = 8
#: Past half of a recipient's quota, every deposit for it needs a stamp: a
#: flooder's first identities get in free, the rest costs CPU per envelope.
MAILBOX_STAMP_FILL_PERCENT: Final = 50
#: Stamp difficulty: 2**16 BLAKE2b hashes on average, about 0.05 s of one
#: core for the reference client on the development machine. An honest
#: sender pays it once per envelope and mailbox, and only while that
#: recipient's quota is half used; filling the other half (1,000 envelopes)
#: costs a flooder about a minute of one core per recipient and mailbox.
MAILBOX_STAMP_BITS: Final = 16
#: Mailbox streams served at once, and per peer. Each may hold one request
#: frame of up to 1 MiB in memory, so this bounds the buffering to 64 MiB.
MAILBOX_MAX_STREAMS: Final = 64
MAILBOX_MAX_STREAMS_PER_PEER: Final = 2
#: Requests per second one peer may make, and the burst above it: a sender
#: flushing its outbox deposits a few hundred at once; a flood is cut off.
MAILBOX_RATE_PER_PEER: Final = 50.0
MAILBOX_BURST_PER_PEER: Final = 500.0
#: Deposits per second one depositor may make across all recipients, and the
#: burst above it: a whole outbox flush (MAX_DEPOSIT_BATCH, 256) goes in at
#: once; then 5 a second, which no person types. Over it: ``rate_limited``.
MAILBOX_DEPOSIT_RATE_PER_PEER: Final = 5.0
MAILBOX_DEPOSIT_BURST_PER_PEER: Final = 300.0
#: Per-peer buckets kept for peers with no open stream (oldest dropped).
MAILBOX_MAX_BUCKETS: Final = 1024
#: A stream with no request for this long is closed; a reply must be taken this fast.
MAILBOX_IDLE_SECONDS: Final = 30.0
MAILBOX_WRITE_TIMEOUT: Final = 10.0
#: Wrong challenge answers on one stream before the peer is disconnected.
MAILBOX_MAX_AUTH_FAILURES: Final = 3
#: How often expired envelopes are purged.
MAILBOX_PURGE_INTERVAL_SECONDS: Final = 600.0
#: How often the provider record is renewed: libp2p drops provider records
#: after 24 h, and nodes holding ours may leave; hourly repairs both soon.
MAILBOX_PROVIDE_INTERVAL_SECONDS: Final = 3600.0
#: Sooner retry when nobody took the provider record (still joining the DHT).
MAILBOX_PROVIDE_RETRY_SECONDS: Final = 60.0
#: Announcing fails as long as no other DHT node is there to take the record,
#: which is normal for the first node of a network: a failure is a warning only
#: once it has lasted this long (others had time to join) ...
MAILBOX_PROVIDE_WARN_SECONDS: Final = 15 * 60.0
#: ... over at least this many tries in a row (one slow try is not a failure).
MAILBOX_PROVIDE_WARN_FAILURES: Final = 3

# --- using mailboxes (depositing, fetching) -----------------------------------

#: Mailboxes each undelivered envelope is deposited at (R): two may vanish
#: and the message still gets through.
MAILBOX_COPIES: Final = 3
#: Mailboxes a recipient fetches from beyond its preferred ones: the R a
#: sender picks plus slack for senders that skipped a full or dead one.
MAILBOX_FETCH_FANOUT: Final = 2 * MAILBOX_COPIES
#: Candidates a sender tries per recipient before giving up for this round.
MAILBOX_MAX_CANDIDATES: Final = 12
#: Dialling a mailbox plus one request/reply.
MAILBOX_REQUEST_TIMEOUT: Final = 15.0
#: One DHT lookup (record or providers).
MAILBOX_LOOKUP_TIMEOUT: Final = 10.0
#: How long a recipient's record (the mailboxes it names) is reused.
MAILBOX_CACHE_SECONDS: Final = 300.0
#: How long a provider list of at least MAILBOX_COPIES mailboxes is used
#: before it is looked up again (for fetching ours and for deposits), unless
#: one of them fails first, which looks up at once. A list that old loses no
#: mail: a sender deposits at the MAILBOX_COPIES closest it knows, a
#: recipient fetches from the MAILBOX_FETCH_FANOUT closest it knows, so they
#: miss each other only when MAILBOX_COPIES mailboxes closer to the
#: recipient appeared since one of them looked (mailboxes that went away
#: fail and so are noticed). As a Session client keeps its swarm until a
#: node of it fails or redirects, and a Briar client its mailbox; an hour
#: bounds how long mail at MAILBOX_COPIES new closer mailboxes can wait.
MAILBOX_TRUST_SECONDS: Final = 3600.0
#: How long a provider list with fewer than MAILBOX_COPIES mailboxes is
#: reused: found while the network was forming (or mailboxes were away), it
#: would otherwise keep deposits below R for MAILBOX_TRUST_SECONDS.
MAILBOX_SHORT_CACHE_SECONDS: Final = 10.0
#: How long the mailbox providers a node found last (kept in its store across
#: restarts) are good enough for its start-up fetch without a new lookup. A
#: node returning after hours or days fetches from them at once, and looks
#: providers up only when it remembers none or one of them fails (senders
#: then deposit at the next closest, which it may not know); its later
#: rounds look up once the list is MAILBOX_TRUST_SECONDS old. A week:
#: mailbox nodes are long-lived, and a lookup follows any failure.
MAILBOX_REMEMBER_SECONDS: Final = 7 * 24 * 3600.0
#: Providers remembered: as many as one lookup returns (one k-bucket, the
#: host's MAX_PROVIDERS), each with at most MAX_ADDRS addresses.
MAILBOX_MAX_REMEMBERED: Final = 20
#: Recipients whose candidate lists are cached.
MAILBOX_MAX_CACHED_RECIPIENTS: Final = 256
#: Fetch pages read from one mailbox per round; the next round goes on.
MAILBOX_MAX_PAGES_PER_ROUND: Final = 64
#: Most stamp bits we mint when a mailbox asks (20 bits: ~5 s of a core);
#: a mailbox asking more is treated as refusing, not obeyed.
MAILBOX_MAX_STAMP_BITS: Final = 20
#: Stamps minted per deposit batch at one mailbox; the rest wait for the
#: next round, so a mailbox under attack costs us seconds, not minutes.
MAILBOX_MAX_STAMPS_PER_BATCH: Final = 8
#: Up to this difficulty (~5 ms) a stamp is minted in the event loop; above
#: it in a worker thread, so the node stays responsive.
MAILBOX_INLINE_STAMP_BITS: Final = 10

#: Withdraws (taking deposits back after an unsend) looked at per round: the
#: deposits of a few messages with their files' chunks.
MAX_WITHDRAW_BATCH: Final = 256
#: Tries per withdraw at one mailbox: best effort; past them the copy expires.
MAX_WITHDRAW_ATTEMPTS: Final = 5
#: The first pause before trying an unreachable mailbox's withdraw again,
#: doubled after each try (30 s, 1, 2, 4 min: about 8 min in all).
WITHDRAW_RETRY_SECONDS: Final = 30.0
#: How often pending withdraws are looked at when nothing wakes them.
WITHDRAW_INTERVAL_SECONDS: Final = 60.0

# --- handles (the directory) ------------------------------------------------

#: How often our handle's provider record is renewed: as the mailbox service's
#: (libp2p drops provider records after 24 h and holders leave; hourly
#: repairs both soon).
HANDLE_PROVIDE_INTERVAL_SECONDS: Final = 3600.0
#: Sooner retry when nobody took the provider record (still joining the DHT).
HANDLE_PROVIDE_RETRY_SECONDS: Final = 60.0
#: Finding a handle's providers, then fetching the claimants' records: each
#: phase at most this long, so a lookup answers within 16 s (DHT lookups take
#: 0.3 to 4.5 s here even in a 100-node network; a claimant whose record
#: takes longer is left out of this answer, not waited for).
HANDLE_LOOKUP_TIMEOUT: Final = 8.0
#: Claimants' records fetched at once: a lookup checks up to 30 claims
#: (MAX_PROVIDERS and the claimants seen before) without 30 lookups at once.
HANDLE_MAX_RECORD_FETCHES: Final = 8

# --- blobs (/p2pdm/blob/1.0.0) -------------------------------------------------

#: Blob streams one peer may hold open at once (transfers in parallel): a
#: few files of one album at once; more would only split the same link.
MAX_BLOB_STREAMS_PER_PEER: Final = 4
#: Blob streams open at once from everyone: bounds the tasks and buffers
#: (each holds at most one chunk) that fetchers can make us keep.
MAX_BLOB_STREAMS: Final = 64
#: Requests per second one peer may make (each asks for up to 16 chunks =
#: 4 MiB), and the burst above it: far above any real transfer's need (at
#: the per-peer cap below, 128 MiB/s, its fetches ask 32 times a second).
BLOB_REQUESTS_PER_SECOND: Final = 50.0
BLOB_REQUEST_BURST: Final = 100.0
#: Bytes per second served to one peer, over all its transfers, and how many
#: seconds' worth may go out in a burst. Serving costs the sender about 0.8 s
#: of CPU per 100 MiB (reading, Noise, Yamux), so 128 MiB/s keeps one greedy
#: peer to about one core while a file between two nodes on one machine is
#: not held back by the cap: one raw py-libp2p stream carries 90-180 MB/s
#: here, and 64 MiB/s (67 MB/s) alone kept a transfer under 0.6 of that
#: (docs/benchmarks.md). Links between machines are far slower than either.
BLOB_BYTES_PER_SECOND_PER_PEER: Final = 128 << 20
BLOB_BURST_SECONDS: Final = 0.5
#: Chunks a fetch has asked for and not yet checked and written: in flight
#: on the stream, in its buffers, or queued for the worker thread. The next
#: window (MAX_CHUNKS_PER_REQUEST = 16 chunks) is asked for as soon as it
#: fits, so the sender gets it while 16 chunks (4 MiB) are still on their
#: way or waiting: it never idles for a round trip. 32 x 256 KiB = 8 MiB
#: bounds a transfer's buffers over both nodes, whatever the file's size.
MAX_CHUNKS_AHEAD: Final = 32
#: Files fetched at once by this node (each from its sender).
MAX_CONCURRENT_BLOB_FETCHES: Final = 4
#: A chunk that fails its check is asked for again this many times before
#: the transfer is given up as failed (its sender serves a damaged copy).
MAX_CHUNK_RETRIES: Final = 3
#: Deadlines: a request's reply and each chunk frame; dialling the sender.
BLOB_READ_TIMEOUT: Final = 30.0
BLOB_DIAL_TIMEOUT: Final = 10.0
#: How long the fetcher sleeps without a wake-up (a sender back online, a
#: new blob wanted) before it tries the waiting transfers again.
BLOB_RETRY_SECONDS: Final = 30.0
#: Chunks of a fetch checked, hashed and written in one hand-off to a worker
#: thread: those that queued while it was busy (one store read, one write,
#: one thread hop for the run). Their credits (MAX_CHUNKS_AHEAD) come back
#: when the run is written: at half of them the next window is still asked
#: for while a run is written. (A progress event comes with each record of
#: the progress in the store: node.media.PROGRESS_COMMIT_MS and _CHUNKS.)
MAX_CHUNKS_PER_WRITE: Final = 16
#: How often blobs no message refers to any more (a dropped message request,
#: an expired upload) are swept while the node runs; start-up sweeps too.
BLOB_SWEEP_SECONDS: Final = 3600.0
