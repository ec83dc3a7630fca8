"""The SQLite schema of the message store, as numbered migrations.

How this works: ``MIGRATIONS[n - 1]`` takes a store from schema version
``n - 1`` to ``n``: an SQL script, or a function given the connection for
a rewrite SQL alone cannot do. A function that removed secrets returns
True: once every migration is done the file is then rebuilt (``VACUUM``)
and its write-ahead log emptied, so the old bytes leave the file and the
log instead of lingering in free pages. Each migration runs in its own
``BEGIN IMMEDIATE`` transaction together with the row that records it in
``schema_version``, so a crash mid-migration leaves the previous version
intact. A script, once released, never changes: new needs get a new
migration appended to the list. A store whose recorded version is newer
than this code knows is refused, never downgraded.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import Final

from p2pdm.core.prekeys import strip_identity_secret
from p2pdm.errors import SessionError, StoreError
from p2pdm.store.cipher import db_errors
from p2pdm.store.schema_lean import MIGRATION_EVENT_INDEXES, migration_search_external

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version", "split_statements"]

#: The SQL condition selecting unread incoming messages. It must match the
#: ``WHERE`` of the ``messages_unread`` partial index word for word, or
#: SQLite will not use that index; ``base.UNREAD_STATUSES`` holds the same set.
UNREAD_CONDITION: Final = (
    "direction = 'in' AND status IN ('queued', 'sent', 'deposited', 'delivered')"
)

_MIGRATION_1: Final = """
CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY,
    applied_at_ms INTEGER NOT NULL
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL -- JSON
);

CREATE TABLE contacts (
    peer_id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL, -- NFKC + casefold of name, for case-insensitive lookup
    added_at_ms INTEGER NOT NULL,
    bundle BLOB,
    addrs TEXT NOT NULL DEFAULT '[]', -- JSON list of multiaddr strings, newest first
    last_seen_ms INTEGER,
    verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    blocked INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1))
);
CREATE INDEX contacts_by_name ON contacts (name_key, added_at_ms, peer_id);

CREATE TABLE conversations (
    id BLOB PRIMARY KEY,
    peer BLOB NOT NULL,
    last_message_at_ms INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, -- seq of the newest message, to order equal times
    unread INTEGER NOT NULL DEFAULT 0 CHECK (unread >= 0),
    request INTEGER NOT NULL DEFAULT 0 CHECK (request IN (0, 1))
);
CREATE INDEX conversations_by_recency ON conversations (last_message_at_ms DESC, last_seq DESC);
CREATE INDEX conversations_by_peer ON conversations (peer);

CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, -- the paging cursor; never reused
    id BLOB NOT NULL UNIQUE,
    conversation_id BLOB NOT NULL REFERENCES conversations (id),
    peer BLOB NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    sent_at_ms INTEGER NOT NULL,
    stored_at_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    request INTEGER NOT NULL DEFAULT 0 CHECK (request IN (0, 1))
);
-- "The last N messages of a conversation, newest first, with seq < before."
CREATE INDEX messages_by_conversation ON messages (conversation_id, seq);
CREATE INDEX messages_unread ON messages (conversation_id)
    WHERE direction = 'in' AND status IN ('queued', 'sent', 'deposited', 'delivered');
CREATE INDEX messages_requests ON messages (peer) WHERE request = 1;

