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
from typing import Any, Final
from urllib.parse import quote, unquote

import httpx

from p2pdm.client._http import APIError

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

    _http: httpx.Client
    address: str

    def _answer_json(self, response: httpx.Response) -> Any:
        if not response.is_success:
            raise self._error(response)  # type: ignore[attr-defined]
        return response.json()

    def upload_file(self, path: str | Path, mime: str | None = None) -> dict[str, Any]:
        """Upload a file to send; returns ``{"id", "name", "mime", "size", ...}``."""
        path = Path(path)
        mime = mime or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as file:
            response = self._http.post(
                "/v1/media",
                params={"name": path.name},
                content=iter(lambda: file.read(_READ_BYTES), b""),
                headers={"Content-Type": mime},
            )
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
        response = self._http.get(f"/v1/groups/{quote(group, safe='')}/photo")
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
            with self._http.stream("GET", f"/v1/media/{blob_id}") as response:
                if response.status_code == 200:
                    name = response.headers.get("content-disposition", "")
                    target = _unique(Path(directory) / _filename(name, blob_id))
                    with target.open("xb") as out:
                        for piece in response.iter_bytes(_READ_BYTES):
                            out.write(piece)
                    return target
                response.read()
                if response.status_code != 409:
                    raise self._error(response)  # type: ignore[attr-defined]
            state = self.fetch_media(blob_id)  # type: ignore[attr-defined]
            if state["state"] == "failed":
                raise APIError(409, "failed", state["detail"] or "the file could not be fetched")
            if on_progress is not None:
                on_progress(state["progress"] * CHUNK_BYTES)
            if time.monotonic() > deadline:
                raise APIError(0, "timeout", f"file {blob_id} did not arrive in {wait_s:g} s")
            time.sleep(_POLL_S)


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
