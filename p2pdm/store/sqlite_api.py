"""The SQLite store's tables for the local API: event log, idempotency keys, tokens.

How this works: :class:`APITables` is a mixin of
:class:`~p2pdm.store.sqlite.SQLiteStore` that maps those parts of the
:class:`~p2pdm.store.base.Store` contract onto the tables of ``_MIGRATION_API``.
:func:`insert_event` is also called by the store's status, read and contact
writes (with the entries :mod:`p2pdm.core.eventlog` builds), inside their own
savepoint, so an event commits with its change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any, Final

from p2pdm.core.identity import PeerId
from p2pdm.core.model import ApiToken, DeliveryStatus, Event, EventType, LogEvent, TokenScope
from p2pdm.errors import StoreError
from p2pdm.limits import MAX_API_TOKENS
from p2pdm.store.base import idempotency_cutoff_ms, page_limit
from p2pdm.store.database import HotReads
from p2pdm.store.sqlite_tables import Tables

__all__ = ["APITables", "add_to_counter", "counter", "insert_event"]

_EVENT_COLUMNS: Final = (
    "id, type, at_ms, peer, message_id, status, detail, conversation_id, request"
)
_TOKEN_COLUMNS: Final = "name, secret_hash, scope, contacts, created_at_ms"
#: The largest event id SQLite can hold; caps a cursor given from outside.
_MAX_ID: Final = (1 << 63) - 1


def _event(row: Any) -> Event:
    eid, kind, at, peer, mid, status, detail, conversation, request = row
    return Event(
        id=eid,
        type=EventType(kind),
        at_ms=at,
        peer=None if peer is None else PeerId(peer),
        message_id=mid,
        status=None if status is None else DeliveryStatus(status),
        detail=detail,
        conversation_id=conversation,
        request=bool(request),
    )


def _token(row: Any) -> ApiToken:
    name, secret_hash, scope, contacts, created = row
    return ApiToken(
        name=name,
        secret_hash=bytes(secret_hash),
        scope=TokenScope(scope),
        contacts=tuple(PeerId.parse(c) for c in json.loads(contacts)),
        created_at_ms=created,
    )


def counter(db: Any, name: str) -> int:
    """The value of one row of ``counters``."""
    row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def add_to_counter(db: Any, name: str, delta: int) -> int:
    """Add ``delta`` to a row of ``counters``; returns the new value."""
    # One statement (an absent row counts as 0): it runs for every event.
    (value,) = db.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value",
        (name, delta),
    ).fetchone()
    return int(value)


def insert_event(db: Any, caps: tuple[int, int], event: LogEvent, hot: HotReads) -> int:
    """Append ``event``; prune its part of the log (``caps``: main, requests) to size.

    Its ``lane_seq`` is the next of its lane's counter, read once and then
    counted in ``hot``, which writes the counter when the outermost
    transaction commits (:attr:`HotReads.lanes`).
    """
    request = event.request
    lane = "request_events" if request else "events"
    name = f"{lane}_lane_seq"
    last = hot.lanes.get(name)
    if last is None:
        lane_seq = add_to_counter(db, name, 1)
    else:
        lane_seq = hot.lanes_due[name] = last + 1
    hot.lanes[name] = lane_seq
    cursor = db.execute(
        "INSERT INTO events (type, at_ms, peer, message_id, status, detail, request, lane_seq, "
        "conversation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            str(event.type),
            event.at_ms,
            None if event.peer is None else event.peer.raw,
            event.message_id,
            None if event.status is None else str(event.status),
            event.detail,
            int(request),
            lane_seq,
            event.conversation_id,
        ),
    )
    event_id = int(cursor.lastrowid or 0)
    up_to = lane_seq - (caps[1] if request else caps[0])
    pruned: list[int] = []
    if up_to > 0:  # else the lane has never held more than its cap
        pruned = _prune_requests(db, up_to) if request else _prune_main(db, up_to)
    if pruned:
        db.execute(
            "UPDATE counters SET value = max(value, ?) WHERE name = ?",
            (max(pruned), f"{lane}_pruned"),
        )
    return event_id


def _prune_requests(db: Any, up_to: int) -> list[int]:
    """Delete the request events with ``lane_seq <= up_to`` (their own index)."""
    rows = db.execute(
        "DELETE FROM events WHERE request = 1 AND lane_seq <= ? RETURNING id", (up_to,)
    ).fetchall()
    return [row[0] for row in rows]


def _prune_main(db: Any, up_to: int) -> list[int]:
    """Delete the main log's events with ``lane_seq <= up_to``: its oldest,
    read by id from the highest id pruned, as many as the oldest one's
    ``lane_seq`` says (no index: ids and ``lane_seq`` grow together within
    a lane; none read while the log is under its cap)."""
    rows = db.execute(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE request = 0 "
        "AND id > (SELECT value FROM counters WHERE name = 'events_pruned') ORDER BY id "
        "LIMIT max(0, ?1 + 1 - (SELECT lane_seq FROM events WHERE request = 0 "
        "AND id > (SELECT value FROM counters WHERE name = 'events_pruned') ORDER BY id LIMIT 1))"
        ") AND lane_seq <= ?1 RETURNING id",
        (up_to,),
    ).fetchall()
    return [row[0] for row in rows]


class APITables(Tables):
    """Event log, idempotency keys and API tokens of a :class:`SQLiteStore`."""

    # --- the event log -------------------------------------------------------

    def set_event_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` after every write that added an event (None: stop)."""
        self._listener = listener

    def add_event(
        self,
        type: EventType,
        at_ms: int,
        peer: PeerId | None = None,
        message_id: bytes | None = None,
        status: DeliveryStatus | None = None,
        detail: str = "",
        *,
        request: bool = False,
        conversation_id: bytes | None = None,
    ) -> int:
        """Append an event; returns its id. Each part of the log keeps its newest."""
        with self._writing(f"recording a {type} event") as db:
            event = LogEvent(
                type, at_ms, peer, message_id, status, detail, conversation_id, request
            )
            event_id = insert_event(db, self._event_caps, event, self._hot)
        self._notify()
        return event_id

    def events(
        self,
        after: int,
        limit: int,
        types: Collection[EventType] | None = None,
        peers: Collection[PeerId] | None = None,
    ) -> list[Event]:
        """Events with ``id > after``, oldest first, at most ``limit`` (capped at
        MAX_PAGE_SIZE); only of ``types`` and about ``peers`` when given."""
        size = page_limit(limit)
        where = ["id > ?"]
        args: list[Any] = [max(0, min(after, _MAX_ID))]
        if types is not None:
            where.append(f"type IN ({', '.join('?' * len(types))})")
            args.extend(str(t) for t in sorted(types))
        if peers is not None:
            where.append(f"peer IN ({', '.join('?' * len(peers))})")
            args.extend(p.raw for p in peers)
        with self._reading("reading events") as db:
            rows = db.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} "
                "ORDER BY id LIMIT ?",
                (*args, size),
            ).fetchall()
        return [_event(row) for row in rows]

    def event_bounds(self) -> tuple[int, int]:
        """``(oldest kept id, newest id ever)``; ``(0, 0)`` before the first event."""
        with self._reading("reading the event log bounds") as db:
            (oldest,) = db.execute("SELECT coalesce(min(id), 0) FROM events").fetchone()
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(oldest), int(row[0]) if row else 0

    def events_pruned(self) -> tuple[int, int]:
        """Highest event id pruned from the main log, and from the request events."""
        with self._reading("reading the event log retention") as db:
            return counter(db, "events_pruned"), counter(db, "request_events_pruned")

    # --- idempotency keys --------------------------------------------------

    def remember_send(self, scope: str, key: str, message_id: bytes, at_ms: int) -> None:
        """Record which message ``key`` made; raises StoreError if the key is taken."""
        with self._writing("recording an idempotency key") as db:
            db.execute(
                "DELETE FROM idempotency_keys WHERE created_at_ms < ?",
                (idempotency_cutoff_ms(at_ms),),
            )
            if db.execute(
                "SELECT 1 FROM idempotency_keys WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone():
                raise StoreError(f"idempotency key {key!r} is already used")
            cursor = db.execute(
                "INSERT INTO idempotency_keys (scope, key, message_id, created_at_ms) "
                "VALUES (?, ?, ?, ?)",
                (scope, key, message_id, at_ms),
            )
            n = int(cursor.lastrowid or 0)
            db.execute("DELETE FROM idempotency_keys WHERE n <= ?", (n - self._max_keys,))

    def sent_with(self, scope: str, key: str) -> bytes | None:
        """The id of the message ``key`` made, if it is still remembered."""
        with self._reading("reading an idempotency key") as db:
            row = db.execute(
                "SELECT message_id FROM idempotency_keys WHERE scope = ? AND key = ?",
                (scope, key),
            ).fetchone()
        return None if row is None else bytes(row[0])

    # --- named API tokens ----------------------------------------------------

    def put_token(self, token: ApiToken) -> None:
        """Add a token; raises StoreError for a taken name or hash, or past MAX_API_TOKENS."""
        with self._writing(f"saving API token {token.name!r}") as db:
            (count,) = db.execute("SELECT count(*) FROM api_tokens").fetchone()
            if count >= MAX_API_TOKENS:
                raise StoreError(f"there are already {MAX_API_TOKENS} API tokens; revoke one")
            if db.execute(
                "SELECT 1 FROM api_tokens WHERE name = ? OR secret_hash = ?",
                (token.name, token.secret_hash),
            ).fetchone():
                raise StoreError(f"an API token named {token.name!r} exists")
            db.execute(
                f"INSERT INTO api_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (
                    token.name,
                    token.secret_hash,
                    str(token.scope),
                    json.dumps([str(c) for c in token.contacts]),
                    token.created_at_ms,
                ),
            )

    def list_tokens(self) -> list[ApiToken]:
        """Every named token, by name."""
        with self._reading("listing API tokens") as db:
            rows = db.execute(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY name").fetchall()
        return [_token(row) for row in rows]

    def delete_token(self, name: str) -> bool:
        with self._writing(f"revoking API token {name!r}") as db:
            cursor = db.execute("DELETE FROM api_tokens WHERE name = ?", (name,))
        return cursor.rowcount > 0
