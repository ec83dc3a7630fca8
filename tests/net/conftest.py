"""Shared by the network tests: test records signed by the peer their key names, in a
namespace of their own, and the bounds of waits and reads."""

from __future__ import annotations

from collections.abc import Callable

from p2pdm.core.identity import Identity, PeerId, verify
from p2pdm.errors import SchemaError
from p2pdm.net import Host

NAMESPACE = "p2pdmtest"
#: Longest one DHT or dial step may take on loopback.
TIMEOUT = 5.0
#: Read cap of the echo tests' frames: more than any payload they send.
CAP = 1 << 16


# A record signed by the peer its key names: seq (8 bytes) | signature | payload.
def record_key(peer: PeerId) -> str:
    return f"/{NAMESPACE}/{peer}"


def make_record(identity: Identity, seq: int, payload: bytes) -> bytes:
    key = record_key(identity.peer_id).encode()
    seq_bytes = seq.to_bytes(8, "big")
    return seq_bytes + identity.sign("test-record", key + seq_bytes + payload) + payload


def validate(key: bytes, value: bytes) -> None:
    if len(value) < 72:
        raise SchemaError("record too short")
    peer = PeerId.parse(key.decode().split("/")[2])
    verify(peer, "test-record", key + value[:8] + value[72:], value[8:72])


def select(key: bytes, values: list[bytes]) -> int:
    return max(range(len(values)), key=lambda i: int.from_bytes(values[i][:8], "big"))


def register(hosts: list[Host], check: Callable[[bytes, bytes], None] = validate) -> None:
    for host in hosts:
        host.register_record_namespace(NAMESPACE, check, select)
