"""Shared by the network tests: test records signed by the peer their key names, in a
namespace of their own, and the bounds of waits and reads."""

from __future__ import annotations

from collections.abc import Callable

# The flood helpers drive a libp2p DHT directly, message by message.
from libp2p.peer.id import ID

from p2pdm.core import records
from p2pdm.core.identity import Identity, PeerId, verify
from p2pdm.core.session import OwnPrekeys
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


# --- DHT floods: valid p2pdm records of fresh identities, one PUT_VALUE each ---


def _validate_node_record(key: bytes, value: bytes) -> None:
    records.validate(key.decode(), value)


def _select_node_record(key: bytes, values: list[bytes]) -> int:
    return records.select(key.decode(), values)


def register_node_records(hosts: list[Host]) -> None:
    for host in hosts:
        host.register_record_namespace(
            records.RECORD_NAMESPACE, _validate_node_record, _select_node_record
        )


def node_record(identity: Identity, seq: int = 1) -> tuple[str, bytes]:
    """A valid p2pdm record of ``identity``: its key and signed value."""
    bundle = OwnPrekeys.create(identity, 0).bundle(0)
    value = records.NodeRecord(identity.peer_id, seq, bundle).sign(identity)
    return records.record_key(identity.peer_id), value


def fresh_records(count: int, tag: int) -> list[tuple[str, bytes]]:
    return [
        node_record(Identity(bytes([tag, i % 256, i // 256]) + bytes(29))) for i in range(count)
    ]


async def flood_records(attacker: Host, victim: Host, batch: list[tuple[str, bytes]]) -> int:
    """Send each record to ``victim`` in its own PUT_VALUE; how many it acknowledged."""
    await attacker.connect(victim.peer_id, victim.listen_addrs())
    store = attacker._dht.value_store
    target = ID(victim.peer_id.raw)
    stored = 0
    for key, value in batch:
        stored += await store._store_at_peer(target, key.encode(), value)
    return stored


def held(host: Host, key: str) -> bytes | None:
    record = host._dht.value_store.get(key.encode())
    return None if record is None else bytes(record.value)


async def served_by(reader: Host, holder: Host, key: str) -> bytes | None:
    """What ``holder`` answers ``reader``'s GET_VALUE for ``key`` with."""
    answer = await reader._dht.value_store._get_from_peer(ID(holder.peer_id.raw), key.encode())
    assert answer is None or isinstance(answer, bytes)
    return answer
