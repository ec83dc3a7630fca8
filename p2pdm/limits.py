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

# --- disappearing messages, search, typing ---------------------------------

#: The disappearing-message timers a conversation may have, in seconds: off,
#: 5 minutes, 1 hour, 1 day, 7 days (Signal's and WhatsApp's usual choices).
#: Only these travel on the wire: a peer's other value is refused, so both
#: sides always agree on what the setting means.
DISAPPEARING_TIMERS_S = (0, 300, 3_600, 86_400, 604_800)

#: How often the node looks for messages whose timer ran out, at the longest
#: (it wakes sooner for the next expiry it knows of; a message whose timer
#: starts meanwhile may outlive it by up to this much): short against the
#: shortest timer (5 minutes), long enough that an idle node does not wake needlessly.
EXPIRY_PURGE_INTERVAL_S = 15

#: Most messages one purge pass erases in one transaction; the pass repeats
#: until none is due, so a backlog (a node off for a week) never holds the
#: store for long.
MAX_EXPIRED_PER_PASS = 200

#: The sender's copy of a disappearing message is erased when its timer ran
#: after the recipient read it, but at the latest this long after the timer
#: ran from sending: a recipient with read receipts off never says it read
#: it, and the sender's copy must not stay for ever. As long as an envelope
#: lives (ENVELOPE_TTL_SECONDS), so an undelivered message is not erased
#: before it could have arrived.
SENDER_EXPIRY_BACKSTOP_S = ENVELOPE_TTL_SECONDS

#: Typing indicators: a conversation sends at most one typing signal per
#: TYPING_INTERVAL_S (and the receiver shows at most one per peer in that
#: time: the rest are accepted and dropped), and the peer shows "typing"
#: for TYPING_LAPSE_S after the last one, so a client typing without
#: pause sends again before it lapses. A signal that cannot be handed to
#: an open connection within TYPING_SEND_TIMEOUT_S is dropped, never queued.
TYPING_INTERVAL_S = 3
TYPING_LAPSE_S = 6
TYPING_SEND_TIMEOUT_S = 2

#: Longest search query, in characters (so at most 128 words, each one
#: term lookup in the index): a person's search, not a way to make the
#: full-text index do unbounded work.
MAX_SEARCH_QUERY_CHARS = 256

#: Most conversations pinned to the top of the list at once (as other
#: messengers allow a handful): pins mark what matters most, and a list that
#: is all pins has none.
MAX_PINNED_CONVERSATIONS = 5

#: Most search hits one request returns (its default: DEFAULT_SEARCH_HITS).
MAX_SEARCH_HITS = 100
DEFAULT_SEARCH_HITS = 20

# --- message actions (reactions, edits, unsend) -----------------------------

#: How long after sending a text its author may still edit it (milliseconds),
#: as Instagram allows: long enough to fix a typo, short enough that what was
#: read stays what was said.
EDIT_WINDOW_MS = 15 * 60 * 1000

#: Longest reaction, in UTF-8 bytes: one emoji, even a family or a flag with
#: modifiers (about 25 bytes at most), not a sentence.
MAX_REACTION_BYTES = 32

#: Actions (reactions, edits, unsends) held while the message they target has
#: not arrived yet (mailboxes reorder): per sender and in all. An unsend that
#: overtakes its message must still win, so it waits here; past the caps the
#: oldest held action is dropped and counted.
MAX_HELD_ACTIONS_PER_PEER = 256
MAX_HELD_ACTIONS = 4096

#: How long a held action waits for its target (milliseconds): the target's
#: envelope cannot arrive after its own expiry (ENVELOPE_TTL_SECONDS) plus the
#: clock skew allowed, so an action older than that can never apply.
HELD_ACTION_TTL_MS = (ENVELOPE_TTL_SECONDS + MAX_CLOCK_SKEW_SECONDS) * 1000

#: Characters of the quoted message shown with a reply.
REPLY_SNIPPET_CHARS = 120

# --- profiles and handles ------------------------------------------------

#: A handle is 3 to 30 of ``[a-z0-9._]`` after normalisation (docs/protocol.md
#: §13): long enough to be distinct, short enough to type and to show.
HANDLE_MIN_CHARS = 3
HANDLE_MAX_CHARS = 30

#: Longest handle a user may type before normalisation, in characters (a
#: handle in fullwidth forms or with a leading '@' and blanks still fits).
MAX_HANDLE_INPUT_CHARS = 64

#: Longest profile bio, in characters and in UTF-8 bytes: a line or two, like
#: a social profile's, not a page; the byte cap bounds what a record carries.
MAX_BIO_CHARS = 160
MAX_BIO_BYTES = 640

#: Largest avatar in a profile (WebP or JPEG, metadata stripped): a 256-pixel
#: picture fits, and a node record with one stays far under the DHT's
#: MAX_RECORD_BYTES (net/limits.py) and MAX_NODE_RECORD_BYTES below.
MAX_AVATAR_BYTES = 16 << 10

