"""The limits shared across layers and those of the node and its API, with the reason
for each value.

Here: frame, CBOR, text and address caps that the wire format, the network
and the services share; the node's store and API limits (pages, events,
idempotency keys, tokens); message requests from strangers. Every other
limit lives in one place per layer, each with its reason:
:mod:`p2pdm.net.limits` (the libp2p host: dialling, connections, the DHT),
:mod:`p2pdm.services.limits` (direct delivery, the mailbox service and its
client), and the pure rules in :mod:`p2pdm.core` beside the code they bound
(``DM_WINDOW`` in ``core/dm.py``, the mailbox frames in ``core/mailbox.py``,
the replay and rate-limit tables). Values are in bytes, counts or seconds
unless named otherwise.
"""

from __future__ import annotations

# --- frames and decoding -------------------------------------------------

#: Largest data frame (an envelope) a peer may send. Big enough for a photo
#: or voice note chunk plus headers; small enough that a node never buffers
#: more than this per stream before it decides to refuse.
MAX_FRAME_BYTES = 1 << 20

#: Largest control frame (acks, challenges, mailbox requests). These carry
#: ids and signatures only.
MAX_CONTROL_FRAME_BYTES = 16 << 10

#: Deepest nesting accepted in any CBOR item. Our schemas nest at most four
#: levels; cbor2's own limit (400) is far above what we need.
MAX_CBOR_DEPTH = 16

#: Most data items (map entries count twice) in one CBOR document. Bounds the
#: Python objects a single frame can make us allocate.
MAX_CBOR_ITEMS = 20_000

#: Longest text message body, in UTF-8 bytes (a long DM, not a file).
MAX_TEXT_BYTES = 64 << 10

#: Most message ids one receipt may acknowledge.
MAX_RECEIPT_IDS = 256

#: Largest body of a message kind this version does not know. Such a body is
#: stored as received (so a later version can show it), so this also bounds
#: what one unsupported message keeps: room for any inline kind the design
#: names (an edit of a maximal text, a reaction, a location, a thumbnail),
#: and a stranger's pending requests (MAX_REQUEST_BYTES_PER_PEER) still hold one.
MAX_UNKNOWN_BODY_BYTES = 256 << 10

#: Extension fields a newer version may add to a known kind's body, in its
#: ``ext`` map (docs/protocol.md §6): at most this many fields, keys of at
#: most MAX_EXT_KEY_BYTES, the whole map at most MAX_EXT_BYTES of canonical
#: CBOR. Enough for a quote, mentions or formatting spans beside a text; a
#: maximal text with a maximal ext still fits a stranger's request budget.
MAX_EXT_FIELDS = 32
MAX_EXT_KEY_BYTES = 32
MAX_EXT_BYTES = 16 << 10

#: Largest display name, in UTF-8 bytes.
MAX_NAME_BYTES = 128

#: Most addresses in an invite or address record, and the longest one.
MAX_ADDRS = 16
MAX_ADDR_BYTES = 256

#: Largest invite string accepted from a user, in characters.
MAX_INVITE_CHARS = 8 << 10

# --- identity and sessions ---------------------------------------------

#: Skipped message keys kept per session for late or reordered messages
#: (Signal keeps 2000). Older ones are dropped first.
MAX_SKIPPED_MESSAGE_KEYS = 1000

#: Most message keys derived in one step to catch up a gap. A larger jump is
#: refused rather than spending CPU on a peer's say-so.
MAX_SKIP_PER_MESSAGE = 1000

#: How often the signed prekey is replaced (Signal rotates weekly-monthly).
SIGNED_PREKEY_ROTATION_SECONDS = 7 * 24 * 3600

#: How long a replaced signed prekey still accepts first messages, so
#: messages sent from an older bundle (cached invite, mailbox) still open.
SIGNED_PREKEY_GRACE_SECONDS = 14 * 24 * 3600

#: One-time prekeys kept on hand for bundles handed to a single reader.
ONE_TIME_PREKEYS_TARGET = 20
#: One-time prekeys in the bundles p2pdm publishes: none. An invite, like the
#: DHT record, may be read by several people, and the second first message
#: made with an already used one-time prekey could never be opened. Sessions
#: start with X3DH's signed prekey alone, which X3DH allows; the first
#: message's forward secrecy then rests on the weekly signed-prekey rotation.
ONE_TIME_PREKEYS_PER_BUNDLE = 0

#: Default lifetime of an invite.
INVITE_TTL_SECONDS = 30 * 24 * 3600

#: Allowed clock skew when checking expiries and timestamps from peers.
MAX_CLOCK_SKEW_SECONDS = 10 * 60

# --- store ---------------------------------------------------------------

#: Largest page of messages one query returns.
MAX_PAGE_SIZE = 500

#: How long accepted message ids are remembered for replay protection. Past
#: this, envelopes have expired anyway (see ENVELOPE_TTL_SECONDS).
SEEN_ID_RETENTION_SECONDS = 30 * 24 * 3600

