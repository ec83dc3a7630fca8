"""The API's files: uploads, sending files and places, serving files back.

Serving files safely: a file from a peer may be hostile HTML or SVG. Every
answer carries ``X-Content-Type-Options: nosniff`` and
``Content-Security-Policy: sandbox`` (a browser that opens it runs no script
and gets an opaque origin); only image, audio and video types a browser
shows without running anything (:data:`INLINE_TYPES`) are served as
themselves and ``inline``; everything else is ``application/octet-stream``
with ``Content-Disposition: attachment``. Range requests (one range) are
answered 206.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from p2pdm.api.guard import grant_of
from p2pdm.api.payload import JSONObject, RequestError, bad_request
from p2pdm.api.schema import Schema, ref
from p2pdm.api.upload_multipart import read_multipart
from p2pdm.api.views import message_view
from p2pdm.api.views_media import BLOB_ID_PATTERN, uploaded_json
from p2pdm.core.identity import PeerId
from p2pdm.core.model import StoredMessage, TokenScope
from p2pdm.errors import IdempotencyConflict, NotFound
from p2pdm.limits import MAX_FILE_NAME_BYTES, MAX_MEDIA_ITEMS
from p2pdm.node.media import blob_id_of
from p2pdm.node.media_ops import send_body, send_location
from p2pdm.node.node import Node
from p2pdm.store.blobs import BlobRecord

__all__ = [
    "INLINE_TYPES",
    "MEDIA_FIELDS",
    "PLACE_FIELDS",
    "SEND_ONE_OF",
    "download_media",
    "get_media",
    "get_thumbnail",
    "location_fields",
    "send_media_message",
    "upload_media",
]

#: Types served inline: pictures, sound and video a browser renders without
#: running anything. SVG is not among them (it may hold script).
INLINE_TYPES: Final = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "audio/ogg",
        "audio/webm",
        "audio/mpeg",
        "audio/mp4",
        "audio/wav",
        "video/mp4",
        "video/webm",
        "video/ogg",
    }
)
#: Headers on every file answer (see the module docstring).
SAFE_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
    "Cache-Control": "private, max-age=3600",
}
_RANGE: Final = re.compile(r"bytes=(\d*)-(\d*)")
#: Bytes read to check an image's header before serving it inline.
IMAGE_HEAD_BYTES: Final = 64 << 10

# --- sending ------------------------------------------------------------------

MEDIA_FIELDS: Final[dict[str, Schema]] = {
    "media": {
        "type": "array",
        "items": {"type": "string", "pattern": BLOB_ID_PATTERN},
        "minItems": 1,
        "maxItems": MAX_MEDIA_ITEMS,
        "description": "files uploaded with POST /v1/media; 'text' is then their caption",
    },
    "location": ref("Location"),
}
#: A message is a text (perhaps a reply), files (with an optional caption), or a place.
SEND_ONE_OF: Final[list[Schema]] = [
    {"required": ["text"], "not": {"anyOf": [{"required": ["media"]}, {"required": ["location"]}]}},
    {
        "required": ["media"],
        "not": {"anyOf": [{"required": ["location"]}, {"required": ["reply_to"]}]},
    },
    {
        "required": ["location"],
        "not": {
            "anyOf": [{"required": ["media"]}, {"required": ["text"]}, {"required": ["reply_to"]}]
        },
    },
]


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"'{name}' must be a number")
    return float(value)


#: The fields of a place in a request.
PLACE_FIELDS: Final = frozenset({"lat", "lon", "accuracy_m", "label"})


def location_fields(
    place: dict[str, Any], prefix: str = "location.", allowed: frozenset[str] = PLACE_FIELDS
) -> tuple[float, float, float | None, str | None]:
    """Latitude, longitude, accuracy and label of a place in a request (its
    fields named ``prefix`` + name in errors); raises RequestError 400."""
    unknown = set(place) - allowed
    if unknown:
        raise bad_request(f"unknown field '{prefix}{sorted(unknown)[0]}'")
    if "lat" not in place or "lon" not in place:
        raise bad_request(f"a location needs '{prefix}lat' and '{prefix}lon'")
    accuracy = place.get("accuracy_m")
    label = place.get("label")
    if label is not None and not isinstance(label, str):
        raise bad_request(f"'{prefix}label' must be a string")
    return (
        _number(place["lat"], prefix + "lat"),
        _number(place["lon"], prefix + "lon"),
        None if accuracy is None else _number(accuracy, prefix + "accuracy_m"),
        label,
    )


def _replayed(
    node: Node, peer: PeerId, idempotency: tuple[str, str] | None
) -> StoredMessage | None:
    if idempotency is None:
        return None
    earlier_id = node.store.sent_with(*idempotency)
    earlier = None if earlier_id is None else node.store.get_message(earlier_id)
    if earlier_id is not None and (earlier is None or earlier.peer != peer):
        raise IdempotencyConflict("this idempotency key was used for another message")
    return earlier


async def send_media_message(
    body: JSONObject, node: Node, peer: PeerId, idempotency: tuple[str, str] | None
) -> Response:
    """``POST /v1/messages`` with ``media`` (and a caption) or a ``location``."""
    ids = body.opt_text_list("media")
    place = body.opt_object("location")
    caption = body.opt_text("text")
    body.done()
    if ids and place is not None:
        raise bad_request("a message carries files or a location, not both")
    if place is not None and caption is not None:
        raise bad_request("a location message has no text")
    earlier = _replayed(node, peer, idempotency)
    if earlier is not None:
        return JSONResponse(
            message_view(node, earlier, ""),
            headers={"Idempotent-Replayed": "true"},
        )
    if place is not None:
        message = await send_location(node, peer, *location_fields(place))
    else:
        if not 1 <= len(ids) <= MAX_MEDIA_ITEMS:
            raise bad_request(f"'media' names 1 to {MAX_MEDIA_ITEMS} uploaded files")
        blob_ids = [blob_id_of(i) for i in ids]
        message = await send_body(node, peer, node.media.body_for(blob_ids, caption))
    if idempotency is not None:
        node.store.remember_send(*idempotency, message.id, node.now_ms())
    # A fresh message has no note, except one waiting for its recipient's keys.
    return JSONResponse(
        message_view(node, message, None if node.waiting_for_keys(peer) else ""),
        status_code=201,
        headers={"Location": f"/v1/messages/{message.id.hex()}"},
    )


# --- uploading ----------------------------------------------------------------


async def upload_media(request: Request, node: Node) -> Response:
    """``POST /v1/media``: the body is the file, ``Content-Type`` its type; or a
    ``multipart/form-data`` body with the file as its one part."""
    mime = request.headers.get("content-type", "application/octet-stream")
    name = request.query_params.get("name", "")
    if len(name) > MAX_FILE_NAME_BYTES:  # then cut to as many bytes by safe_name
        raise bad_request(f"'name' is at most {MAX_FILE_NAME_BYTES} characters")
    if mime.lower().startswith("multipart/"):
        upload = await read_multipart(node.media, mime, name, request.stream())
    else:
        upload = node.media.upload(mime, name)
        try:
            async with aclosing(request.stream()) as pieces:  # closed at once if refused
                async for piece in pieces:
                    if piece:
                        upload.write(piece)
        except BaseException:
            upload.abort()
            raise
    record = upload.finish()
    node.media.note_uploader(record.blob_id, grant_of(request.scope).name)
    return JSONResponse(
        uploaded_json(record),
        status_code=201,
        headers={"Location": f"/v1/media/{record.blob_id.hex()}"},
    )


# --- serving ------------------------------------------------------------------


def _record(request: Request, node: Node) -> BlobRecord:
    """The path's blob, if the token may see it (else 404, as if absent): a
    received file by a token that sees its sender; our own file, once a
    message carries it, by a token that sees a peer it went to; an upload no
    message carries yet, only by the token that uploaded it or an admin one."""
    record = node.media.record(blob_id_of(str(request.path_params["blob"])))
    grant = grant_of(request.scope)
    if record.source is not None:
        visible = grant.sees(record.source)
    elif record.blob_id in node.store.unreferenced_blobs(node.now_ms() + 1):
        visible = grant.scope is TokenScope.ADMIN or node.media.uploaded_by(record.blob_id) == (
            grant.name
        )
    else:
        visible = grant.contacts is None or any(
            node.store.blob_shared_with(record.blob_id, peer) for peer in grant.contacts
        )
    if not visible:
        raise NotFound(f"no file {record.blob_id.hex()}")
    return record


def _disposition(record: BlobRecord, inline: bool) -> str:
    ascii_name = record.name.encode("ascii", "replace").decode().replace('"', "_")
    ascii_name = ascii_name.replace("?", "_")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(record.name)}"


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a one-range ``Range`` header; None
    for none; raises RequestError 416 for one that cannot be served."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        raise RequestError(416, "bad_range", "one 'bytes=START-END' range is served")
    if not match[1]:
        start, end = max(0, size - int(match[2])), size
    else:
        start = int(match[1])
        end = min(size, int(match[2]) + 1) if match[2] else size
    if start >= size or start >= end:
        raise RequestError(
            416, "bad_range", f"the file has {size} bytes", {"Content-Range": f"bytes */{size}"}
        )
    return start, end


async def get_media(request: Request, node: Node) -> Response:
    """``GET /v1/media/{blob}``: the file, decrypted as it streams out."""
    record = _record(request, node)
    if record.state not in ("local", "ready"):
        detail = record.detail or f"the file is {record.state}"
        raise RequestError(409, "not_ready", f"{detail}; POST /v1/media/{{id}}/download fetches it")
    inline = record.mime in INLINE_TYPES
    if inline and record.mime.startswith("image/") and record.size:
        # A picture from a peer may be a decompression bomb: inline only if sane.
        from p2pdm.node.images import shows_safely  # the photo code: on first use

        head = b"".join(node.media.read_plain(record, 0, min(record.size, IMAGE_HEAD_BYTES)))
        inline = shows_safely(head)
    headers = {
        **SAFE_HEADERS,
        "Content-Disposition": _disposition(record, inline),
        "Accept-Ranges": "bytes",
    }
    span = _range(request.headers.get("range"), record.size)
    start, end = span if span is not None else (0, record.size)
    headers["Content-Length"] = str(end - start)
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{record.size}"

    async def body() -> AsyncIterator[bytes]:
        for piece in node.media.read_plain(record, start, end):
            yield piece

    return StreamingResponse(
        body(),
        status_code=206 if span is not None else 200,
        media_type=record.mime if inline else "application/octet-stream",
        headers=headers,
    )


async def get_thumbnail(request: Request, node: Node) -> Response:
    """``GET /v1/media/{blob}/thumbnail``: the small JPEG its message carried."""
    record = _record(request, node)
    if record.thumbnail is None:
        raise NotFound(f"file {record.blob_id.hex()} has no thumbnail")
    return Response(record.thumbnail, media_type="image/jpeg", headers=dict(SAFE_HEADERS))


async def download_media(request: Request, node: Node) -> Response:
    """``POST /v1/media/{blob}/download``: fetch a file that waits to be asked for."""
    record = node.media.want(_record(request, node).blob_id)
    return JSONResponse(
        {
            "id": record.blob_id.hex(),
            "state": record.state,
            "progress": record.have,
            "detail": record.detail,
        },
        status_code=202,
    )
