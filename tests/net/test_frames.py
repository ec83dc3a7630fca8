"""Length-prefixed frames: round trips, caps before buffering, malformed prefixes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.errors import FrameTooLarge, WireError
from p2pdm.net.frames import MAX_VARINT_BYTES, FrameDecoder, encode_frame, encode_varint


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")],
)
def test_varint_vectors(value: int, encoded: bytes) -> None:
    # The unsigned-varint spec's own examples.
    assert encode_varint(value) == encoded


def test_varint_range() -> None:
    assert len(encode_varint((1 << 63) - 1)) == MAX_VARINT_BYTES
    with pytest.raises(ValueError):
        encode_varint(1 << 63)
    with pytest.raises(ValueError):
        encode_varint(-1)


@given(
    st.lists(st.binary(max_size=300), max_size=8),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
)
def test_round_trip_in_any_split(payloads: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder(max_frame_bytes=300)
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        out += decoder.feed(wire[pos : pos + step])
        pos += step
        i += 1
    assert out == payloads
    assert not decoder.in_frame
    assert decoder.buffered == 0


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    try:
        frames = decoder.feed(data)
    except WireError:
        return  # FrameTooLarge is a WireError too
    assert all(len(f) <= 100 for f in frames)
    assert decoder.buffered <= 100 + MAX_VARINT_BYTES


def test_oversized_announcement_refused_before_payload_is_kept() -> None:
    decoder = FrameDecoder(max_frame_bytes=1 << 20)
    header = encode_varint((1 << 40) - 1)  # "a terabyte follows"
    with pytest.raises(FrameTooLarge):
        decoder.feed(header[:3])  # refused as soon as the prefix exceeds the cap
    assert decoder.buffered == 0
    with pytest.raises(WireError):  # the stream is out of sync: the decoder stays failed
        decoder.feed(b"\x00")


def test_frame_just_under_and_over_the_cap() -> None:
    assert FrameDecoder(max_frame_bytes=5).feed(encode_frame(b"12345")) == [b"12345"]
    with pytest.raises(FrameTooLarge):
        FrameDecoder(max_frame_bytes=5).feed(encode_varint(6))


def test_payload_is_not_buffered_past_a_rejected_prefix() -> None:
    decoder = FrameDecoder(max_frame_bytes=10)
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_frame(b"x" * 11) + b"y" * 100_000)
    assert decoder.buffered == 0


def test_over_long_varint_is_rejected() -> None:
    decoder = FrameDecoder(max_frame_bytes=(1 << 63) - 1)
    with pytest.raises(WireError, match="longer than"):
        decoder.feed(b"\x80" * MAX_VARINT_BYTES)


def test_non_minimal_varint_is_rejected() -> None:
    with pytest.raises(WireError, match="minimally"):
        FrameDecoder().feed(b"\x81\x00" + b"x")


def test_next_frame_applies_each_frames_own_cap() -> None:
    wire = encode_frame(b"ctl") + encode_frame(b"d" * 1000)
    decoder = FrameDecoder()
    assert decoder.next_frame(wire, max_bytes=16) == b"ctl"
    # The second frame was received in the same chunk but is judged by its own cap.
    assert decoder.next_frame(max_bytes=2000) == b"d" * 1000
    assert decoder.next_frame(max_bytes=2000) is None


def test_partial_frame_is_reported() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"hello")[:3]) == []
    assert decoder.in_frame
    assert decoder.feed(b"llo") == [b"hello"]
    assert not decoder.in_frame


def test_empty_frames() -> None:
    assert FrameDecoder().feed(encode_frame(b"") * 3) == [b"", b"", b""]
