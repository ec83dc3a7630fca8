"""Files and places in API answers: a message's ``media`` and ``location``,
an upload's answer, and their schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from p2pdm.api.schema import Schema, obj
from p2pdm.core.kinds import LocationBody, decode_stored
from p2pdm.core.kinds.media import safe_name
from p2pdm.core.model import Direction, StoredMessage
from p2pdm.limits import (
    MAX_FILE_BYTES,
    MAX_LOCATION_LABEL_BYTES,
    MAX_MEDIA_DURATION_MS,
    MAX_MEDIA_SIDE,
)
from p2pdm.node.media import media_of
from p2pdm.store.blobs import BlobRecord

__all__ = [
    "BLOB_ID_PATTERN",
    "LOCATION",
    "MEDIA_ITEM",
    "MEDIA_SCHEMAS",
    "UPLOADED",
    "BlobLookup",
    "location_json",
    "media_json",
    "uploaded_json",
]

#: Finds a blob's record (the store's ``get_blob``).
BlobLookup = Callable[[bytes], BlobRecord | None]
BLOB_ID_PATTERN: Final = "^[0-9a-f]{64}$"
#: What a message's file is, for its reader: ``local`` (ours, sent from
#: here), ``pending`` (not fetched: ask with POST /v1/media/{id}/download),
#: ``fetching``, ``ready``, ``failed``.
MEDIA_STATES: Final = ("local", "pending", "fetching", "ready", "failed")


def _state(message: StoredMessage, record: BlobRecord | None) -> str:
    if record is not None:
        return record.state
    # Its row was swept (or never made): nothing of it is here.
    return "local" if message.direction is Direction.OUT else "failed"


def media_json(message: StoredMessage, blobs: BlobLookup | None) -> list[dict[str, Any]] | None:
    """The files of a media message (None for other kinds)."""
    body = media_of(message)
    if body is None:
        return None
    out = []
    for item in body.items:
        record = blobs(item.blob_id) if blobs is not None else None
        entry: dict[str, Any] = {
            "id": item.blob_id.hex(),
            "name": safe_name(item.name),
            "mime": item.mime,
            "size": item.size,
            "state": _state(message, record),
            "progress": 0 if record is None else record.have,
            "detail": "" if record is None else record.detail,
            "thumbnail": record is not None and record.thumbnail is not None,
        }
        for key in ("width", "height", "duration_ms"):
            value = getattr(item, key)
            if value is not None:
                entry[key] = value
        if item.waveform is not None:
            entry["waveform"] = list(item.waveform)
        out.append(entry)
    return out


def media_caption(message: StoredMessage) -> str | None:
    body = media_of(message)
    return None if body is None else body.caption


def location_json(message: StoredMessage) -> dict[str, Any] | None:
    """The place of a location message (None for other kinds)."""
    if message.kind != "location":
        return None
    body = decode_stored(message.kind, message.body)
    if not isinstance(body, LocationBody):
        return None
    out: dict[str, Any] = {"lat": body.lat, "lon": body.lon}
    if body.accuracy_m is not None:
        out["accuracy_m"] = body.accuracy_m
    if body.label is not None:
        out["label"] = body.label
    return out


def uploaded_json(record: BlobRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": record.blob_id.hex(),
        "name": record.name,
        "mime": record.mime,
        "size": record.size,
    }
    for key in ("width", "height", "duration_ms"):
        value = getattr(record, key)
        if value is not None:
            out[key] = value
    return out


_BLOB_ID: Final[Schema] = {"type": "string", "pattern": BLOB_ID_PATTERN}
_SIDE: Final[Schema] = {"type": "integer", "minimum": 1, "maximum": MAX_MEDIA_SIDE}
_DURATION: Final[Schema] = {"type": "integer", "minimum": 0, "maximum": MAX_MEDIA_DURATION_MS}
_SIZE: Final[Schema] = {"type": "integer", "minimum": 0, "maximum": MAX_FILE_BYTES}

MEDIA_ITEM: Final[Schema] = obj(
    {
        "id": {**_BLOB_ID, "description": "the blob id: GET /v1/media/{id} serves the file"},
        "name": {"type": "string", "description": "a safe file name (never a path)"},
        "mime": {"type": "string"},
        "size": {**_SIZE, "description": "bytes of the file"},
        "state": {
            "type": "string",
            "enum": list(MEDIA_STATES),
            "description": "local: ours; pending: not fetched (POST /v1/media/{id}/download); "
            "fetching; ready; failed (see detail)",
        },
        "progress": {"type": "integer", "minimum": 0, "description": "chunks here (256 KiB)"},
        "detail": {"type": "string", "description": "why a transfer waits or failed"},
        "thumbnail": {
            "type": "boolean",
            "description": "GET /v1/media/{id}/thumbnail has a small JPEG",
        },
        "width": _SIDE,
        "height": _SIDE,
        "duration_ms": _DURATION,
        "waveform": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0, "maximum": 255},
            "maxItems": 64,
            "description": "a voice note's loudness over time",
        },
    },
    optional=("width", "height", "duration_ms", "waveform"),
)

LOCATION: Final[Schema] = obj(
    {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "accuracy_m": {"type": "number", "minimum": 0, "maximum": 1_000_000},
        "label": {"type": "string", "maxLength": MAX_LOCATION_LABEL_BYTES},
    },
    optional=("accuracy_m", "label"),
)

UPLOADED: Final[Schema] = obj(
    {
        "id": {**_BLOB_ID, "description": "name it in POST /v1/messages 'media'"},
        "name": {"type": "string"},
        "mime": {"type": "string"},
        "size": _SIZE,
        "width": _SIDE,
        "height": _SIDE,
        "duration_ms": _DURATION,
    },
    optional=("width", "height", "duration_ms"),
)

MEDIA_SCHEMAS: Final[dict[str, Schema]] = {
    "MediaItem": MEDIA_ITEM,
    "Location": LOCATION,
    "Uploaded": UPLOADED,
}
