"""The media and location kinds: strict decoders, round trips, safe names."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.core import cbor
from p2pdm.core.kinds import (
    KINDS,
    LiveLocationBody,
    LocationBody,
    MediaBody,
    MediaItem,
    decode_body,
    encode_body,
)
from p2pdm.core.kinds.media import safe_mime, safe_name
from p2pdm.errors import SchemaError, WireError
from p2pdm.limits import MAX_FILE_NAME_BYTES, MAX_THUMBNAIL_BYTES

ITEM = MediaItem(
    blob_id=b"\x01" * 32,
    key=b"\x02" * 32,
    digest=b"\x03" * 32,
    size=1234,
    mime="image/jpeg",
    name="photo.jpg",
    width=640,
    height=480,
    thumbnail=b"\xff" * MAX_THUMBNAIL_BYTES,
)


def _round_trip(body: Any) -> Any:
    data = cbor.encode(encode_body(body))
    return KINDS[body.kind].decode_bytes(data)


def test_media_and_location_round_trip() -> None:
    body = MediaBody(
        (
            ITEM,
            MediaItem(
                b"\x04" * 32,
                b"\x05" * 32,
                b"\x06" * 32,
                0,
                "audio/ogg",
                "v.ogg",
                duration_ms=3000,
                waveform=bytes(64),
            ),
        ),
        "look",
    )
    assert _round_trip(body) == body
    place = LocationBody(525200000, 134000000, 20, "Berlin")
    assert _round_trip(place) == place
    assert place.lat == pytest.approx(52.52)


@pytest.mark.parametrize(
    "change",
    [
        {"blob": b"x" * 31},
        {"key": b""},
        {"size": -1},
        {"size": (100 << 20) + 1},
        {"mime": "text/html; charset=utf-8"},
        {"mime": "IMAGE/PNG"},
        {"thumb": b"x" * (MAX_THUMBNAIL_BYTES + 1)},
        {"waveform": bytes(65)},
        {"width": 0},
        {"path": "/etc/passwd"},
    ],
)
def test_bad_media_items_are_refused(change: dict[str, Any]) -> None:
    item = encode_body(MediaBody((ITEM,)))["items"][0]
    item.update(change)
    with pytest.raises(SchemaError):
        decode_body("media", cbor.Fields({"items": [item]}, "media"))


def test_a_media_message_needs_files_and_names_each_blob_once() -> None:
    with pytest.raises(SchemaError):
        decode_body("media", cbor.Fields({"items": []}, "media"))
    item = encode_body(MediaBody((ITEM,)))["items"][0]
    with pytest.raises(SchemaError, match="twice"):
        decode_body("media", cbor.Fields({"items": [item, item]}, "media"))


@pytest.mark.parametrize(
    "change", [{"lat": 90 * 10**7 + 1}, {"lon": -180 * 10**7 - 1}, {"lat": 1.5}, {"acc": -1}]
)
def test_locations_off_the_globe_are_refused(change: dict[str, Any]) -> None:
    fields = {"lat": 0, "lon": 0, **change}
    with pytest.raises(SchemaError):
        decode_body("location", cbor.Fields(fields, "location"))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_decoders(data: bytes) -> None:
    for kind in ("media", "location"):
        with contextlib.suppress(WireError):
            KINDS[kind].decode_bytes(data)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../x", "x"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/etc/passwd", "passwd"),
        ("a\x00b\nc\x1b[31m.txt", "a_b_c_[31m.txt"),
        ("evil\u202egnp.exe", "evil_gnp.exe"),
        ("...", "file"),
        ("", "file"),
        ("é" * 200, "é" * (MAX_FILE_NAME_BYTES // 2)),
    ],
)
def test_file_names_are_made_safe(name: str, safe: str) -> None:
    assert safe_name(name) == safe


@given(st.text(max_size=400))
def test_a_safe_name_is_never_a_path(name: str) -> None:
    safe = safe_name(name)
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert not safe.startswith(".") and safe
    assert len(safe.encode()) <= MAX_FILE_NAME_BYTES


def test_mime_types_are_normalised_or_replaced() -> None:
    assert safe_mime("Image/PNG; q=1") == "image/png"
    assert safe_mime("text/html<script>") == "application/octet-stream"


def test_live_location_updates_and_stops_round_trip_and_flags() -> None:
    update = LiveLocationBody(1_800_000_000, 525200000, 134000000, 15)
    assert _round_trip(update) == update
    stop = LiveLocationBody(1_800_000_000, stop=True)
    assert _round_trip(stop) == stop
    spec = KINDS["live_location"]
    # Ephemeral like typing: not shown, not stored, not from strangers.
    assert (spec.shown, spec.targets, spec.from_strangers, spec.stored) == (
        False,
        False,
        False,
        False,
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"until": 1, "stop": True, "lat": 0, "lon": 0},  # a stop with a position
        {"until": 1, "stop": False, "lat": 0, "lon": 0},  # 'stop' only as true
        {"until": 1, "lat": 0},  # no longitude
        {"lat": 0, "lon": 0},  # no end
        {"until": 1, "lat": 91 * 10**7, "lon": 0},  # off the globe
        {"until": -1, "lat": 0, "lon": 0},
        {"until": 1, "lat": 0, "lon": 0, "label": "x"},  # a live position has no label
    ],
)
def test_live_location_decoder_refuses_odd_shapes(fields: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        decode_body("live_location", cbor.Fields(fields, "live_location"))


@given(st.dictionaries(st.sampled_from(["until", "stop", "lat", "lon", "acc", "x"]), st.integers()))
def test_live_location_decoder_never_crashes(fields: dict[str, Any]) -> None:
    with contextlib.suppress(SchemaError):
        decode_body("live_location", cbor.Fields(fields, "live_location"))
