"""Framed streams: what p2pdm protocols read and write.

How this works: a :class:`Stream` puts :mod:`p2pdm.net.frames` on top of a
:class:`RawStream` (bytes in, bytes out; the libp2p adapter in
:mod:`p2pdm.net._host`, or an in-memory fake in tests). Every read and
write runs under a deadline. Anything that leaves the byte stream in an
unknown state (a deadline passed mid-read, an oversized or malformed frame,
a frame cut short) resets the stream before the error is raised, so a
caller can never read garbage after an error.

Errors: :class:`~p2pdm.errors.FrameTooLarge` and other
:class:`~p2pdm.errors.WireError` for bad framing,
:class:`~p2pdm.errors.ProtocolViolation` for a frame cut off by EOF,
:class:`~p2pdm.errors.PeerUnreachable` when the peer reset the stream, the
connection died or a deadline passed, :class:`trio.ClosedResourceError` when
*we* already closed or reset the stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

import trio

from p2pdm.core.identity import PeerId
from p2pdm.errors import FrameTooLarge, PeerUnreachable, ProtocolViolation, WireError
from p2pdm.net.frames import FrameDecoder, encode_frame
from p2pdm.net.limits import MAX_WRITE_FRAME_BYTES, READ_CHUNK_BYTES

__all__ = ["RawStream", "Stream"]


class RawStream(Protocol):
    """A bidirectional byte stream to one peer (a libp2p stream, or a test fake)."""

    async def receive_some(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` at a clean end. Raises PeerUnreachable."""
        ...

    async def send_all(self, data: bytes) -> None:
        """Send all of ``data``. Raises PeerUnreachable."""
        ...

    async def close_write(self) -> None:
        """Half-close: the peer reads EOF; we can still read."""
        ...

    async def reset(self) -> None:
        """Abort both directions; best effort, never raises."""
        ...

    async def close(self) -> None:
        """Done with the stream: half-close if not yet, release it; never raises."""
        ...


class Stream:
    """A stream of length-prefixed frames to an authenticated peer.

    ``remote_peer`` is the PeerID the secure channel (Noise) proved; ``protocol``
    the protocol id negotiated for this stream.
    """

    __slots__ = (
        "_closed",
        "_decoder",
        "_raw",
        "_read_eof",
        "_read_lock",
        "_write_closed",
        "_write_lock",
        "protocol",
        "remote_peer",
    )

    def __init__(self, raw: RawStream, remote_peer: PeerId, protocol: str) -> None:
        self._raw = raw
        self.remote_peer = remote_peer
        self.protocol = protocol
        self._decoder = FrameDecoder()
        self._read_lock = trio.Lock()
        self._write_lock = trio.Lock()
        self._read_eof = False
        self._write_closed = False
        self._closed = False  # by us: reset, or close()

    def __repr__(self) -> str:
        return f"Stream({self.protocol} with {self.remote_peer.short()})"

    async def read_frame(self, max_bytes: int, timeout: float) -> bytes | None:  # noqa: ASYNC109
        """The next frame, or None once the peer has closed its side cleanly.

        Raises FrameTooLarge if the peer announces more than ``max_bytes``,
        WireError for a malformed prefix, ProtocolViolation for a frame cut
        short, PeerUnreachable on reset or after ``timeout`` seconds.
        """
        if self._closed:
            raise trio.ClosedResourceError("stream was closed or reset")
        async with self._read_lock:
            if self._read_eof:
                return None
            try:
                frame = self._decoder.next_frame(max_bytes=max_bytes)
                with trio.fail_after(timeout):
                    while frame is None:
                        # The rest of a frame whose length (within its cap)
                        # is known, in as few reads as the muxer has it:
                        # each read is a window update sent back.
                        want = max(READ_CHUNK_BYTES, self._decoder.missing)
                        chunk = await self._raw.receive_some(want)
                        if not chunk:
                            self._read_eof = True
                            if self._decoder.in_frame:
                                raise ProtocolViolation(
                                    f"{self.remote_peer.short()} ended the stream inside a frame"
                                )
                            return None
                        frame = self._decoder.next_frame(chunk, max_bytes)
            except trio.TooSlowError:
                await self.reset()
                raise PeerUnreachable(
                    f"no frame from {self.remote_peer.short()} within {timeout:g} s"
                ) from None
            except (WireError, ProtocolViolation):
                await self.reset()
                raise
            return frame

    def buffered_frame(self, max_bytes: int) -> bytes | None:
        """The next frame if it has fully arrived already, else None; never waits.

        Lets a reader take a burst of frames (acks) and handle them together.
        Raises like :meth:`read_frame` for a bad prefix.
        """
        if self._closed or self._read_eof or self._read_lock.locked():
            return None
        return self._decoder.next_frame(max_bytes=max_bytes)

    async def write_frame(self, payload: bytes, timeout: float) -> None:  # noqa: ASYNC109
        """Send one frame. Raises PeerUnreachable on reset or after ``timeout`` seconds.

        A payload over MAX_WRITE_FRAME_BYTES raises FrameTooLarge before anything is sent.
        """
        if self._closed or self._write_closed:
            raise trio.ClosedResourceError("stream is closed for writing")
        if len(payload) > MAX_WRITE_FRAME_BYTES:
            raise FrameTooLarge(f"frame of {len(payload)} bytes, cap {MAX_WRITE_FRAME_BYTES}")
        await self._send(encode_frame(payload), timeout)

    async def write_frames(self, payloads: Sequence[bytes], timeout: float) -> None:  # noqa: ASYNC109
        """Send several frames in one write (one muxer frame and one secure
        channel message for small ones, not one each). The peer reads the
        same frames as from :meth:`write_frame` one at a time. Raises like
        :meth:`write_frame`; each payload is capped alike, and so are all of
        them together (MAX_WRITE_FRAME_BYTES).
        """
        if self._closed or self._write_closed:
            raise trio.ClosedResourceError("stream is closed for writing")
        data = b"".join(encode_frame(payload) for payload in payloads)
        if len(data) > MAX_WRITE_FRAME_BYTES:
            raise FrameTooLarge(f"frames of {len(data)} bytes, cap {MAX_WRITE_FRAME_BYTES}")
        if data:
            await self._send(data, timeout)

    async def _send(self, data: bytes, timeout: float) -> None:  # noqa: ASYNC109
        async with self._write_lock:
            try:
                with trio.fail_after(timeout):
                    await self._raw.send_all(data)
            except trio.TooSlowError:
                await self.reset()
                raise PeerUnreachable(
                    f"{self.remote_peer.short()} did not take a frame within {timeout:g} s"
                ) from None

    async def close_write(self) -> None:
        """Tell the peer we send no more frames; reading goes on. Idempotent."""
        if self._write_closed or self._closed:
            return
        self._write_closed = True
        try:
            await self._raw.close_write()
        except PeerUnreachable:
            await self.reset()

    async def reset(self) -> None:
        """Abort the stream in both directions. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        await self._raw.reset()

    async def close(self) -> None:
        """Done with the stream: half-close our side if still open, release it. Idempotent.

        For request/reply, call :meth:`close_write` after the request and read
        the reply; ``close`` ends reading too.
        """
        if self._closed:
            return
        self._closed = self._write_closed = True
        await self._raw.close()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        else:
            with trio.CancelScope(shield=True):
                await self.reset()
