"""The ``media`` kind: files sent as encrypted blobs (docs/protocol.md §17.2).

How this works: the body lists 1..MAX_MEDIA_ITEMS attachments and may carry
a caption. Each :class:`MediaItem` holds what a recipient needs to fetch,
check and show one file: the blob id (SHA-256 of the sealed blob), its key,
the plaintext's SHA-256 and size, MIME type, a file name (shown, never used
as a path: :func:`safe_name` is what anything shows or saves), and for
photos, videos and voice notes their size on screen, duration, an inline
thumbnail and a waveform. The sealing rules are in :mod:`p2pdm.core.blob`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.blob import BLOB_ID_BYTES, BLOB_KEY_BYTES, DIGEST_BYTES
from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.core.kinds.timer import decode_message_timer, encode_message_timer
from p2pdm.errors import SchemaError
from p2pdm.limits import (
    MAX_EXT_BYTES,
    MAX_FILE_BYTES,
    MAX_FILE_NAME_BYTES,
    MAX_MEDIA_DURATION_MS,
    MAX_MEDIA_ITEMS,
    MAX_MEDIA_SIDE,
    MAX_MIME_BYTES,
    MAX_TEXT_BYTES,
    MAX_THUMBNAIL_BYTES,
    MAX_WAVEFORM_LEVELS,
)

__all__ = ["DEFAULT_NAME", "SPEC", "MediaBody", "MediaItem", "safe_mime", "safe_name"]

#: Per item: the three 32-byte hashes and key, name, MIME type, thumbnail,
#: waveform and small numbers, with CBOR headers.
_MAX_ITEM_BYTES: Final = (
    3 * 34 + 34 + MAX_FILE_NAME_BYTES + MAX_MIME_BYTES + MAX_THUMBNAIL_BYTES + 64 + 256
)
_MAX_BODY_BYTES: Final = MAX_MEDIA_ITEMS * _MAX_ITEM_BYTES + MAX_TEXT_BYTES + MAX_EXT_BYTES + 128
#: What a file with no usable name is called.
DEFAULT_NAME: Final = "file"
#: A MIME type: type "/" subtype, RFC 6838 restricted names, no parameters.
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


def safe_mime(mime: str) -> str:
    """``mime`` lowercased if it is a plain ``type/subtype``; else application/octet-stream."""
    mime = mime.split(";", 1)[0].strip().lower()
    return mime if _MIME.fullmatch(mime) else "application/octet-stream"


def safe_name(name: str) -> str:
    """A file name safe to show and to save under: no directories, no control
    or format characters, no leading dots, at most MAX_FILE_NAME_BYTES bytes."""
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        "_" if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") else ch
        for ch in name
    )
    name = name.strip().lstrip(".").strip()
    while len(name.encode()) > MAX_FILE_NAME_BYTES:
        name = name[:-1]
    return name or DEFAULT_NAME


@dataclass(frozen=True, slots=True)
class MediaItem:
    blob_id: bytes
    key: bytes
    digest: bytes
    size: int
    mime: str
    name: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    thumbnail: bytes | None = None
    #: Voice notes: loudness levels 0..255, at most MAX_WAVEFORM_LEVELS.
    waveform: bytes | None = None


@dataclass(frozen=True, slots=True)
class MediaBody:
    items: tuple[MediaItem, ...]
    caption: str | None = None
    ext: dict[str, Any] | None = None
    #: Disappearing-message timer in seconds (0: the message stays), as for a
    #: text (docs/protocol.md §6.7): its files or place go with it.
    timer_s: int = 0
    kind: Literal["media"] = field(default="media", init=False)


def _opt_int(fields: Fields, key: str, lo: int, hi: int) -> int | None:
    return fields.integer(key, lo, hi) if fields.has(key) else None


def _decode_item(fields: Fields) -> MediaItem:
    mime = fields.text("mime", MAX_MIME_BYTES, min_chars=1)
    if not _MIME.fullmatch(mime):
        raise SchemaError(f"{fields.what}: 'mime' must be a lowercase type/subtype")
    item = MediaItem(
        blob_id=fields.blob("blob", size=BLOB_ID_BYTES),
        key=fields.blob("key", size=BLOB_KEY_BYTES),
        digest=fields.blob("digest", size=DIGEST_BYTES),
        size=fields.integer("size", 0, MAX_FILE_BYTES),
        mime=mime,
        name=fields.text("name", MAX_FILE_NAME_BYTES, min_chars=1),
        width=_opt_int(fields, "width", 1, MAX_MEDIA_SIDE),
        height=_opt_int(fields, "height", 1, MAX_MEDIA_SIDE),
        duration_ms=_opt_int(fields, "duration_ms", 0, MAX_MEDIA_DURATION_MS),
        thumbnail=fields.opt_blob("thumb", max_size=MAX_THUMBNAIL_BYTES),
        waveform=fields.opt_blob("waveform", max_size=MAX_WAVEFORM_LEVELS),
    )
    fields.done()
    return item


def decode(fields: Fields) -> MediaBody:
    """Raises SchemaError for 0 or too many items, a bad item, caption or ext."""
    raw = fields.array("items", MAX_MEDIA_ITEMS)
    if not raw:
        raise SchemaError(f"{fields.what}: 'items' must hold 1..{MAX_MEDIA_ITEMS} files")
    items = []
    for n, value in enumerate(raw):
        if type(value) is not dict:
            raise SchemaError(f"{fields.what}.items[{n}]: must be a map")
        items.append(_decode_item(Fields(value, f"{fields.what}.items[{n}]")))
    if len({item.blob_id for item in items}) != len(items):
        raise SchemaError(f"{fields.what}: a blob is named twice")
    caption = fields.text("caption", MAX_TEXT_BYTES) if fields.has("caption") else None
    timer_s = decode_message_timer(fields)
    ext = decode_ext(fields)
    fields.done()
    return MediaBody(tuple(items), caption, ext, timer_s)


def _encode_item(item: MediaItem) -> dict[str, Any]:
    out: dict[str, Any] = {
        "blob": item.blob_id,
        "key": item.key,
        "digest": item.digest,
        "size": item.size,
        "mime": item.mime,
        "name": item.name,
    }
    optional = {
        "width": item.width,
        "height": item.height,
        "duration_ms": item.duration_ms,
        "thumb": item.thumbnail,
        "waveform": item.waveform,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def encode(body: MediaBody) -> dict[str, Any]:
    out: dict[str, Any] = {"items": [_encode_item(item) for item in body.items]}
    if body.caption is not None:
        out["caption"] = body.caption
    return encode_ext(encode_message_timer(out, body.timer_s), body.ext)


SPEC: Final = KindSpec(
    name="media",
    body_type=MediaBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=True,
    targets=False,
    from_strangers=True,
    stored=True,
)
