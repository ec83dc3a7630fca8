"""``/p2pdm/dm/1.0.0``: direct delivery of envelopes on one long-lived stream.

How this works: the sender opens one stream per peer and keeps it. It sends
``deliver`` frames (a sequence number and one encoded envelope), up to
``DM_WINDOW`` of them unacknowledged. The receiver commits each envelope to
its store and answers with an ``ack`` frame carrying the same sequence
number and a result:

* ``ok`` — stored (or stored before: a retry after a lost ack);
* ``rejected`` — it can never be accepted (damaged, not for this node,
  expired, unknown prekey); the sender marks the message failed;
* ``retry`` — a local problem at the receiver (store busy); try later.

Frames are length-prefixed canonical CBOR maps (see ``p2pdm.net.frames``).
This module only encodes and strictly decodes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from p2pdm.core import cbor
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_CONTROL_FRAME_BYTES, MAX_FRAME_BYTES

__all__ = [
    "DM_PROTOCOL",
    "DM_WINDOW",
    "Ack",
    "AckResult",
    "Deliver",
    "decode_ack",
    "decode_deliver",
]

DM_PROTOCOL: Final = "/p2pdm/dm/1.0.0"
#: Envelopes in flight per stream before the sender waits for acks. Pipelining
#: a window is what lifts a reused stream from ~1,500 to several thousand
#: messages per second here; 64 bounds what a receiver must buffer.
DM_WINDOW: Final = 64
_MAX_SEQ: Final = (1 << 63) - 1
_MAX_DETAIL_BYTES: Final = 200

AckResult = Literal["ok", "rejected", "retry"]
_RESULTS: Final = ("ok", "rejected", "retry")


@dataclass(frozen=True, slots=True)
class Deliver:
    seq: int
    envelope: bytes

    def encode(self) -> bytes:
        return cbor.encode({"t": "deliver", "seq": self.seq, "env": self.envelope})


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    result: AckResult
    detail: str = ""

    def encode(self) -> bytes:
        return cbor.encode(
            {"t": "ack", "seq": self.seq, "result": self.result, "detail": self.detail}
        )


def decode_deliver(data: bytes) -> Deliver:
    """Raises a WireError subclass for anything but a well-formed deliver frame."""
    f = cbor.decode_map(data, MAX_FRAME_BYTES, "dm frame")
    if f.text("t", 16) != "deliver":
        raise SchemaError("dm frame: expected a 'deliver' frame")
    frame = Deliver(f.integer("seq", 0, _MAX_SEQ), f.blob("env", max_size=MAX_FRAME_BYTES))
    f.done()
    return frame


def decode_ack(data: bytes) -> Ack:
    """Raises a WireError subclass for anything but a well-formed ack frame."""
    f = cbor.decode_map(data, MAX_CONTROL_FRAME_BYTES, "dm ack")
    if f.text("t", 16) != "ack":
        raise SchemaError("dm ack: expected an 'ack' frame")
    seq = f.integer("seq", 0, _MAX_SEQ)
    result = f.text("result", 16)
    if result not in _RESULTS:
        raise SchemaError(f"dm ack: unknown result {result!r}")
    detail = f.text("detail", _MAX_DETAIL_BYTES)
    f.done()
    return Ack(
        seq, "ok" if result == "ok" else "rejected" if result == "rejected" else "retry", detail
    )
