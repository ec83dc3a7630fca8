"""The profile and the handle directory over the local API."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

import pytest
import trio
from PIL import Image

from p2pdm.core.profile import Profile
from p2pdm.limits import MAX_AVATAR_BYTES
from tests.api.conftest import assert_error, check_documented
from tests.conftest import Api, node


def picture(size: tuple[int, int] = (800, 600), fmt: str = "JPEG", **save: object) -> bytes:
    image = Image.new("RGB", size, (200, 40, 90))
    for x in range(0, size[0], 9):
        image.putpixel((x, x % size[1]), (x % 256, 255 - x % 256, 30))
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_no_profile_until_one_is_set(alice: Api) -> None:
    shown = (await alice.call("GET", "/v1/profile")).json()
    assert shown["published"] is False
    assert shown["handle"] == "" and shown["avatar"] is None
    assert alice.node.profiles.current() is None


async def test_profile_and_avatar_round_trip_without_metadata(alice: Api) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # camera maker
    exif[0x0131] = "GPS-leaking-app"
    photo = picture(exif=exif.tobytes(), comment=b"where I live")
    assert b"SecretCam" in photo
    response = await alice.call(
        "PATCH",
        "/v1/profile",
        json={"handle": "@Alice.K", "name": " Alice K ", "bio": "hi", "avatar": b64(photo)},
    )
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["published"] is True
    assert (shown["handle"], shown["name"], shown["bio"]) == ("alice.k", "Alice K", "hi")
    assert shown["avatar_type"] == "image/webp"
    avatar = base64.b64decode(shown["avatar"])
    assert len(avatar) <= MAX_AVATAR_BYTES
    assert b"SecretCam" not in avatar and b"GPS" not in avatar and b"where I" not in avatar
    with Image.open(io.BytesIO(avatar)) as image:
        assert image.format == "WEBP" and max(image.size) <= 256
        assert "exif" not in image.info and "xmp" not in image.info
    assert (await alice.call("GET", "/v1/profile")).json() == shown
    assert alice.node.profiles.current() == Profile("Alice K", "alice.k", "hi", avatar)

    # One field at a time; '' clears it.
    cleared = (await alice.call("PATCH", "/v1/profile", json={"avatar": "", "bio": ""})).json()
    assert cleared["avatar"] is None and cleared["bio"] == "" and cleared["handle"] == "alice.k"
    assert (await alice.call("DELETE", "/v1/profile")).status_code == 204
    assert (await alice.call("GET", "/v1/profile")).json()["published"] is False


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"handle": "\u0430lice"}, "U+0430"),  # a Cyrillic look-alike
        ({"handle": "AL\u0130CE"}, "U+0307"),
        ({"handle": "al"}, "3 to 30"),
        ({"bio": "x" * 161}, "bio"),
        ({"avatar": "not base64!"}, "base64"),
        ({"avatar": b64(b"GIF89a but not really")}, "readable"),
    ],
)
async def test_refused_values_change_nothing(alice: Api, body: dict[str, str], says: str) -> None:
    await alice.call("PATCH", "/v1/profile", json={"name": "Alice"})
    response = await alice.call("PATCH", "/v1/profile", json={**body, "name": "Mallory"})
    assert says in assert_error(response, 422, "profile_refused")
    assert alice.node.profiles.current() == Profile(name="Alice")


def bomb(side: int) -> bytes:
    """A 1-bit PNG of side x side pixels: a few kilobytes that claim a huge canvas."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


async def test_an_avatar_bomb_is_refused_before_decoding(alice: Api) -> None:
    # 100 million pixels in 12 KiB: over Pillow's own bomb limit.
    huge = bomb(10_000)
    assert len(huge) < 20_000
    response = await alice.call("PATCH", "/v1/profile", json={"avatar": b64(huge)})
    assert "decompression bomb" in assert_error(response, 422, "profile_refused")
    # 25 million pixels: under Pillow's limit, over ours.
    response = await alice.call("PATCH", "/v1/profile", json={"avatar": b64(bomb(5000))})
    assert "5000 x 5000 pixels" in assert_error(response, 422, "profile_refused")
    assert alice.node.profiles.current() is None


async def test_a_lookup_off_the_network_is_a_clear_refusal(
    alice: Api, caplog: pytest.LogCaptureFixture
) -> None:
    response = await alice.call("GET", "/v1/directory", params={"handle": "alice"})
    await check_documented(alice, response, "GET", "/v1/directory")
    assert "not on the network" in assert_error(response, 503, "not_connected")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # not a fault
    response = await alice.call("GET", "/v1/directory", params={"handle": "\u0430lice"})
    assert "U+0430" in assert_error(response, 422, "profile_refused")
    assert_error(await alice.call("GET", "/v1/directory"), 400)


@pytest.mark.net
async def test_find_a_handle_across_nodes(tmp_path: Path) -> None:
    """Bob sets a handle through his API; Alice finds him through hers."""
    async with node(tmp_path, "bob") as b, node(tmp_path, "alice", b.running) as a:
        await b.call("PATCH", "/v1/profile", json={"handle": "bob.k", "name": "Bob K"})
        with trio.fail_after(20):
            while True:
                found = await a.call("GET", "/v1/directory", params={"handle": "BOB.K"})
                if found["claimants"]:
                    break
                await trio.sleep(0.2)
        assert found["handle"] == "bob.k"
        [bob] = found["claimants"]
        assert (bob["peer_id"], bob["name"], bob["relation"]) == (b.id, "Bob K", "stranger")
        assert bob["fingerprint"] == (await b.call("GET", "/v1/profile"))["fingerprint"]
        # Sending to a claimant found is sending to a stranger: a message request.
        await a.call("POST", "/v1/contacts", json={"peer_id": bob["peer_id"], "name": "bob"})
        sent = await a.call("POST", "/v1/messages", json={"to": "bob", "text": "is it you?"})
        assert sent["status"] == "queued"
        with trio.fail_after(20):
            while not b.running.node.conversations():  # noqa: ASYNC110
                await trio.sleep(0.1)
        assert b.running.node.conversations()[0].request is True