#: Largest picture the node makes an avatar from. Sent base64 in a JSON body,
#: it must fit the API's body cap (256 KiB, api/guard.py); the CLI shrinks a
#: larger photo on the user's machine before sending it.
MAX_AVATAR_INPUT_BYTES = 160 << 10

#: Most pixels of a picture the node decodes into an avatar (a 4000 x 4000
#: photo). Checked from the header before decoding: a small file can claim a
#: huge canvas (a 1-bit PNG of 100 million pixels is a few kilobytes) that
#: would take gigabytes to decode.
MAX_AVATAR_INPUT_PIXELS = 16_000_000

#: Largest signed node record (prekey bundle, mailboxes, addresses, relayed
#: addresses, profile). A record holds a bundle (< 1 KiB), up to MAX_ADDRS
#: mailbox addresses of MAX_ADDR_BYTES (4 KiB), as many other addresses
#: (4 KiB), up to 8 relayed addresses (core/records.py MAX_RELAY_ADDRS: 2 KiB)
#: and a profile (MAX_AVATAR_BYTES + name + bio + handle: under 17 KiB):
#: under 28 KiB.
#: The DHT holds values up to 64 KiB (net/limits.py MAX_RECORD_BYTES).
MAX_NODE_RECORD_BYTES = 32 << 10

#: Most claimants a handle lookup shows: the contacts and the longest seen
#: first. Claims are free, so a flood of fresh ones must not bury the
#: claimants a person has seen before.
MAX_HANDLE_CLAIMANTS = 10

#: Claims (handle, claimant, first seen) a node remembers; the least recently
#: seen are forgotten first. Bounds the store whatever lookups return.
MAX_HANDLE_SIGHTINGS = 4096
# --- blocking and message requests ------------------------------------------

#: Peers one node may block: far more than a person blocks, and a bound on
#: the table a hostile API client could grow.
MAX_BLOCKED_PEERS = 10_000

#: Request stamp difficulty (docs/protocol.md §18.2): 2**18 BLAKE2b hashes on
#: average, 0.15 to 0.3 s of one core for the reference client on the
#: development machine (4 µs to check). A stranger pays it once a day per
#: recipient; a spammer pays it for every recipient it writes to.
REQUEST_STAMP_BITS = 18

#: Request stamps a node keeps made (one per recipient and day), least
#: recently used dropped first: a stamp is good for a day, so a person
#: writing to a few new people mints once for each.
MAX_CACHED_REQUEST_STAMPS = 256

#: Peers whose "did this node write to them" answer a node keeps (both
#: answers), least recently used dropped first: read for every envelope from
#: a non-contact, so a flood of strangers costs the store one query each and
#: the cache no more than this.
MAX_CACHED_KNOWN_PEERS = 1024

#: New message requests (a stranger's first message while it has none
#: pending) accepted an hour from all strangers together, and the burst
#: above it. Past it a stranger's first message is answered ``retry``: its
#: node tries later, at its own cost. 30 an hour is more than a person reads.
NEW_REQUESTS_PER_HOUR = 30
NEW_REQUESTS_BURST = 10

#: Characters of a request's first message shown in the requests list.
REQUEST_PREVIEW_CHARS = 120

# --- media (docs/protocol.md §17) -----------------------------------------

#: Largest file one attachment may be: a long video clip or a big document;
#: beyond it a transfer ties two nodes up for minutes and a recipient's disk
#: fills from one message.
MAX_FILE_BYTES = 100 << 20

#: Most attachments one media message carries (an album of photos); with a
#: maximal thumbnail each the body stays far below a frame.
MAX_MEDIA_ITEMS = 10

#: Largest inline thumbnail: a small JPEG the conversation shows at once.
MAX_THUMBNAIL_BYTES = 8 << 10

#: Most levels in a voice note's waveform (one byte each).
MAX_WAVEFORM_LEVELS = 64

#: Longest MIME type, in bytes (RFC 6838 caps the two names at 127 each).
MAX_MIME_BYTES = 255

#: Longest file name, in UTF-8 bytes (what common file systems allow).
MAX_FILE_NAME_BYTES = 255

#: Longest label of a shared location.
MAX_LOCATION_LABEL_BYTES = 256

#: Largest pixel side a photo or video may claim (width and height).
MAX_MEDIA_SIDE = 65_535

#: Longest duration a voice note or video may claim: a day.
MAX_MEDIA_DURATION_MS = 24 * 3600 * 1000

#: Largest file pushed, chunk by chunk, through an offline recipient's
#: mailboxes with its message: 40 chunks, well inside a mailbox's 64 MiB
#: per-recipient quota (MAILBOX_MAX_BYTES_PER_RECIPIENT) with room for other
#: senders; a larger file waits until sender and recipient are online together.
MAILBOX_FILE_BYTES = 10 << 20