CREATE TABLE status_history (
    n INTEGER PRIMARY KEY,
    message_id BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX status_history_by_message ON status_history (message_id, n);

-- Replay protection: ids of accepted messages, forgotten after a retention time.
CREATE TABLE seen_ids (
    id BLOB PRIMARY KEY,
    seen_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_ids_by_time ON seen_ids (seen_at_ms);

CREATE TABLE sessions (
    peer BLOB PRIMARY KEY,
    state BLOB NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE prekeys (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    state BLOB NOT NULL
);

CREATE TABLE outbox (
    envelope_id BLOB PRIMARY KEY,
    message_id BLOB NOT NULL,
    recipient BLOB NOT NULL,
    envelope BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    next_attempt_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_by_next_attempt ON outbox (next_attempt_at_ms, created_at_ms, envelope_id);
CREATE INDEX outbox_by_recipient ON outbox (recipient, created_at_ms, envelope_id);
"""

#: Store-and-forward (issue 4). ``mailbox``: envelopes this node holds as a
#: mailbox for others (recipient, size and times only: envelopes carry no
#: sender); ``seq`` is the fetch cursor, ``digest`` (SHA-256 of the envelope)
#: makes a repeated deposit a no-op without trusting sender-chosen ids.
#: ``deposits``: which mailboxes hold our own outgoing envelopes, until when.
_MIGRATION_MAILBOX: Final = """
CREATE TABLE mailbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient BLOB NOT NULL,
    envelope_id BLOB NOT NULL,
    digest BLOB NOT NULL,
    envelope BLOB NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    deposited_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    UNIQUE (recipient, digest)
);
CREATE INDEX mailbox_by_recipient ON mailbox (recipient, seq);
CREATE INDEX mailbox_by_expiry ON mailbox (expires_at_ms);

CREATE TABLE deposits (
    envelope_id BLOB NOT NULL,
    mailbox BLOB NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (envelope_id, mailbox)
) WITHOUT ROWID;
"""

#: The local API for bots: the event log, idempotency keys of sends, named tokens.
_MIGRATION_API: Final = """
-- Events for /v1/events, written in the same transaction as the change they
-- report; ids increase and are never reused (AUTOINCREMENT), so they are
-- the cursor a bot resumes from. Trimmed to the newest MAX_STORED_EVENTS.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    peer BLOB,
    message_id BLOB,
    status TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_by_peer ON events (peer, id);

-- POST /v1/messages with an idempotency_key: the message the key made.
CREATE TABLE idempotency_keys (
    n INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order, for the count cap
    scope TEXT NOT NULL, -- the token's name: two bots' keys never collide
    key TEXT NOT NULL,
    message_id BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (scope, key)
);
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at_ms);

-- Named API tokens; only the SHA-256 of each secret is kept.
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'send', 'admin')),
    contacts TEXT NOT NULL DEFAULT '[]', -- JSON list of PeerIDs; empty: all
    created_at_ms INTEGER NOT NULL
);
"""

#: Contact names a contact gave itself (in its invite) are shown with its
#: fingerprint. Contacts added before this was recorded count as such: showing
#: a fingerprint the user did not need is harmless, hiding one is not.
_MIGRATION_NAME_ORIGIN: Final = """
ALTER TABLE contacts ADD COLUMN name_from_invite INTEGER NOT NULL DEFAULT 1
    CHECK (name_from_invite IN (0, 1));
"""

#: Message requests are bounded: their events are kept apart from the main
#: event log (``request`` = 1, pruned on their own by ``lane_seq``, the
#: position within their part of the log), and ``counters`` remembers what
#: retention pruned (the highest event id of each part, for ``gap``) and how
#: many pending request messages were dropped over the caps.
_MIGRATION_REQUEST_CAPS: Final = """
ALTER TABLE events ADD COLUMN request INTEGER NOT NULL DEFAULT 0 CHECK (request IN (0, 1));
ALTER TABLE events ADD COLUMN lane_seq INTEGER NOT NULL DEFAULT 0;
UPDATE events SET request = 1 WHERE type = 'contact.request'
    OR message_id IN (SELECT id FROM messages WHERE request = 1);
UPDATE events SET lane_seq = id;
CREATE INDEX events_by_lane ON events (request, lane_seq);

CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) SELECT 'events_pruned',
    coalesce((SELECT min(id) - 1 FROM events),
             (SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0);
INSERT INTO counters (name, value) SELECT 'events_lane_seq', coalesce(max(id), 0) FROM events;
INSERT INTO counters (name, value)
    SELECT 'request_events_lane_seq', coalesce(max(id), 0) FROM events;
INSERT INTO counters (name, value) VALUES ('request_events_pruned', 0);
INSERT INTO counters (name, value) VALUES ('requests_dropped', 0);
INSERT INTO counters (name, value) VALUES ('requests_dropped_bytes', 0);
"""


def _migration_forget_identity_secret(db: sqlite3.Connection) -> bool:
    """Own prekeys saved before the identity seed was kept out of the store lose it.

    The seed lives only in the identity file, which a passphrase encrypts; a
    copy of the store (a backup, a ``replaced-*`` folder) must not give it away.
    """
    row = db.execute("SELECT state FROM prekeys WHERE only_row = 1").fetchone()
    if row is None:
        return False
    try:
        stripped = strip_identity_secret(bytes(row[0]))
    except SessionError as exc:
        raise StoreError(f"cannot migrate the store's own prekeys: {exc}") from None
    if stripped == bytes(row[0]):
        return False
    db.execute("UPDATE prekeys SET state = ? WHERE only_row = 1", (stripped,))
    return True


#: Fair mailbox quotas: who deposited an envelope, as a tag keyed by a secret
#: the running mailbox keeps in memory only (a copy of the store does not tell
#: who sent to whom). Rows from before carry the empty tag.
_MIGRATION_DEPOSITOR: Final = """
ALTER TABLE mailbox ADD COLUMN depositor BLOB NOT NULL DEFAULT x'';
CREATE INDEX mailbox_by_depositor ON mailbox (recipient, depositor);
"""

#: Conversations keyed by id, delivery state per recipient. ``message_recipients``
#: holds, for every outgoing message, each recipient's status (one row for a
#: one-to-one message; a message's own status is the least advanced of its
#: rows); rows for messages sent before are made from their current status.
#: Events about a message carry its conversation.
_MIGRATION_RECIPIENTS: Final = """
CREATE TABLE message_recipients (
    message_id BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    peer BLOB NOT NULL,
    status TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, peer)
) WITHOUT ROWID;
INSERT INTO message_recipients (message_id, peer, status, at_ms, detail)
    SELECT m.id, m.peer, m.status,
        coalesce((SELECT max(h.at_ms) FROM status_history h
                  WHERE h.message_id = m.id AND h.status = m.status), m.stored_at_ms),
        coalesce((SELECT h.detail FROM status_history h
                  WHERE h.message_id = m.id AND h.status = m.status ORDER BY h.n LIMIT 1), '')
    FROM messages m WHERE m.direction = 'out';
ALTER TABLE events ADD COLUMN conversation_id BLOB;
UPDATE events SET conversation_id =
    (SELECT conversation_id FROM messages WHERE messages.id = events.message_id)
    WHERE message_id IS NOT NULL;
"""

#: Message actions (docs/protocol.md §6.3 to §6.6): an edit's time, the unsent
#: mark, one reaction per person per message (an empty emoji is a reaction
#: taken back, kept so an older one arriving late cannot return), actions
#: held until their target arrives, and the count of refused ones.
_MIGRATION_ACTIONS: Final = """
ALTER TABLE messages ADD COLUMN edited_at_ms INTEGER;
ALTER TABLE messages ADD COLUMN unsent INTEGER NOT NULL DEFAULT 0 CHECK (unsent IN (0, 1));

CREATE TABLE reactions (
    message_id BLOB NOT NULL,
    peer BLOB NOT NULL,
    emoji TEXT NOT NULL, -- '' once taken back
    at_ms INTEGER NOT NULL, -- the reacting peer's signed time: the newer wins
    PRIMARY KEY (message_id, peer)
) WITHOUT ROWID;

CREATE TABLE held_actions (
    n INTEGER PRIMARY KEY AUTOINCREMENT, -- arrival order: the oldest go first
    id BLOB NOT NULL UNIQUE,
    target BLOB NOT NULL,
    sender BLOB NOT NULL,
    conversation_id BLOB NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL, -- canonical CBOR of the action's body
    sent_at_ms INTEGER NOT NULL,
    held_at_ms INTEGER NOT NULL
);
CREATE INDEX held_actions_by_target ON held_actions (target);
CREATE INDEX held_actions_by_sender ON held_actions (sender, n);

INSERT INTO counters (name, value) VALUES ('actions_refused', 0);
INSERT INTO counters (name, value) VALUES ('held_actions_dropped', 0);
"""

#: The profile this node publishes (one row, or none: opt-in), and the handle
#: claims lookups have seen, each with when it was first seen (kept locally:
#: how long a claim has stood is what a lookup can rank by).
_MIGRATION_PROFILE: Final = """
CREATE TABLE profile (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    handle TEXT NOT NULL, -- normalised, or '' for none
    bio TEXT NOT NULL,
    avatar BLOB NOT NULL, -- WebP or JPEG, or empty
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE handle_claims (
    handle TEXT NOT NULL,
    peer_id BLOB NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (handle, peer_id)
) WITHOUT ROWID;
CREATE INDEX handle_claims_by_last_seen ON handle_claims (last_seen_ms);
"""

#: Disappearing messages, mute and archive, and full-text search. Each message
#: carries its timer and, once the timer started, when it disappears; each
#: conversation its timer (and the sender's time of that setting, so the
#: newest wins), muted and archived. ``message_search`` is an FTS5 index
#: over the text of text messages (rowid = the message's seq), kept in step
#: by triggers calling ``p2pdm_search_text`` (``store/search_text.py``), so a
#: message stored, edited, erased or deleted by any code path is indexed or
#: forgotten in the same transaction. The triggers count what left the index
#: (``search_erased``): deleted words linger in its segments until they are
#: merged, so the purge merges them (``optimize``) when it is not zero.
_SCRIPT_DISAPPEARING: Final = """
ALTER TABLE messages ADD COLUMN timer_s INTEGER NOT NULL DEFAULT 0 CHECK (timer_s >= 0);
ALTER TABLE messages ADD COLUMN expires_at_ms INTEGER;
CREATE INDEX messages_by_expiry ON messages (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
ALTER TABLE conversations ADD COLUMN timer_s INTEGER NOT NULL DEFAULT 0 CHECK (timer_s >= 0);
ALTER TABLE conversations ADD COLUMN timer_set_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN muted INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1));
ALTER TABLE conversations ADD COLUMN archived INTEGER NOT NULL DEFAULT 0
    CHECK (archived IN (0, 1));

