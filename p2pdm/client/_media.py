"""Files through the blocking client: upload and send a file, save one.

These need the file's bytes rather than JSON, so they are methods of
:class:`~p2pdm.client.Client` beside the operations table. The bytes stream
both ways: a file is never read whole into memory.
"""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote

from p2pdm.client._http import APIError
from p2pdm.client._wire import TransportError, target
from p2pdm.errors import P2PDMError

if TYPE_CHECKING:
    from p2pdm.client._sync import _Answer, _Sender

__all__ = ["DOWNLOAD_WAIT_S", "MediaMethods"]

#: How long ``download`` waits for a file to arrive before it gives up.
DOWNLOAD_WAIT_S: Final = 600.0
#: Pause between looks at a file that is still being fetched.
_POLL_S: Final = 0.5
_READ_BYTES: Final = 256 << 10
#: Plaintext bytes per chunk of a file (a file's ``progress`` counts chunks).
CHUNK_BYTES: Final = 256 << 10


def _unique(path: Path) -> Path:
    """``path``, or ``name (1).ext`` and so on if it is taken."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


class MediaMethods:
    """``upload_file``, ``send_file`` and ``download`` (see the module docstring)."""

    _http: _Sender
    _timeout_s: float
    address: str

    def _answer_json(self, response: _Answer) -> Any:
        if not response.is_success:
            raise self._error(response)  # type: ignore[attr-defined]
        try:
            return response.json()
        except ValueError:
            raise APIError(
                response.status_code, "bad_response", f"{self.address} did not answer in JSON"
            ) from None

    def _failed(self, exc: TransportError) -> P2PDMError:
        return self._transport_error(exc)  # type: ignore[attr-defined,no-any-return]

    def upload_file(self, path: str | Path, mime: str | None = None) -> dict[str, Any]:
        """Upload a file to send; returns ``{"id", "name", "mime", "size", ...}``."""
        path = Path(path)
        mime = mime or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as file:
            try:
                response = self._http.request(
                    "POST",
                    target("/v1/media", {"name": path.name}),
                    timeout=self._timeout_s,
                    body=iter(lambda: file.read(_READ_BYTES), b""),
                    headers={"Content-Type": mime},
                )
            except TransportError as exc:
                raise self._failed(exc) from None
        return dict(self._answer_json(response))

    def send_file(self, to: str, path: str | Path, caption: str | None = None) -> Any:
        """Upload ``path`` and send it to ``to`` with an optional caption; returns the message."""
        uploaded = self.upload_file(path)
        return self.send_media(to, [uploaded["id"]], caption)  # type: ignore[attr-defined]

    def set_group_photo_file(self, group: str, path: str | Path) -> Any:
        """Upload the picture ``path`` and make it the group's photo (admins only);
        returns the group."""
        uploaded = self.upload_file(path)
        return self.set_group_photo(group, uploaded["id"])  # type: ignore[attr-defined]

    def group_photo_bytes(self, group: str) -> bytes:
        """The group's photo (WebP or JPEG); raises APIError 404 when it has none."""
        try:
            response = self._http.request(
                "GET", f"/v1/groups/{quote(group, safe='')}/photo", timeout=self._timeout_s
            )
        except TransportError as exc:
            raise self._failed(exc) from None
        if not response.is_success:
            raise self._error(response)  # type: ignore[attr-defined]
        return response.content

    def download(
        self,
        blob_id: str,
        directory: str | Path = ".",
        *,
        wait_s: float = DOWNLOAD_WAIT_S,
        on_progress: Callable[[int], None] | None = None,
    ) -> Path:
        """Save a message's file into ``directory`` under its (safe) name, fetching it
        first if it waits to be asked for; returns where it went. ``on_progress``
        hears the bytes here so far while it is fetched. Raises APIError if the
        file fails or does not arrive within ``wait_s``."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                saved = self._save(blob_id, Path(directory))
            except TransportError as exc:
                raise self._failed(exc) from None
            if saved is not None:
                return saved
            state = self.fetch_media(blob_id)  # type: ignore[attr-defined]
            if state["state"] == "failed":
                raise APIError(409, "failed", state["detail"] or "the file could not be fetched")
            if on_progress is not None:
                on_progress(state["progress"] * CHUNK_BYTES)
            if time.monotonic() > deadline:
                raise APIError(0, "timeout", f"file {blob_id} did not arrive in {wait_s:g} s")
            time.sleep(_POLL_S)

    def _save(self, blob_id: str, directory: Path) -> Path | None:
        """Save the file if the node has it; None if it is still to be fetched (409)."""
        url = f"/v1/media/{quote(blob_id, safe='')}"
        with self._http.stream("GET", url, timeout=self._timeout_s) as response:
            if response.status_code == 200:
                name = response.headers.get("content-disposition", "")
                path = _unique(directory / _filename(name, blob_id))
                with path.open("xb") as out:
                    for piece in response.iter_bytes(_READ_BYTES):
                        out.write(piece)
                return path
            response.read()
            if response.status_code != 409:
                raise self._error(response)  # type: ignore[attr-defined]
        return None


def _filename(disposition: str, fallback: str) -> str:
    """The file name the node gave (its ``filename*``), made safe again here."""
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename*" and value.startswith("UTF-8''"):
            name = unquote(value[7:])
            name = name.replace("\\", "/").rsplit("/", 1)[-1].lstrip(".")
            if name and all(ch.isprintable() for ch in name):
                return name
    return fallback