#: Live location: how long a share may run (15 minutes, an hour, 8 hours:
#: what people pick for "I'm on my way" and "follow me today"); the sender
#: picks one and the share ends by itself then.
LIVE_LOCATION_PERIODS_S = (15 * 60, 3600, 8 * 3600)
#: A sharer sends at most one update per peer this often (a walking pace is
#: a few metres a second: a map needs no more), and a receiver keeps at most
#: one per peer in half of it (the rest are acknowledged and dropped), so a
#: chatty peer cannot flood the event log. A stop is always sent.
LIVE_LOCATION_INTERVAL_S = 5
#: An update's envelope expires this soon: it is worth nothing later, and is
#: never queued, retried or deposited.
LIVE_LOCATION_ENVELOPE_TTL_S = 60
#: Clocks differ: an update may end this much later than the longest period
#: from the receiver's now (more is refused, so no share outlives its period).
LIVE_LOCATION_SKEW_S = 300
#: Live shares held in memory at once (own and peers'): far more than anyone
#: follows; the one ending soonest goes first past it.
MAX_LIVE_LOCATIONS = 256
#: Starting (or stopping) a share with a peer that is not connected yet (a
#: node that just started dials its contacts; the peer watch notices a
#: connection every couple of seconds) dials it and waits this long for the
#: update to be taken before saying it did not go: long enough for a dial
#: on a LAN or loopback, short enough for an API call.
LIVE_LOCATION_DIAL_S = 5

# --- groups (docs/protocol.md §19) ---

#: Most members of a group, its creator included: a message fans out as one
#: sealed envelope per member over the pairwise sessions, so one message to
#: a full group costs 31 encryptions, envelopes and (for offline members)
#: mailbox deposits.
MAX_GROUP_MEMBERS = 32

#: Most groups one node keeps (each folds its log when loaded; a person is
#: in a few dozen).
MAX_GROUPS = 1000

#: Longest group name, in UTF-8 bytes: a title, not text.
MAX_GROUP_NAME_BYTES = 128

#: Largest group photo, inline in its change: a small JPEG thumbnail every
#: member gets with the log, no file transfer.
MAX_GROUP_PHOTO_BYTES = 32 << 10

#: Largest uploaded picture the node makes a group photo from: a phone's
#: full-size JPEG. It is read whole to be decoded once (its pixels are capped
#: by MAX_AVATAR_INPUT_PIXELS before decoding).
MAX_GROUP_PHOTO_INPUT_BYTES = 16 << 20

#: Largest encoded change entry: a maximal photo plus its fields and signature.
MAX_GROUP_ENTRY_BYTES = 40 << 10

#: Most parents (heads) one change names: concurrent branches merge in one
#: change; more than this many concurrent heads never arise among 32 members
#: acting a few at a time, and each parent costs the fold a lookup.
MAX_GROUP_PARENTS = 16

#: Most changes in one group's log: the fold is re-run over the whole log on
#: every change (cheap at this size); a group that needs more is made anew.
MAX_GROUP_LOG = 1024

#: Changes held while their parents are missing, per group (oldest dropped).
MAX_HELD_GROUP_ENTRIES = 256

#: Held changes kept in the store over all groups (oldest dropped): 16 groups
#: with a full hold each; at MAX_GROUP_ENTRY_BYTES each at most 40 MiB, in
#: practice a few KiB (changes without a photo are ~200 bytes).
MAX_HELD_GROUP_ENTRIES_TOTAL = 4096

#: How long a held change waits for its parents: as long as the envelope
#: that could bring them may sit in a mailbox (ENVELOPE_TTL_SECONDS, 14
#: days); a change still held after that names parents nobody will send.
HELD_GROUP_ENTRY_TTL_MS = ENVELOPE_TTL_SECONDS * 1000

#: Most changes carried by one group_change message (the rest by asking again).
MAX_GROUP_ENTRIES_PER_MESSAGE = 64

#: One answer to a peer's "want" per group at most this often (seconds), so
#: a peer cannot make us resend the log in a loop.
GROUP_SYNC_INTERVAL_S = 10

#: Shortest start of a PeerID that names a request: every Ed25519 PeerID
#: begins "12D3KooW" (8 characters), so a few more are needed to tell apart.
MIN_PEER_PREFIX_CHARS = 12

#: Messages kept waiting for their recipient's prekey bundle (sent to a peer
#: added by PeerID before its record could be found in the DHT), over all
#: peers: each is a stored message with its plaintext and a row of
#: ``key_waits``; past this a send to an unfound peer is refused at once.
MAX_KEY_WAITS = 1000

#: How long a message waits for its recipient's prekey bundle before it
#: fails: as long as an envelope may wait for its recipient
#: (ENVELOPE_TTL_SECONDS, 14 days), the rule every undelivered message follows.
KEY_WAIT_TTL_MS = ENVELOPE_TTL_SECONDS * 1000