CREATE VIRTUAL TABLE message_search USING fts5 (text, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO counters (name, value) VALUES ('search_erased', 0);
CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_search (rowid, text)
        SELECT new.seq, t FROM (SELECT p2pdm_search_text(new.kind, new.body) AS t)
        WHERE t IS NOT NULL;
END;
CREATE TRIGGER message_search_update AFTER UPDATE OF kind, body ON messages BEGIN
    DELETE FROM message_search WHERE rowid = old.seq;
    UPDATE counters SET value = value + 1 WHERE name = 'search_erased';
    INSERT INTO message_search (rowid, text)
        SELECT new.seq, t FROM (SELECT p2pdm_search_text(new.kind, new.body) AS t)
        WHERE t IS NOT NULL;
END;
CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
    DELETE FROM message_search WHERE rowid = old.seq;
    UPDATE counters SET value = value + 1 WHERE name = 'search_erased';
END;
INSERT INTO message_search (rowid, text)
    SELECT seq, t FROM (SELECT seq, p2pdm_search_text(kind, body) AS t FROM messages)
    WHERE t IS NOT NULL;
"""


def _migration_disappearing(db: sqlite3.Connection) -> bool:
    """:data:`_SCRIPT_DISAPPEARING`, and FTS5's own secure delete where the
    SQLite build has it (3.42 and later; SQLCipher's has): a deleted word is
    then removed from the index at once, not only when the purge merges it."""
    for statement in split_statements(_SCRIPT_DISAPPEARING):
        db.execute(statement)
    with contextlib.suppress(*db_errors()):  # an older build: the purge's merge does it
        db.execute("INSERT INTO message_search (message_search, rank) VALUES ('secure-delete', 1)")
    return False


#: Blobs (sealed files under ``<home>/blobs/``): their keys and how much of
#: each is here, and which messages carry them to or from whom. A reference
#: goes with its message (and with its body: unsent, deleted, expired); a
#: blob no message references is swept: at once once a message carried it
#: (``attached``), an hour after its upload if none ever did.
_MIGRATION_BLOBS: Final = """
CREATE TABLE blobs (
    id BLOB PRIMARY KEY,
    key BLOB NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    digest BLOB NOT NULL,
    mime TEXT NOT NULL,
    name TEXT NOT NULL,
    source BLOB,
    state TEXT NOT NULL,
    have INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    thumbnail BLOB,
    meta TEXT NOT NULL DEFAULT '{}', -- JSON: width, height, duration_ms, waveform (hex)
    attached INTEGER NOT NULL DEFAULT 0 CHECK (attached IN (0, 1)) -- a message carried it
) WITHOUT ROWID;
CREATE TABLE blob_refs (
    blob_id BLOB NOT NULL,
    message_id BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    peer BLOB NOT NULL,
    PRIMARY KEY (blob_id, message_id, peer)
);
CREATE INDEX blob_refs_by_message ON blob_refs (message_id);
"""

#: The outbox breaks ties between equal times by the order envelopes were
#: queued (rowid), not by envelope id: an id hashes ciphertext drawn from the
#: OS, so that order changed from run to run (and a seeded simulation did not
#: replay). An index ends with the rowid, so these serve the new order.
_MIGRATION_OUTBOX_QUEUED_ORDER: Final = """
DROP INDEX outbox_by_next_attempt;
DROP INDEX outbox_by_recipient;
CREATE INDEX outbox_by_next_attempt ON outbox (next_attempt_at_ms, created_at_ms);
CREATE INDEX outbox_by_recipient ON outbox (recipient, created_at_ms);
"""

#: Blocked peers (contacts or strangers): their envelopes are dropped on
#: arrival and nothing is sent to them. A contact marked blocked before this
#: table existed stays blocked.
_MIGRATION_BLOCKED: Final = """
CREATE TABLE blocked_peers (
    peer_id BLOB PRIMARY KEY,
    blocked_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO blocked_peers (peer_id, blocked_at_ms)
    SELECT peer_id, added_at_ms FROM contacts WHERE blocked = 1;
"""

#: Envelopes that follow a message (the chunks of its files pushed toward an
#: offline recipient's mailboxes): unsending the message drops those still
#: queued. A row goes with its outbox entry.
_MIGRATION_OUTBOX_FOLLOWERS: Final = """
CREATE TABLE outbox_followers (
    envelope_id BLOB PRIMARY KEY REFERENCES outbox (envelope_id) ON DELETE CASCADE,
    message_id BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX outbox_followers_by_message ON outbox_followers (message_id);
"""

#: A held action waits no longer than its envelope could still arrive: for an
#: action on a disappearing message, no longer than the message lives (NULL:
#: HELD_ACTION_TTL_MS after it was held).
_MIGRATION_HELD_EXPIRY: Final = """
ALTER TABLE held_actions ADD COLUMN expires_at_ms INTEGER;
"""

#: Groups: their rows, signed change entries and what each member was last
#: known to have (docs/protocol.md §19).
_MIGRATION_GROUPS: Final = """
CREATE TABLE groups (
    id BLOB PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('active', 'request', 'left', 'removed')),
    invited_by BLOB,
    joined_at_ms INTEGER NOT NULL,
    name TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE group_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    hash BLOB NOT NULL,
    entry BLOB NOT NULL,
    UNIQUE (group_id, hash)
);
CREATE TABLE group_peer_heads (
    group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    peer BLOB NOT NULL,
    heads BLOB NOT NULL,
    PRIMARY KEY (group_id, peer)
) WITHOUT ROWID;
"""

#: Group changes waiting for their parents (docs/protocol.md §19.2), kept so
#: a restart does not lose them: bounded per group and in all (the oldest
#: dropped), dropped when applied or older than HELD_GROUP_ENTRY_TTL_MS.
_MIGRATION_GROUP_HELD: Final = """
CREATE TABLE IF NOT EXISTS group_held (
    group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    hash BLOB NOT NULL,
    entry BLOB NOT NULL,
    held_at_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS group_held_by_age ON group_held (held_at_ms);
"""

#: The live locations this node shares (docs/protocol.md §6.9): only which
#: conversation, its contact (NULL for a group) and when the share ends, never
#: a position; a row goes when the share is stopped or ends. After a restart
#: (or a crash) the node tells the recipients of each share that is still
#: within its period that it stopped: the position source is gone.
_MIGRATION_LIVE_SHARES: Final = """
CREATE TABLE IF NOT EXISTS live_shares (
    conversation_id BLOB PRIMARY KEY,
    peer BLOB,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""

#: Taking deposits back (docs/protocol.md §14.3, ``withdraw``): a mailbox keeps
#: each deposit's withdraw hash; a sender keeps the deposits it still has to
#: withdraw (after an unsend), dropped once withdrawn, refused, tried
#: MAX_WITHDRAW_ATTEMPTS times or past the time the mailbox held them until.
_WITHDRAW_TABLES: Final = """
CREATE INDEX IF NOT EXISTS mailbox_by_withdraw ON mailbox (withdraw) WHERE withdraw != x'';
CREATE TABLE IF NOT EXISTS withdrawals (
    envelope_id BLOB NOT NULL,
    mailbox BLOB NOT NULL,
    until_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (envelope_id, mailbox)
) WITHOUT ROWID;
"""


def _migration_withdraw(db: sqlite3.Connection) -> bool:
    """Add the mailbox's ``withdraw`` column (once: migrations may run again) and
    the sender's ``withdrawals``; removes no secrets."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(mailbox)")}
    if "withdraw" not in columns:
        db.execute("ALTER TABLE mailbox ADD COLUMN withdraw BLOB NOT NULL DEFAULT x''")
    for statement in split_statements(_WITHDRAW_TABLES):
        db.execute(statement)
    return False


#: Messages waiting for their recipient's prekeys (p2pdm.store.key_waits):
#: stored, with no envelope yet; a row goes with its message.
_MIGRATION_KEY_WAITS: Final = """
CREATE TABLE IF NOT EXISTS key_waits (
    message_id BLOB PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    peer BLOB NOT NULL,
    held_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS key_waits_by_peer ON key_waits (peer, held_at_ms);
"""


#: A message's first status (the one it was stored with, at ``stored_at_ms``,
#: no detail) kept in its row instead of a ``status_history`` row: one insert
#: fewer a message. NULL for the messages stored before, whose first status
#: stays their oldest ``status_history`` row (nothing is moved).
def _migration_first_status(db: sqlite3.Connection) -> bool:
    """Add ``messages.first_status`` (once: migrations may run again); removes no secrets."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
    if "first_status" not in columns:
        db.execute("ALTER TABLE messages ADD COLUMN first_status TEXT")
    return False


def _migration_pinned(db: sqlite3.Connection) -> bool:
    """Conversations pinned to the top of the list: ``pinned_at_ms``, when (the
    latest pinned on top; added once: migrations may run again); removes no
    secrets."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(conversations)")}
    if "pinned_at_ms" not in columns:
        db.execute("ALTER TABLE conversations ADD COLUMN pinned_at_ms INTEGER")
    return False


#: An SQL script, or a function that returns True when it removed secrets.
Migration = str | Callable[[sqlite3.Connection], bool]

#: Every migration, oldest first. Append only.
MIGRATIONS: Final[tuple[Migration, ...]] = (
    _MIGRATION_1,
    _MIGRATION_MAILBOX,
    _MIGRATION_API,
    _MIGRATION_NAME_ORIGIN,
    _MIGRATION_REQUEST_CAPS,
    _MIGRATION_DEPOSITOR,
    _migration_forget_identity_secret,
    _MIGRATION_RECIPIENTS,
    _MIGRATION_ACTIONS,
    _MIGRATION_PROFILE,
    _migration_disappearing,
    _MIGRATION_BLOBS,
    _MIGRATION_OUTBOX_QUEUED_ORDER,
    _MIGRATION_BLOCKED,
    _MIGRATION_OUTBOX_FOLLOWERS,
    _MIGRATION_HELD_EXPIRY,
    _MIGRATION_GROUPS,
    migration_search_external,
    MIGRATION_EVENT_INDEXES,
    _MIGRATION_GROUP_HELD,
    _MIGRATION_LIVE_SHARES,
    _migration_withdraw,
    _MIGRATION_KEY_WAITS,
    _migration_first_status,
    _migration_pinned,
)

#: The schema version this code writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)


def split_statements(script: str) -> list[str]:
    """Split an SQL script into statements, each ending in ``;``.

    Semicolons inside strings, comments and trigger bodies do not split.
    Raises StoreError if the script ends inside a statement.
    """
    statements: list[str] = []
    pending = ""
    *pieces, tail = script.split(";")
    for piece in pieces:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    if (pending + tail).strip():
        raise StoreError(f"incomplete SQL statement in migration: {(pending + tail)[:60]!r}")
    return statements


def schema_version(db: sqlite3.Connection) -> int:
    """The schema version recorded in ``db``; 0 for a new, empty database."""
    found = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if found is None:
        return 0
    (version,) = db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(version)


def _refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the message store has schema version {version}, but this p2pdm only knows "
            f"versions up to {SCHEMA_VERSION}: it was written by a newer p2pdm; upgrade p2pdm"
        )


def migrate(db: sqlite3.Connection) -> int:
    """Bring ``db`` (in autocommit mode) up to SCHEMA_VERSION; returns the version.

    Raises StoreError if the store is newer than this code; sqlite3 errors
    propagate for the caller to map.
    """
    current = schema_version(db)
    _refuse_newer(current)
    scrub = False
    while current < SCHEMA_VERSION:
        db.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have migrated.
            current = schema_version(db)
            _refuse_newer(current)
            if current < SCHEMA_VERSION:
                scrub = _apply(db, MIGRATIONS[current]) or scrub
                current += 1
                db.execute(
                    "INSERT INTO schema_version (version, applied_at_ms) VALUES (?, ?)",
                    (current, int(time.time() * 1000)),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    if scrub:
        forget_free_pages(db)
    return current


def _apply(db: sqlite3.Connection, migration: Migration) -> bool:
    if callable(migration):
        return migration(db)
    for statement in split_statements(migration):
        db.execute(statement)
    return False


def forget_free_pages(db: sqlite3.Connection) -> None:
    """Rebuild the file and empty its write-ahead log, so deleted bytes are gone.

    ``db`` must be in autocommit mode with no transaction open.
    """
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
