"""``POST /v1/media`` with a ``multipart/form-data`` body (what an HTML form or
``curl -F file=@photo.jpg`` sends): its one file part streams into an upload.

How this works: python-multipart's streaming parser is fed the request body
as it arrives; its callbacks collect the headers of each part (bounded by
the parser's own caps) and, from the end of the file part's headers, hand
its bytes straight to :class:`~p2pdm.node.media.Upload`, which seals them to
disk and enforces the size caps as they stream. Nothing holds the whole
file. A body with no file part, a second part, or a part that is not a file
is refused with 400, and what was written is dropped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Final

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from p2pdm.api.payload import RequestError, bad_request
from p2pdm.node.media import MediaLibrary, Upload

__all__ = ["MAX_PART_HEADERS", "MAX_PART_HEADER_BYTES", "read_multipart"]

#: Headers of a part: Content-Disposition and Content-Type, and a few a
#: client adds; more is not a file upload.
MAX_PART_HEADERS: Final = 8
#: Longest header line of a part (a file name is at most 255 bytes of
#: UTF-8, percent-encoded at worst three times as long).
MAX_PART_HEADER_BYTES: Final = 2048


class _FilePart:
    """The callbacks of one multipart body: the single file part into an upload."""

    def __init__(self, library: MediaLibrary, name: str) -> None:
        self.library = library
        self.name = name
        self.upload: Upload | None = None
        self.parts = 0
        self.ended = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, bytes] = {}

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > 1:
            raise bad_request("a multipart upload carries exactly one part: the file")
        self._headers = {}

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def header_end(self) -> None:
        self._headers[self._field.decode("latin-1").strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition", b""))
        if disposition != b"form-data" or b"filename" not in options:
            raise bad_request("the multipart part must be a file (Content-Disposition: filename)")
        filename = options[b"filename"].decode("utf-8", "replace")
        mime, _ = parse_options_header(
            self._headers.get("content-type", b"application/octet-stream")
        )
        self.upload = self.library.upload(
            mime.decode("latin-1") or "application/octet-stream", self.name or filename
        )

    def part_data(self, data: bytes, start: int, end: int) -> None:
        assert self.upload is not None  # the parser gives data only after the headers
        if end > start:
            self.upload.write(data[start:end])

    def end(self) -> None:
        self.ended = True

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_end": self.end,
        }


async def read_multipart(
    library: MediaLibrary, content_type: str, name: str, body: AsyncGenerator[bytes, None]
) -> Upload:
    """The upload of the one file part of a ``multipart/form-data`` ``body``, all
    written (the caller finishes it); ``name`` (the ``?name=`` parameter) wins
    over the part's file name. Raises RequestError 400 for a malformed body
    and MediaRefused past the size caps; nothing is kept then."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise RequestError(
            415, "unsupported_media_type", "send multipart/form-data with a boundary, or the file"
        )
    part = _FilePart(library, name)
    parser = MultipartParser(
        boundary,
        part.callbacks(),  # type: ignore[arg-type]
        max_header_count=MAX_PART_HEADERS,
        max_header_size=MAX_PART_HEADER_BYTES,
    )
    try:
        async with aclosing(body) as pieces:  # closed at once if we stop early
            async for piece in pieces:
                if piece:
                    parser.write(piece)
        parser.finalize()
        if not part.ended or part.upload is None:
            raise bad_request("the multipart body ended before its file did")
    except MultipartParseError as exc:
        if part.upload is not None:
            part.upload.abort()
        raise bad_request(f"not a multipart/form-data body: {exc}") from None
    except BaseException:
        if part.upload is not None:
            part.upload.abort()
        raise
    return part.upload
