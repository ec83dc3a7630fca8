"""The SQLite store's blob rows and the messages that reference them (see ``blobs.py``)."""

from __future__ import annotations

import json
from typing import Any, Final

from p2pdm.core.identity import PeerId
from p2pdm.errors import NotFound
from p2pdm.store.blobs import BlobRecord, BlobState
from p2pdm.store.sqlite_outbox import withdraw_deposits
from p2pdm.store.sqlite_tables import Tables

__all__ = ["BlobTables"]

_COLUMNS: Final = (
    "id, key, size, digest, mime, name, source, state, have, created_at_ms, detail, thumbnail, meta"
)


def _meta(blob: BlobRecord) -> str:
    meta = {"width": blob.width, "height": blob.height, "duration_ms": blob.duration_ms}
    if blob.waveform is not None:
        meta["waveform"] = blob.waveform.hex()  # type: ignore[assignment]
    return json.dumps({k: v for k, v in meta.items() if v is not None})


def _record(row: Any) -> BlobRecord:
    blob_id, key, size, digest, mime, name, source, state, have, created, detail, thumb, meta = row
    extra = json.loads(meta)
    return BlobRecord(
        blob_id=bytes(blob_id),
        key=bytes(key),
        size=size,
        digest=bytes(digest),
        mime=mime,
        name=name,
        source=None if source is None else PeerId(bytes(source)),
        state=state,
        have=have,
        created_at_ms=created,
        detail=detail,
        thumbnail=None if thumb is None else bytes(thumb),
        width=extra.get("width"),
        height=extra.get("height"),
        duration_ms=extra.get("duration_ms"),
        waveform=bytes.fromhex(extra["waveform"]) if "waveform" in extra else None,
    )


class BlobTables(Tables):
    """Blobs of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    def put_blob(self, blob: BlobRecord) -> bool:
        with self._writing(f"adding blob {blob.blob_id.hex()}") as db:
            cursor = db.execute(
                f"INSERT OR IGNORE INTO blobs ({_COLUMNS}) VALUES ({', '.join('?' * 13)})",
                (
                    blob.blob_id,
                    blob.key,
                    blob.size,
                    blob.digest,
                    blob.mime,
                    blob.name,
                    None if blob.source is None else blob.source.raw,
                    blob.state,
                    blob.have,
                    blob.created_at_ms,
                    blob.detail,
                    blob.thumbnail,
                    _meta(blob),
                ),
            )
            return cursor.rowcount > 0

    def get_blob(self, blob_id: bytes) -> BlobRecord | None:
        with self._reading(f"reading blob {blob_id.hex()}") as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        return None if row is None else _record(row)

    def set_blob_progress(self, blob_id: bytes, state: BlobState, have: int, detail: str) -> None:
        with self._writing(f"updating blob {blob_id.hex()}") as db:
            cursor = db.execute(
                "UPDATE blobs SET state = ?, have = ?, detail = ? WHERE id = ?",
                (state, have, detail, blob_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no blob {blob_id.hex()}")

    def add_blob_ref(self, blob_id: bytes, message_id: bytes, peer: PeerId) -> None:
        with self._writing(f"referencing blob {blob_id.hex()}") as db:
            db.execute(
                "INSERT OR IGNORE INTO blob_refs (blob_id, message_id, peer) VALUES (?, ?, ?)",
                (blob_id, message_id, peer.raw),
            )
            db.execute("UPDATE blobs SET attached = 1 WHERE id = ?", (blob_id,))

    def blob_shared_with(self, blob_id: bytes, peer: PeerId) -> bool:
        with self._reading("checking who may fetch a blob") as db:
            row = db.execute(
                "SELECT 1 FROM blob_refs r JOIN messages m ON m.id = r.message_id "
                "WHERE r.blob_id = ? AND r.peer = ? AND m.direction = 'out' LIMIT 1",
                (blob_id, peer.raw),
            ).fetchone()
        return row is not None

    def blobs_of_message(self, message_id: bytes) -> list[bytes]:
        with self._reading("reading a message's blobs") as db:
            rows = db.execute(
                "SELECT blob_id FROM blob_refs WHERE message_id = ? ORDER BY rowid",
                (message_id,),
            ).fetchall()
        return list(dict.fromkeys(bytes(row[0]) for row in rows))

    def release_message_blobs(self, message_id: bytes) -> int:
        with self._writing("releasing a message's blobs") as db:
            return db.execute("DELETE FROM blob_refs WHERE message_id = ?", (message_id,)).rowcount

    def blobs_to_fetch(self) -> list[BlobRecord]:
        with self._reading("listing blobs to fetch") as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM blobs WHERE state = 'fetching' ORDER BY created_at_ms, id"
            ).fetchall()
        return [_record(row) for row in rows]

    def unreferenced_blobs(self, created_before_ms: int) -> list[bytes]:
        with self._reading("listing unreferenced blobs") as db:
            rows = db.execute(
                "SELECT id FROM blobs b WHERE (attached = 1 OR created_at_ms < ?) AND NOT EXISTS "
                "(SELECT 1 FROM blob_refs r WHERE r.blob_id = b.id)",
                (created_before_ms,),
            ).fetchall()
        return [bytes(row[0]) for row in rows]

    def delete_blob(self, blob_id: bytes) -> bool:
        with self._writing(f"deleting blob {blob_id.hex()}") as db:
            db.execute("DELETE FROM blob_refs WHERE blob_id = ?", (blob_id,))
            return db.execute("DELETE FROM blobs WHERE id = ?", (blob_id,)).rowcount > 0

    def follow_message(self, envelope_id: bytes, message_id: bytes) -> None:
        with self._writing("noting an envelope that follows a message") as db:
            db.execute(
                "INSERT OR IGNORE INTO outbox_followers (envelope_id, message_id) VALUES (?, ?)",
                (envelope_id, message_id),
            )

    def remove_followers_of(self, message_id: bytes) -> int:
        with self._writing(f"dropping envelopes that follow {message_id.hex()}") as db:
            ids = [
                bytes(e)
                for (e,) in db.execute(
                    "SELECT envelope_id FROM outbox_followers WHERE message_id = ?", (message_id,)
                )
            ]
            for envelope_id in ids:
                withdraw_deposits(db, envelope_id)
                db.execute("DELETE FROM outbox WHERE envelope_id = ?", (envelope_id,))
        return len(ids)
