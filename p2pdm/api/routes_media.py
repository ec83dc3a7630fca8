"""The route rows of files: upload, serve, thumbnail, download (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers_media import download_media, get_media, get_thumbnail, upload_media
from p2pdm.api.schema import Doc, Route, path_param, ref
from p2pdm.api.views_media import BLOB_ID_PATTERN
from p2pdm.core.model import TokenScope
from p2pdm.limits import MAX_FILE_BYTES, MAX_FILE_NAME_BYTES

__all__ = ["BLOB_PATH_RULE", "MEDIA_ROUTES"]

#: What the ``blob`` path parameter must be, in words.
BLOB_PATH_RULE: Final = "not a file id (64 hex characters)"

_BLOB: Final = path_param(
    "blob",
    {"type": "string", "pattern": BLOB_ID_PATTERN},
    "the file's id (64 hex characters), from an upload or a message's 'media'",
)
_BINARY: Final = {"type": "string", "format": "binary"}
_NOT_HERE: Final = {"404": "no such file, or not one this token may see"}
_STATE: Final = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": BLOB_ID_PATTERN},
        "state": {"type": "string"},
        "progress": {"type": "integer", "minimum": 0},
        "detail": {"type": "string"},
    },
    "required": ["id", "state", "progress", "detail"],
    "additionalProperties": False,
}

MEDIA_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/media",
        "POST",
        upload_media,
        TokenScope.SEND,
        Doc(
            "uploadMedia",
            "Upload a file to send: the body is the file, Content-Type its type (or a "
            "multipart/form-data body whose one part is the file); "
            "photos lose their metadata (setting media_strip_metadata) and get a thumbnail",
            ("201", ref("Uploaded"), "the file, sealed and stored; send it with POST /v1/messages"),
            {
                "413": f"the file is over {MAX_FILE_BYTES >> 20} MiB",
                "400": "a multipart body that is malformed or holds anything but one file part",
                "422": "a photo that is a decompression bomb or does not decode",
            },
            parameters=(
                {
                    "name": "name",
                    "in": "query",
                    "required": False,
                    "description": "the file's name (made safe: no directories, no control "
                    "characters)",
                    "schema": {"type": "string", "maxLength": MAX_FILE_NAME_BYTES},
                },
            ),
            body=_BINARY,
            # Any Content-Type is taken (it is the file's type); the document names one.
            body_media_type="application/octet-stream",
        ),
    ),
    Route(
        "/v1/media/{blob}",
        "GET",
        get_media,
        TokenScope.READ,
        Doc(
            "getMedia",
            "A file, decrypted as it streams; one 'Range: bytes=' range is answered 206. "
            "Only pictures, sound and video are served inline; the rest as attachments, "
            "always with nosniff and a sandboxing Content-Security-Policy",
            ("200", _BINARY, "the file"),
            {
                **_NOT_HERE,
                "409": "the file is not here yet (pending, fetching or failed)",
                "416": "a range outside the file",
            },
            parameters=(_BLOB,),
            also={"206": (_BINARY, "the range asked for")},
            ok_media_type="*/*",
        ),
    ),
    Route(
        "/v1/media/{blob}/thumbnail",
        "GET",
        get_thumbnail,
        TokenScope.READ,
        Doc(
            "getMediaThumbnail",
            "The small JPEG a photo's or video's message carried",
            ("200", _BINARY, "the thumbnail"),
            {"404": "no such file, or it has no thumbnail"},
            parameters=(_BLOB,),
            ok_media_type="image/jpeg",
        ),
    ),
    Route(
        "/v1/media/{blob}/download",
        "POST",
        download_media,
        TokenScope.SEND,
        Doc(
            "downloadMedia",
            "Fetch a file that waits to be asked for (over the auto-download limit, "
            "from a message request, or failed); media.* events follow its progress",
            ("202", _STATE, "the file's state now"),
            _NOT_HERE,
            parameters=(_BLOB,),
        ),
    ),
)
