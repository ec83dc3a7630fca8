"""Node records: the optional relayed addresses field."""

from __future__ import annotations

import pytest

from p2pdm.core import cbor, records
from p2pdm.core.identity import Identity
from p2pdm.core.prekeys import OwnPrekeys
from p2pdm.errors import SchemaError

ALICE = Identity(bytes([1]) * 32)
RELAY = Identity(bytes([2]) * 32).peer_id


def record(relays: tuple[str, ...]) -> records.NodeRecord:
    bundle = OwnPrekeys.create(ALICE, 0).bundle(0)
    return records.NodeRecord(ALICE.peer_id, 5, bundle, (), relays=relays)


def circuit(peer: object = ALICE.peer_id) -> str:
    return f"/ip4/100.64.1.1/tcp/4001/p2p/{RELAY}/p2p-circuit/p2p/{peer}"


def test_relays_round_trip_and_are_left_out_when_empty() -> None:
    with_relays = record((circuit(),))
    decoded = records.validate(records.record_key(ALICE.peer_id), with_relays.sign(ALICE))
    assert decoded.relays == (circuit(),)
    plain = record(()).sign(ALICE)
    assert "relays" not in cbor.decode_map(plain, 1 << 16, "record").raw()
    assert records.NodeRecord.decode(plain).relays == ()


def test_a_relayed_address_of_another_peer_is_refused() -> None:
    other = Identity(bytes([3]) * 32).peer_id
    with pytest.raises(SchemaError, match="circuit addresses of its peer"):
        records.NodeRecord.decode(record((circuit(other),)).sign(ALICE))


def test_too_many_relayed_addresses_are_refused() -> None:
    many = tuple(
        circuit().replace("4001", str(4001 + i)) for i in range(records.MAX_RELAY_ADDRS + 1)
    )
    with pytest.raises(SchemaError):
        records.NodeRecord.decode(record(many).sign(ALICE))
