"""The SQLite store's caps on pending message requests.

How this works: :func:`trim_requests` runs inside the write that stores a
message request (``SQLiteStore.add_message``), so the caps hold at every
commit. It drops the sender's oldest pending requests past its per-peer
caps, then everyone's oldest past the global caps (the rule is
:func:`~p2pdm.store.base.requests_over_caps`, shared with the in-memory
store), fixes the conversations they were in, and adds them to the
``requests_dropped`` counters. Their seen ids stay, so a resent copy is
still answered "already stored" rather than stored again.
"""

from __future__ import annotations

from typing import Any

from p2pdm.core.identity import PeerId
from p2pdm.store.base import RequestCaps, RequestUsage, iter_chunks, requests_over_caps
from p2pdm.store.schema import UNREAD_CONDITION
from p2pdm.store.sqlite_api import add_to_counter, counter
from p2pdm.store.sqlite_tables import IN_CHUNK

__all__ = ["delete_requests", "request_usage", "trim_requests"]


def _pending(db: Any, where: str, args: tuple[Any, ...]) -> list[tuple[int, int]]:
    return [
        (int(seq), int(size))
        for seq, size in db.execute(
            f"SELECT seq, length(body) FROM messages WHERE request = 1 {where} ORDER BY seq",
            args,
        )
    ]


def _drop(db: Any, seqs: list[int], sizes: dict[int, int], *, counted: bool = True) -> None:
    conversations: set[bytes] = set()
    for chunk in iter_chunks(seqs, IN_CHUNK):
        marks = ", ".join("?" * len(chunk))
        rows = db.execute(
            f"SELECT DISTINCT conversation_id FROM messages WHERE seq IN ({marks})", chunk
        ).fetchall()
        conversations.update(bytes(row[0]) for row in rows)
        # status_history goes with them (ON DELETE CASCADE).
        db.execute(f"DELETE FROM messages WHERE seq IN ({marks})", chunk)
    for conversation in conversations:
        left = db.execute(
            f"SELECT max(seq), count(*) FILTER (WHERE {UNREAD_CONDITION}) FROM messages "
            "WHERE conversation_id = ?",
            (conversation,),
        ).fetchone()
        if left[0] is None:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation,))
        else:
            db.execute(
                "UPDATE conversations SET last_seq = ?, unread = ? WHERE id = ?",
                (left[0], left[1], conversation),
            )
    if counted:
        add_to_counter(db, "requests_dropped", len(seqs))
        add_to_counter(db, "requests_dropped_bytes", sum(sizes[seq] for seq in seqs))


def trim_requests(db: Any, peer: PeerId, caps: RequestCaps) -> int:
    """Drop pending requests over ``caps``, the sender's first; returns how many."""
    own = _pending(db, "AND peer = ?", (peer.raw,))
    drop = requests_over_caps(own, caps.messages_per_peer, caps.bytes_per_peer)
    if drop:
        _drop(db, drop, dict(own))
    count, total = db.execute(
        "SELECT count(*), coalesce(sum(length(body)), 0) FROM messages WHERE request = 1"
    ).fetchone()
    if count <= caps.messages and total <= caps.bytes:
        return len(drop)
    everyone = _pending(db, "", ())
    more = requests_over_caps(everyone, caps.messages, caps.bytes)
    _drop(db, more, dict(everyone))
    return len(drop) + len(more)


def request_usage(db: Any) -> RequestUsage:
    """Pending request messages and bytes, and the dropped counters."""
    count, total = db.execute(
        "SELECT count(*), coalesce(sum(length(body)), 0) FROM messages WHERE request = 1"
    ).fetchone()
    return RequestUsage(
        int(count),
        int(total),
        counter(db, "requests_dropped"),
        counter(db, "requests_dropped_bytes"),
    )


def delete_requests(db: Any, peer: PeerId) -> int:
    """Delete ``peer``'s pending requests (declined: not counted as dropped); returns how many."""
    own = _pending(db, "AND peer = ?", (peer.raw,))
    _drop(db, [seq for seq, _ in own], dict(own), counted=False)
    return len(own)
