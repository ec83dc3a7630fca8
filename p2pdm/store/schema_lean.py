"""Migrations that make a message's commit write fewer pages (appended to
:data:`p2pdm.store.schema.MIGRATIONS`).

How this works: a commit writes every page it changed to the write-ahead
log, so each table or index a message touches costs a page (4 KiB) per
commit. Two migrations cut what no query needs:

* the full-text index keeps no copy of the text (an external-content FTS5
  table reading ``message_search_source``, a view computing each message's
  searchable text from its row) and no per-row token counts
  (``columnsize=0``: nothing ranks by length). Its triggers still update it
  in the transaction that stores, edits, erases or deletes a message; a
  removal hands FTS5 the old text, which the view computes again from the
  old row. ``detail`` stays ``full``: a search term is a quoted phrase, and
  a word FTS5 splits in two is a two-token phrase, which only ``full``
  answers.
* the event log drops its index by peer (a read filtered by peer walks the
  log by id: it holds at most ``MAX_STORED_EVENTS`` plus
  ``MAX_STORED_REQUEST_EVENTS`` rows) and its index by lane, whose pruning
  now finds the main lane's oldest rows by id from the highest id pruned;
  the rare request events keep a partial index of their own.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Final

from p2pdm.store.cipher import db_errors

__all__ = ["MIGRATION_EVENT_INDEXES", "migration_search_external"]

#: The full-text index over the messages' text, without a copy of it.
_SEARCH_EXTERNAL: Final = (
    "DROP TRIGGER message_search_insert",
    "DROP TRIGGER message_search_update",
    "DROP TRIGGER message_search_delete",
    "DROP TABLE message_search",
    "CREATE VIEW message_search_source (seq, text) AS "
    "SELECT seq, p2pdm_search_text(kind, body) FROM messages",
    "CREATE VIRTUAL TABLE message_search USING fts5 (text, "
    "tokenize = 'unicode61 remove_diacritics 2', content = 'message_search_source', "
    "content_rowid = 'seq', columnsize = 0)",
    """CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_search (rowid, text)
        SELECT new.seq, t FROM (SELECT p2pdm_search_text(new.kind, new.body) AS t)
        WHERE t IS NOT NULL;
END""",
    """CREATE TRIGGER message_search_update AFTER UPDATE OF kind, body ON messages BEGIN
    INSERT INTO message_search (message_search, rowid, text)
        SELECT 'delete', old.seq, t FROM (SELECT p2pdm_search_text(old.kind, old.body) AS t)
        WHERE t IS NOT NULL;
    UPDATE counters SET value = value + 1 WHERE name = 'search_erased';
    INSERT INTO message_search (rowid, text)
        SELECT new.seq, t FROM (SELECT p2pdm_search_text(new.kind, new.body) AS t)
        WHERE t IS NOT NULL;
END""",
    """CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO message_search (message_search, rowid, text)
        SELECT 'delete', old.seq, t FROM (SELECT p2pdm_search_text(old.kind, old.body) AS t)
        WHERE t IS NOT NULL;
    UPDATE counters SET value = value + 1 WHERE name = 'search_erased';
END""",
    "INSERT INTO message_search (message_search) VALUES ('rebuild')",
)


def migration_search_external(db: sqlite3.Connection) -> bool:
    """:data:`_SEARCH_EXTERNAL`, with FTS5's secure delete where the build
    has it; True: the dropped table held a copy of every message's text."""
    for statement in _SEARCH_EXTERNAL:
        db.execute(statement)
    with contextlib.suppress(*db_errors()):  # an older build: the purge's merge does it
        db.execute("INSERT INTO message_search (message_search, rank) VALUES ('secure-delete', 1)")
    return True


#: The event log's indexes, but the request events' own.
MIGRATION_EVENT_INDEXES: Final = """
DROP INDEX events_by_peer;
DROP INDEX events_by_lane;
CREATE INDEX events_requests_by_lane ON events (lane_seq) WHERE request = 1;
"""
