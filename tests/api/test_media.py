"""Uploading files, sending them, and serving them back safely."""

from __future__ import annotations

import io

import pillow_heif
from PIL import Image

from tests.api.conftest import check_documented
from tests.conftest import make_node, serving
from tests.media_files import bomb_png, has_gps, photo_with_gps


async def test_a_photo_loses_its_gps_tag_is_turned_upright_and_gets_a_thumbnail() -> None:
    alice = make_node("alice")
    photo = photo_with_gps(64, 32, orientation=6)
    assert has_gps(photo)
    async with serving(alice) as api:
        response = await api.call(
            "POST",
            "/v1/media?name=IMG_0001.jpg",
            content=photo,
            headers={"Content-Type": "image/jpeg"},
        )
        assert response.status_code == 201, response.text
        await check_documented(api, response, "POST", "/v1/media")
        uploaded = response.json()
        assert (uploaded["name"], uploaded["mime"]) == ("IMG_0001.jpg", "image/jpeg")
        assert (uploaded["width"], uploaded["height"]) == (32, 64)  # rotated upright
        served = await api.call("GET", f"/v1/media/{uploaded['id']}")
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/jpeg"
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["content-security-policy"] == "sandbox"
        assert served.headers["content-disposition"].startswith("inline")
        assert not has_gps(served.content)
        assert len(served.content) == uploaded["size"]
        thumb = await api.call("GET", f"/v1/media/{uploaded['id']}/thumbnail")
        assert thumb.status_code == 200 and len(thumb.content) <= 8 << 10
        assert Image.open(io.BytesIO(thumb.content)).format == "JPEG"


async def test_keeping_metadata_is_a_setting() -> None:
    alice = make_node("alice")
    alice.update_settings({"media_strip_metadata": False})
    async with serving(alice) as api:
        photo = photo_with_gps()
        uploaded = (
            await api.call(
                "POST", "/v1/media", content=photo, headers={"Content-Type": "image/jpeg"}
            )
        ).json()
        served = await api.call("GET", f"/v1/media/{uploaded['id']}")
        assert has_gps(served.content)


async def test_a_decompression_bomb_is_refused_on_upload() -> None:
    alice = make_node("alice")
    async with serving(alice) as api:
        response = await api.call(
            "POST", "/v1/media", content=bomb_png(), headers={"Content-Type": "image/png"}
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "media_refused"
        assert "decompression bomb" in response.json()["error"]["message"]
    assert alice.media.files.names() == []


async def test_hostile_html_is_served_as_a_sandboxed_attachment_with_ranges() -> None:
    alice = make_node("alice")
    page = b"<html><script>alert(document.cookie)</script></html>" * 100
    async with serving(alice) as api:
        uploaded = (
            await api.call(
                "POST",
                "/v1/media",
                params={"name": "../../evil\x1b[2J.html"},
                content=page,
                headers={"Content-Type": "text/html"},
            )
        ).json()
        assert uploaded["name"] == "evil_[2J.html"
        served = await api.call("GET", f"/v1/media/{uploaded['id']}")
        assert served.content == page
        assert served.headers["content-type"] == "application/octet-stream"
        assert served.headers["content-disposition"].startswith("attachment;")
        assert served.headers["content-security-policy"] == "sandbox"
        part = await api.call("GET", f"/v1/media/{uploaded['id']}", headers={"Range": "bytes=6-11"})
        assert part.status_code == 206 and part.content == page[6:12]
        assert part.headers["content-range"] == f"bytes 6-11/{len(page)}"
        tail = await api.call("GET", f"/v1/media/{uploaded['id']}", headers={"Range": "bytes=-5"})
        assert tail.content == page[-5:]
        beyond = await api.call(
            "GET", f"/v1/media/{uploaded['id']}", headers={"Range": f"bytes={len(page)}-"}
        )
        assert beyond.status_code == 416
        missing = await api.call("GET", "/v1/media/" + "ab" * 32)
        assert missing.status_code == 404


async def test_sending_files_and_places_through_the_api() -> None:
    alice, bob = make_node("alice"), make_node("bob")
    alice.add_contact_from_invite(bob.invite(), "bob")
    async with serving(alice) as api:
        uploaded = (
            await api.call(
                "POST",
                "/v1/media?name=a.txt",
                content=b"hello",
                headers={"Content-Type": "text/plain"},
            )
        ).json()
        body = {"to": "bob", "media": [uploaded["id"]], "text": "see this"}
        response = await api.call("POST", "/v1/messages", json=body)
        assert response.status_code == 201, response.text
        await check_documented(api, response, "POST", "/v1/messages", body)
        message = response.json()
        assert (message["kind"], message["text"]) == ("media", "see this")
        assert message["media"] == [
            {
                "id": uploaded["id"],
                "name": "a.txt",
                "mime": "text/plain",
                "size": 5,
                "state": "local",
                "progress": 1,
                "detail": "",
                "thumbnail": False,
            }
        ]
        place = {"to": "bob", "location": {"lat": 52.52, "lon": 13.4, "label": "Berlin"}}
        response = await api.call("POST", "/v1/messages", json=place)
        assert response.status_code == 201, response.text
        await check_documented(api, response, "POST", "/v1/messages", place)
        assert response.json()["location"] == {"lat": 52.52, "lon": 13.4, "label": "Berlin"}
        bad = await api.call(
            "POST", "/v1/messages", json={"to": "bob", "location": {"lat": 91, "lon": 0}}
        )
        assert bad.status_code == 400
        unknown = await api.call("POST", "/v1/messages", json={"to": "bob", "media": ["cd" * 32]})
        assert unknown.status_code == 404


async def test_a_heic_photo_goes_as_a_jpeg_without_its_gps_tag() -> None:
    pillow_heif.register_heif_opener()  # to make one here
    with Image.open(io.BytesIO(photo_with_gps(48, 24, orientation=1))) as source:
        exif = source.getexif().tobytes()
        out = io.BytesIO()
        source.save(out, "HEIF", exif=exif)
    heic = out.getvalue()
    assert has_gps_exif(heic)
    alice = make_node("alice")
    async with serving(alice) as api:
        response = await api.call(
            "POST",
            "/v1/media?name=IMG_0002.HEIC",
            content=heic,
            headers={"Content-Type": "image/heic"},
        )
        assert response.status_code == 201, response.text
        uploaded = response.json()
        assert (uploaded["name"], uploaded["mime"]) == ("IMG_0002.jpg", "image/jpeg")
        assert (uploaded["width"], uploaded["height"]) == (48, 24)
        served = await api.call("GET", f"/v1/media/{uploaded['id']}")
        assert Image.open(io.BytesIO(served.content)).format == "JPEG"
        assert not has_gps(served.content)
        thumb = await api.call("GET", f"/v1/media/{uploaded['id']}/thumbnail")
        assert thumb.status_code == 200


def has_gps_exif(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return bool(image.getexif().get_ifd(0x8825))