#: Events kept in the event log for bots to catch up on (``/v1/events``).
#: About a busy day of chat; older ones are dropped first, and a client whose
#: cursor fell behind them is told so (``gap``).
MAX_STORED_EVENTS = 10_000

#: How long an idempotency key of ``POST /v1/messages`` is remembered, and
#: how many at most (oldest dropped first). A client retries within minutes;
#: Stripe keeps keys for a day.
IDEMPOTENCY_RETENTION_SECONDS = 24 * 3600
MAX_IDEMPOTENCY_KEYS = 10_000

#: Status history entries kept per message. Each delivery round may add a
#: note (a mailbox's refusal, why direct delivery failed) when it differs
#: from the last; past this, the newest note replaces the last entry and no
#: event is sent, so a message retried for two weeks stays a few rows.
MAX_STATUS_HISTORY = 24

#: Most named API tokens (a handful of bots; each is checked on every request).
MAX_API_TOKENS = 64

# --- delivery ------------------------------------------------------------

#: Default lifetime of an envelope: a mailbox keeps it at most this long.
ENVELOPE_TTL_SECONDS = 14 * 24 * 3600

# --- message requests (messages from peers who are not contacts) ---------
# Anyone who knows a PeerID can make a fresh identity and write to it, so
# what strangers may make a node store and process is bounded on its own,
# far below what contacts may (MAX_RATE_PER_PEER in services/limits.py: 2,000
# envelopes a second per peer). See docs/protocol.md §11.

#: Pending request messages kept per stranger, and their body bytes. A person
#: writing to someone new sends a few lines and waits to be accepted; 50
#: messages and 256 KiB (four maximal texts) is far more than that, and one
#: maximal text (MAX_TEXT_BYTES) always fits. Past either, the stranger's
#: oldest pending messages are dropped first.
MAX_REQUEST_MESSAGES_PER_PEER = 50
MAX_REQUEST_BYTES_PER_PEER = 256 << 10

#: Pending request messages kept from all strangers together, and their body
#: bytes: a full inbox of requests (20 strangers at their per-peer cap) in
#: 8 MiB, whatever number of identities an attacker makes. Past either, the
#: oldest pending request messages of anyone are dropped first.
MAX_REQUEST_MESSAGES = 1000
MAX_REQUEST_BYTES = 8 << 20

#: Envelopes a second one stranger may have accepted, and the burst above it
#: (a short first conversation goes through at once; a flood is refused with
#: ``retry`` and costs its sender the retries).
STRANGER_RATE_PER_PEER = 0.2
STRANGER_BURST_PER_PEER = 10.0

#: Envelopes a second all strangers together may have accepted, and the
#: burst: fresh identities cost nothing, so this bounds what any number of
#: them can make the node decrypt, verify and store (3 a second: 260,000 a
#: day, all held to the caps above).
STRANGER_RATE = 3.0
STRANGER_BURST = 60.0

#: Strangers whose rate is tracked at once (least recently seen forgotten
#: first); a forgotten one starts again at the per-peer burst, still under
#: the global bucket.
MAX_TRACKED_STRANGERS = 4096

#: Events about message requests (``contact.request``, ``message.received``
#: of a request, their status changes) kept apart from the main event log,
#: pruned on their own: strangers' traffic never pushes contacts' events out
#: of MAX_STORED_EVENTS. Enough to list every pending request twice over.
MAX_STORED_REQUEST_EVENTS = 2000

# --- blocking and message requests ------------------------------------------

#: Peers one node may block: far more than a person blocks, and a bound on
#: the table a hostile API client could grow.
MAX_BLOCKED_PEERS = 10_000

#: Request stamp difficulty (docs/protocol.md §17.2): 2**18 BLAKE2b hashes on
#: average, about 1.4 s of one core for the reference client on the
#: development machine (4 µs to check). A stranger pays it once a day per
#: recipient; a spammer pays it for every recipient it writes to.
REQUEST_STAMP_BITS = 18

#: Request stamps a node keeps made (one per recipient and day), least
#: recently used dropped first: a stamp is good for a day, so a person
#: writing to a few new people mints once for each.
MAX_CACHED_REQUEST_STAMPS = 256

#: Up to this difficulty (about 5 ms) a request stamp is minted in the event
#: loop; above it in a worker thread, so the node stays responsive.
REQUEST_INLINE_STAMP_BITS = 10

#: New message requests (a stranger's first message while it has none
#: pending) accepted an hour from all strangers together, and the burst
#: above it. Past it a stranger's first message is answered ``retry``: its
#: node tries later, at its own cost. 30 an hour is more than a person reads.
NEW_REQUESTS_PER_HOUR = 30
NEW_REQUESTS_BURST = 10

#: Characters of a request's first message shown in the requests list.
REQUEST_PREVIEW_CHARS = 120
