"""Stream framing, deadlines and error handling over an in-memory byte stream."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from p2pdm.core.identity import Identity
from p2pdm.errors import FrameTooLarge, PeerUnreachable, ProtocolViolation, WireError
from p2pdm.net.frames import encode_frame, encode_varint
from p2pdm.net.limits import MAX_WRITE_FRAME_BYTES, READ_CHUNK_BYTES
from p2pdm.net.stream import Stream

PEER = Identity(b"\x07" * 32).peer_id


class RecordingRaw:
    """A RawStream over a trio stream that records what the Stream asked of it."""

    def __init__(self, stream: trio.abc.HalfCloseableStream) -> None:
        self.stream = stream
        self.calls: list[str] = []

    async def receive_some(self, max_bytes: int) -> bytes:
        try:
            return bytes(await self.stream.receive_some(max_bytes))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise PeerUnreachable("gone") from exc

    async def send_all(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise PeerUnreachable("gone") from exc

    async def close_write(self) -> None:
        self.calls.append("close_write")
        await self.stream.send_eof()

    async def reset(self) -> None:
        self.calls.append("reset")
        await self.stream.aclose()

    async def close(self) -> None:
        self.calls.append("close")
        await self.stream.aclose()


def pair(
    lockstep: bool = False,
) -> tuple[Stream, RecordingRaw, trio.abc.HalfCloseableStream]:
    make = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
    ours, theirs = make()
    raw = RecordingRaw(ours)
    return Stream(raw, PEER, "/test/1"), raw, theirs


async def test_frames_both_ways_and_clean_eof() -> None:
    a_raw, b_raw = trio.testing.memory_stream_pair()
    a = Stream(RecordingRaw(a_raw), PEER, "/test/1")
    b = Stream(RecordingRaw(b_raw), PEER, "/test/1")
    await a.write_frame(b"ping", 1)
    await a.write_frame(b"", 1)
    assert await b.read_frame(100, 1) == b"ping"
    assert await b.read_frame(100, 1) == b""
    await b.write_frame(b"pong", 1)
    assert await a.read_frame(100, 1) == b"pong"
    await a.close_write()
    assert await b.read_frame(100, 1) is None
    assert await b.read_frame(100, 1) is None  # EOF is sticky


async def test_several_frames_in_one_chunk_each_get_their_own_cap() -> None:
    stream, _, peer = pair()
    await peer.send_all(encode_frame(b"a") + encode_frame(b"b" * 50) + encode_frame(b"c"))
    assert await stream.read_frame(1, 1) == b"a"
    assert await stream.read_frame(50, 1) == b"b" * 50
    assert await stream.read_frame(1, 1) == b"c"


async def test_read_deadline_resets_the_stream(autojump_clock: trio.testing.MockClock) -> None:
    stream, raw, peer = pair()
    await peer.send_all(encode_frame(b"hello")[:3])  # a frame that never completes
    with pytest.raises(PeerUnreachable, match="within 5 s"):
        await stream.read_frame(100, 5)
    assert raw.calls == ["reset"]
    with pytest.raises(trio.ClosedResourceError):
        await stream.read_frame(100, 5)


async def test_oversized_frame_is_refused_and_the_stream_reset() -> None:
    stream, raw, peer = pair()
    await peer.send_all(encode_varint(1 << 30))  # announces 1 GiB, sends nothing more
    with pytest.raises(FrameTooLarge):
        await stream.read_frame(1 << 20, 1)
    assert raw.calls == ["reset"]


async def test_malformed_prefix_is_a_wire_error() -> None:
    stream, raw, peer = pair()
    await peer.send_all(b"\x80\x00")
    with pytest.raises(WireError):
        await stream.read_frame(100, 1)
    assert raw.calls == ["reset"]


async def test_eof_inside_a_frame_is_a_protocol_violation() -> None:
    stream, raw, peer = pair()
    await peer.send_all(encode_frame(b"truncated")[:4])
    await peer.send_eof()
    with pytest.raises(ProtocolViolation):
        await stream.read_frame(100, 1)
    assert raw.calls == ["reset"]


async def test_peer_going_away_is_unreachable() -> None:
    stream, _, peer = pair()
    await peer.aclose()
    with pytest.raises(PeerUnreachable):
        await stream.write_frame(b"x", 1)


async def test_write_deadline_when_the_peer_does_not_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, raw, _peer = pair(lockstep=True)  # lockstep: send_all waits for the reader
    with pytest.raises(PeerUnreachable, match="did not take a frame"):
        await stream.write_frame(b"x" * 100, 3)
    assert raw.calls == ["reset"]


async def test_oversized_write_is_refused_before_sending() -> None:
    stream, _, peer = pair()
    with pytest.raises(FrameTooLarge):
        await stream.write_frame(b"\x00" * (MAX_WRITE_FRAME_BYTES + 1), 1)
    await stream.close_write()
    assert await peer.receive_some(10) == b""  # nothing was sent before the EOF


class CountingRaw(RecordingRaw):
    async def send_all(self, data: bytes) -> None:
        self.calls.append(f"send {len(data)}")
        await super().send_all(data)


async def test_several_frames_go_in_one_write_and_read_back_one_by_one() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    raw = CountingRaw(ours)
    a, b = Stream(raw, PEER, "/test/1"), Stream(RecordingRaw(theirs), PEER, "/test/1")
    payloads = [b"one", b"", b"x" * 300, b"four"]
    await a.write_frames(payloads, 1)
    await a.write_frames([], 1)  # nothing to send: no write at all
    assert raw.calls == [f"send {sum(len(encode_frame(p)) for p in payloads)}"]
    assert [await b.read_frame(300, 1) for _ in payloads] == payloads
    assert b.buffered_frame(300) is None


async def test_frames_written_together_are_capped_together_before_sending() -> None:
    stream, _, peer = pair()
    half = b"\x00" * (MAX_WRITE_FRAME_BYTES // 2)
    with pytest.raises(FrameTooLarge):
        await stream.write_frames([half, half], 1)  # each fits; with their prefixes they do not
    await stream.close_write()
    assert await peer.receive_some(10) == b""


async def test_frames_written_together_share_the_write_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, raw, _peer = pair(lockstep=True)
    with pytest.raises(PeerUnreachable, match="did not take a frame"):
        await stream.write_frames([b"x" * 100, b"y"], 3)
    assert raw.calls == ["reset"]
    with pytest.raises(trio.ClosedResourceError):
        await stream.write_frames([b"z"], 1)


async def test_writing_after_close_write_is_our_error() -> None:
    stream, raw, _ = pair()
    await stream.close_write()
    await stream.close_write()  # idempotent
    with pytest.raises(trio.ClosedResourceError):
        await stream.write_frame(b"late", 1)
    await stream.close()
    await stream.close()
    assert raw.calls == ["close_write", "close"]


async def test_context_manager_resets_on_error() -> None:
    stream, raw, _ = pair()
    with pytest.raises(RuntimeError):
        async with stream:
            raise RuntimeError("handler bug")
    assert raw.calls == ["reset"]


async def test_a_large_frame_is_read_in_reads_of_its_rest_never_past_it() -> None:
    # Once a frame's length is known (and within the cap) the rest is asked
    # for at once (py-libp2p's Yamux answers every read with a window
    # update); a read never asks past the frame being decoded.
    stream, raw, peer = pair()
    asked: list[int] = []
    receive = raw.receive_some

    async def recording(max_bytes: int) -> bytes:
        asked.append(max_bytes)
        return await receive(max_bytes)

    raw.receive_some = recording  # type: ignore[method-assign]
    big = bytes(range(256)) * 1024  # 256 KiB
    await peer.send_all(encode_frame(big) + encode_frame(b"next"))
    assert await stream.read_frame(len(big), 1) == big
    assert asked[0] == READ_CHUNK_BYTES  # the length is not known yet
    assert len(asked) == 2 and asked[1] == len(big) + len(encode_varint(len(big))) - asked[0]
    assert await stream.read_frame(10, 1) == b"next"
    # An announced length over the cap is refused before any larger read.
    stream, raw, peer = pair()
    asked.clear()
    receive = raw.receive_some
    raw.receive_some = recording  # type: ignore[method-assign]
    await peer.send_all(encode_varint(1 << 20))
    with pytest.raises(FrameTooLarge):
        await stream.read_frame(1000, 1)
    assert asked == [READ_CHUNK_BYTES]
