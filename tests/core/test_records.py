"""Node records: the optional relayed addresses field."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from p2pdm.core import cbor, records
from p2pdm.core.identity import Identity
from p2pdm.core.prekeys import OwnPrekeys
from p2pdm.errors import SchemaError, SignatureError, WireError

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


# --- RecordChecker: validate/select remembered by bytes -------------------------


def signed_record(seq: int, who: Identity = ALICE) -> bytes:
    bundle = OwnPrekeys.create(who, 0).bundle(0)
    return records.NodeRecord(who.peer_id, seq, bundle, ()).sign(who)


def outcome(call: Callable[..., object], *args: object) -> object:
    try:
        result = call(*args)
    except (WireError, SignatureError) as exc:
        return type(exc)
    return result.seq if isinstance(result, records.NodeRecord) else result


def test_a_checker_answers_as_validate_and_select() -> None:
    key, other_key = records.record_key(ALICE.peer_id), records.record_key(RELAY)
    good, newer = signed_record(5), signed_record(9)
    tampered = good[:-1] + bytes([good[-1] ^ 1])
    bob = signed_record(7, Identity(bytes([4]) * 32))
    checker = records.RecordChecker()
    for _ in range(2):  # checked, then remembered
        for k, value in [(key, good), (key, tampered), (other_key, good), (key, bob), (key, b"x")]:
            assert outcome(checker.validate, k, value) == outcome(records.validate, k, value)
        for values in ([good, newer], [newer, good], [tampered, good], [bob, good], [tampered]):
            assert outcome(checker.select, key, values) == outcome(records.select, key, values)


def test_a_checker_checks_each_record_once_and_keeps_a_bounded_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[bytes] = []
    decode = records.NodeRecord.decode

    def counted(data: bytes) -> records.NodeRecord:
        decoded.append(data)
        return decode(data)

    monkeypatch.setattr(records.NodeRecord, "decode", staticmethod(counted))
    key = records.record_key(ALICE.peer_id)
    values = [signed_record(seq) for seq in range(records.CHECKED_RECORDS + 1)]
    checker = records.RecordChecker()
    for _ in range(3):  # a lookup's answers: the same record from many holders
        assert checker.select(key, values[:2]) == 1
    assert len(decoded) == 2
    for value in values:
        checker.validate(key, value)
    assert len(decoded) == len(values)  # two were remembered, the rest new
    checker.validate(key, values[-1])
    assert len(decoded) == len(values)
    checker.validate(key, values[0])  # the least recent was forgotten
    assert len(decoded) == len(values) + 1
