"""``POST /v1/media`` with a multipart/form-data body, as an HTML form or
``curl -F file=@photo.jpg`` sends it: streamed, capped, one file part."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

import p2pdm.node.media as media_module
from tests.conftest import TOKEN, make_node, serving
from tests.media_files import has_gps, photo_with_gps

BOUNDARY = "p2pdm-test-boundary"


def multipart(*parts: tuple[str, bytes]) -> bytes:
    """A multipart/form-data body of ``(headers, data)`` parts."""
    out = b""
    for headers, data in parts:
        out += f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def file_part(
    data: bytes, name: str = "notes.bin", mime: str = "application/octet-stream"
) -> tuple[str, bytes]:
    headers = (
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\nContent-Type: {mime}'
    )
    return headers, data


async def in_pieces(body: bytes, size: int = 7919) -> AsyncIterator[bytes]:
    """The body as a stream of odd-sized pieces (boundaries fall anywhere)."""
    for at in range(0, len(body), size):
        yield body[at : at + size]


FORM: dict[str, str] = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def test_a_form_upload_strips_a_photo_and_streams_a_large_file() -> None:
    alice = make_node("alice")
    async with serving(alice) as api:
        # What httpx sends for files=: the photo keeps its name, loses its GPS tag.
        photo = photo_with_gps()
        response = await api.http.post(
            "/v1/media", files={"file": ("IMG_1.jpg", photo, "image/jpeg")}
        )
        assert response.status_code == 201, response.text
        uploaded = response.json()
        assert (uploaded["name"], uploaded["mime"]) == ("IMG_1.jpg", "image/jpeg")
        served = await api.call("GET", f"/v1/media/{uploaded['id']}")
        assert served.status_code == 200 and not has_gps(served.content)

        # 3 MiB in odd pieces: every byte arrives, named by ?name= over the part's.
        data = os.urandom(3 << 20)
        body = multipart(file_part(data, "ignored.bin"))
        response = await api.http.post(
            "/v1/media", params={"name": "report.bin"}, content=in_pieces(body), headers=FORM
        )
        assert response.status_code == 201, response.text
        uploaded = response.json()
        assert (uploaded["name"], uploaded["size"]) == ("report.bin", len(data))
        served = await api.call("GET", f"/v1/media/{uploaded['id']}")
        assert hashlib.sha256(served.content).digest() == hashlib.sha256(data).digest()


async def test_the_size_cap_applies_while_a_form_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_module, "MAX_FILE_BYTES", 1 << 20)
    alice = make_node("alice")
    async with serving(alice) as api:
        # The server reads it off the socket piece by piece and stops at the cap
        # (a client in a thread: the server answers before it has sent it all).
        body = multipart(file_part(os.urandom(2 << 20)))
        headers = {**FORM, "Authorization": f"Bearer {TOKEN}"}
        response = await trio.to_thread.run_sync(
            lambda: httpx.post(f"{api.base}/v1/media", content=body, headers=headers)
        )
        assert response.status_code == 422, response.text
        assert "at most 1 MiB" in response.json()["error"]["message"]
    assert alice.media.files.names() == []  # nothing of it kept


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (multipart(file_part(b"a"), file_part(b"b")), "exactly one part"),
        (multipart(('Content-Disposition: form-data; name="caption"', b"hi")), "must be a file"),
        (multipart(file_part(b"x" * 1000))[:-40], "ended before"),
        (b"this is not multipart at all", "not a multipart"),
    ],
)
async def test_a_form_that_is_not_one_file_is_refused(body: bytes, why: str) -> None:
    alice = make_node("alice")
    async with serving(alice) as api:
        response = await api.http.post("/v1/media", content=body, headers=FORM)
        assert response.status_code == 400, response.text
        assert why in response.json()["error"]["message"]
        no_boundary = await api.http.post(
            "/v1/media", content=body, headers={"Content-Type": "multipart/form-data"}
        )
        assert no_boundary.status_code == 415
    assert alice.media.files.names() == []
