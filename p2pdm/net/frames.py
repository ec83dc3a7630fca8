"""Length-prefixed frames, the way libp2p protocols delimit messages.

How this works: a frame is an unsigned varint (LEB128, at most 9 bytes, the
shortest encoding only, as the multiformats unsigned-varint spec demands)
giving the payload length, then the payload. :class:`FrameDecoder` is
sans-I/O: bytes in, complete payloads out. It checks the announced length
against its cap as soon as the length prefix is complete, *before* it keeps
any payload byte, so a peer that announces a 4 GiB frame costs us the few
bytes of its prefix and nothing more.

No trio, no libp2p here; :mod:`p2pdm.net.stream` puts this on a stream.
"""

from __future__ import annotations

from typing import Final

from p2pdm.errors import FrameTooLarge, WireError
from p2pdm.limits import MAX_FRAME_BYTES

__all__ = ["MAX_VARINT_BYTES", "FrameDecoder", "encode_frame", "encode_varint"]

#: The unsigned-varint spec caps a varint at 9 bytes (63 bits); anything
#: longer is malformed, whatever the cap.
MAX_VARINT_BYTES: Final = 9
_MAX_VARINT_VALUE: Final = (1 << 63) - 1


def encode_varint(value: int) -> bytes:
    """The shortest unsigned-varint encoding of ``value``; raises ValueError if out of range."""
    if not 0 <= value <= _MAX_VARINT_VALUE:
        raise ValueError("an unsigned varint holds 0 .. 2**63-1")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_frame(payload: bytes) -> bytes:
    """``payload`` behind its unsigned-varint length prefix."""
    return encode_varint(len(payload)) + payload


class FrameDecoder:
    """Turns a byte stream into frames; refuses frames over ``max_frame_bytes``.

    :meth:`feed` gives every frame the new bytes complete; :meth:`next_frame`
    takes at most one, with a cap for that frame only, so a reader can use a
    small cap for a control frame and a larger one for the next data frame.
    Bytes past the frame returned stay unexamined until they are asked for.
    Errors (:class:`FrameTooLarge`, :class:`WireError` for a malformed
    prefix) leave the decoder unusable: the stream they came from is out of
    sync and must be dropped.
    """

    __slots__ = (
        "_failed",
        "_length",
        "_payload",
        "_pending",
        "_prefix_bytes",
        "_prefix_value",
        "max_frame_bytes",
    )

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 0:
            raise ValueError("max_frame_bytes must not be negative")
        self.max_frame_bytes = max_frame_bytes
        self._pending = memoryview(b"")  # received, not yet examined
        self._prefix_bytes = 0  # length-prefix bytes of the current frame seen so far
        self._prefix_value = 0
        self._length: int | None = None  # announced length of the current frame
        self._payload = bytearray()  # payload of the current frame so far
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes held that are not yet part of a returned frame."""
        return self._prefix_bytes + len(self._payload) + len(self._pending)

    @property
    def missing(self) -> int:
        """Bytes still to come of the frame whose length is known (its cap
        already checked); 0 while its prefix is not complete."""
        if self._length is None:
            return 0
        return max(0, self._length - len(self._payload) - len(self._pending))

    @property
    def in_frame(self) -> bool:
        """True when part of a frame (prefix or payload) has arrived but not all of it."""
        return self.buffered > 0 or self._length is not None

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every frame now complete. Raises FrameTooLarge or WireError."""
        frames = []
        frame = self.next_frame(data)
        while frame is not None:
            frames.append(frame)
            frame = self.next_frame()
        return frames

    def next_frame(self, data: bytes = b"", max_bytes: int | None = None) -> bytes | None:
        """Add ``data``; return the next complete frame, if any.

        ``max_bytes`` caps this frame (default: ``max_frame_bytes``). Raises
        :class:`FrameTooLarge` as soon as a prefix announces more, and
        :class:`WireError` for a malformed prefix.
        """
        if self._failed:
            raise WireError("frame decoder already failed on this stream")
        cap = self.max_frame_bytes if max_bytes is None else max_bytes
        if data:
            if self._pending:
                self._pending = memoryview(self._pending.tobytes() + data)
            else:
                self._pending = memoryview(bytes(data))
        try:
            if self._length is None:
                self._length = self._take_prefix(cap)
                if self._length is None:
                    return None
            if self._length > cap:
                raise FrameTooLarge(f"frame of {self._length} bytes, cap {cap}")
        except WireError:
            self._failed = True
            self._pending = memoryview(b"")
            self._payload.clear()
            raise
        return self._take_payload(self._length)

    def _take_prefix(self, cap: int) -> int | None:
        """Consume length-prefix bytes; the length once complete, else None."""
        pending = self._pending
        used = 0
        value = self._prefix_value
        count = self._prefix_bytes
        try:
            while used < len(pending):
                byte = pending[used]
                used += 1
                value |= (byte & 0x7F) << (7 * count)
                count += 1
                if value > cap:
                    raise FrameTooLarge(f"frame of at least {value} bytes, cap {cap}")
                if not byte & 0x80:
                    if byte == 0 and count > 1:
                        raise WireError("frame length is not minimally encoded")
                    self._prefix_value = self._prefix_bytes = 0
                    return value
                if count >= MAX_VARINT_BYTES:
                    raise WireError(f"frame length prefix longer than {MAX_VARINT_BYTES} bytes")
            self._prefix_value, self._prefix_bytes = value, count
            return None
        finally:
            self._pending = pending[used:]

    def _take_payload(self, length: int) -> bytes | None:
        pending = self._pending
        if not self._payload and len(pending) >= length:
            self._pending = pending[length:]
            self._length = None
            return pending[:length].tobytes()
        take = pending[: length - len(self._payload)]
        self._payload += take
        self._pending = pending[len(take) :]
        if len(self._payload) < length:
            return None
        frame = bytes(self._payload)
        self._payload.clear()
        self._length = None
        return frame
