"""The strict CBOR codec: what it round-trips, what it refuses, and that it never crashes."""

from __future__ import annotations

import random
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pdm.core import cbor
from p2pdm.errors import FrameTooLarge, MalformedCBOR, SchemaError, WireError
from p2pdm.limits import MAX_CBOR_DEPTH, MAX_CBOR_ITEMS, MAX_FRAME_BYTES
from tests.cbor_reference import reference_scan
from tests.linecount import lines_run_in

CAP = MAX_FRAME_BYTES

# --- strategies --------------------------------------------------------------

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20)
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


def only_allowed_types(value: Any) -> bool:
    """True if ``value`` is built only from the types the subset allows."""
    if value is None or type(value) in (bool, int, bytes, str):
        return True
    if type(value) is list:
        return all(only_allowed_types(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and only_allowed_types(v) for k, v in value.items())
    return False


def nested_lists(depth: int) -> bytes:
    """``depth`` nested one-element arrays around 0."""
    return b"\x81" * depth + b"\x00"


# --- round trip ----------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(values)
def test_round_trip_of_allowed_values(value: Any) -> None:
    data = cbor.encode(value)
    decoded = cbor.decode(data, CAP)
    assert decoded == value
    # Type-exact: True/1 and b""/"" compare differently once re-encoded.
    assert cbor.encode(decoded) == data
    assert only_allowed_types(decoded)


def test_encode_is_canonical() -> None:
    # Shorter keys first, then bytewise (RFC 8949 §4.2.1), smallest integer forms.
    assert cbor.encode({"bb": 1, "a": 2, "c": 3}) == bytes.fromhex("a3 6161 02 6163 03 626262 01")
    assert cbor.encode(23) == b"\x17"
    assert cbor.encode(24) == b"\x18\x18"
    assert cbor.encode(-1) == b"\x20"
    assert cbor.encode(2**64 - 1) == b"\x1b" + b"\xff" * 8
    assert cbor.encode(-(2**64)) == b"\x3b" + b"\xff" * 8


# Anything cbor2 encodes, including what the fast path hands back to cbor2's
# canonical mode: floats, tuples, non-text keys, text keys with non-ASCII
# characters (their order is by encoded bytes, not by characters).
any_keys = st.text(max_size=30) | st.integers(-1000, 1000) | st.binary(max_size=4)
any_values = st.recursive(
    leaves | st.floats(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=30), children, max_size=6)
        | st.dictionaries(any_keys, children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(any_values)
def test_encode_gives_cbor2s_canonical_bytes_and_leaves_the_value_alone(value: Any) -> None:
    before = repr(value)
    assert cbor.encode(value) == cbor2.dumps(value, canonical=True)
    assert cbor.encode(value) == cbor2.dumps(value, canonical=True)  # with the order cached
    assert repr(value) == before


def _pre_encoded(value: Any, pick: random.Random) -> Any:
    """``value`` with some of its items (or itself) replaced by their encoding."""
    if pick.random() < 0.3:
        return cbor.Encoded(cbor.encode(value))
    if type(value) is list:
        return [_pre_encoded(v, pick) for v in value]
    if type(value) is tuple:
        return tuple(_pre_encoded(v, pick) for v in value)
    if type(value) is dict:
        return {k: _pre_encoded(v, pick) for k, v in value.items()}
    return value


@settings(max_examples=400, deadline=None)
@given(any_values, st.randoms(use_true_random=False))
def test_encoded_items_give_the_bytes_of_the_items_themselves(
    value: Any, pick: random.Random
) -> None:
    """An Encoded item in a value (a map with text keys or not, a list, the
    top item) is written where the item itself would have been."""
    assert cbor.encode(_pre_encoded(value, pick)) == cbor.encode(value)


def test_unknown_types_are_still_refused() -> None:
    for value in (object(), {"a": object()}, {1: object()}):
        with pytest.raises(cbor2.CBOREncodeTypeError):
            cbor.encode(value)


def test_encode_past_the_key_order_cache() -> None:
    """Maps with more sets of keys than the cache holds still encode canonically."""
    maps = [
        {f"k{i}": 1, "a": 2, "zz": [{"y": i, "x": b""}]}
        for i in range(cbor.KEY_ORDER_CACHE_SIZE + 5)
    ]
    for m in maps:
        assert cbor.encode(m) == cbor2.dumps(m, canonical=True)
    assert len(cbor._key_orders) <= cbor.KEY_ORDER_CACHE_SIZE


def test_large_sets_of_keys_are_ordered_but_not_remembered() -> None:
    """A peer's map with long keys is encoded canonically and costs no memory after."""
    big = {"k" * 300: 1, "a" * 200: 2, "b": 3}
    before = dict(cbor._key_orders)
    assert cbor.encode(big) == cbor2.dumps(big, canonical=True)
    assert tuple(big) not in cbor._key_orders
    assert cbor._key_orders == before


def test_encode_deeper_than_the_decoder_allows_still_encodes() -> None:
    value: Any = {"b": 1, "a": 0}
    for _ in range(MAX_CBOR_DEPTH + 3):
        value = [{"zz": value, "a": None}]
    assert cbor.encode(value) == cbor2.dumps(value, canonical=True)


def test_decodes_scalars_and_containers() -> None:
    assert cbor.decode(b"\xf4", CAP) is False
    assert cbor.decode(b"\xf5", CAP) is True
    assert cbor.decode(b"\xf6", CAP) is None
    assert cbor.decode(b"\x80", CAP) == []
    assert cbor.decode(b"\xa0", CAP) == {}
    assert cbor.decode(bytes.fromhex("a1 6161 82 01 41ff"), CAP) == {"a": [1, b"\xff"]}


def test_accepts_bytearray_and_memoryview() -> None:
    data = cbor.encode({"k": [1, 2]})
    # decode is typed for bytes; other buffers work too, which is what this pins.
    assert cbor.decode(bytearray(data), CAP) == {"k": [1, 2]}  # type: ignore[arg-type]
    assert cbor.decode(memoryview(data), CAP) == {"k": [1, 2]}  # type: ignore[arg-type]


# --- never crashes -------------------------------------------------------------------


def _decode_or_wire_error(data: bytes) -> None:
    try:
        value = cbor.decode(data, CAP)
    except WireError:
        return
    assert only_allowed_types(value)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_wire_errors(data: bytes) -> None:
    _decode_or_wire_error(data)


@st.composite
def mutated_encodings(draw: st.DrawFn) -> bytes:
    data = bytearray(cbor.encode(draw(values)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data.insert(i, draw(st.integers(0, 255)))
        elif op == "delete" and data:
            del data[i]
        elif op == "truncate":
            del data[i:]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_encodings())
def test_mutated_encodings_raise_only_wire_errors(data: bytes) -> None:
    _decode_or_wire_error(data)


def _verdict(scan: Any, data: bytes, max_items: int, max_depth: int) -> str | None:
    """None if ``scan`` accepts ``data``, else its refusal's message."""
    try:
        scan(data, max_items=max_items, max_depth=max_depth)
    except MalformedCBOR as exc:
        return str(exc)
    return None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(mutated_encodings(), st.binary(max_size=60), values.map(cbor.encode)),
    st.integers(1, 40),
    st.integers(1, 6),
)
def test_scan_says_what_the_reference_scanner_says(
    data: bytes, max_items: int, max_depth: int
) -> None:
    """The table-driven scanner accepts exactly what the scanner before it
    accepted, and refuses the rest with the same message."""
    for limits in ((max_items, max_depth), (MAX_CBOR_ITEMS, MAX_CBOR_DEPTH)):
        assert _verdict(cbor.scan, data, *limits) == _verdict(reference_scan, data, *limits)


# --- refusals --------------------------------------------------------------------------


def refused(data: bytes, match: str) -> None:
    with pytest.raises(MalformedCBOR, match=match):
        cbor.decode(data, CAP)


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("c1 1a 5f000000"),  # epoch date
        cbor2.dumps(2**64),  # bignum (tag 2)
        cbor2.dumps(-(2**64) - 1),  # negative bignum (tag 3)
        cbor2.dumps({1, 2}),  # set (tag 258)
        bytes.fromhex("d9d9f7 00"),  # self-described CBOR
        bytes.fromhex("a1 6161 82 01 c0 60"),  # tag nested in a map value
    ],
)
def test_refuses_tags(data: bytes) -> None:
    refused(data, "tags")


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("f9 3c00"),  # half float
        bytes.fromhex("fa 3fc00000"),  # single float
        cbor2.dumps(1.5),
        cbor2.dumps(float("nan")),
        bytes.fromhex("f7"),  # undefined
        bytes.fromhex("f0"),  # simple(16)
        bytes.fromhex("f8 ff"),  # simple(255)
        bytes.fromhex("81 f7"),  # undefined inside an array
    ],
)
def test_refuses_floats_undefined_and_other_simple_values(data: bytes) -> None:
    refused(data, "floats and simple values")


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("5f 41 00 ff"),  # indefinite byte string
        bytes.fromhex("7f 61 61 ff"),  # indefinite text string
        bytes.fromhex("9f 01 ff"),  # indefinite array
        bytes.fromhex("bf 61 61 01 ff"),  # indefinite map
        bytes.fromhex("ff"),  # lone break
        bytes.fromhex("81 9f ff"),  # nested
    ],
)
def test_refuses_indefinite_lengths(data: bytes) -> None:
    with pytest.raises(MalformedCBOR, match=r"indefinite|simple values"):
        cbor.decode(data, CAP)


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("a1 01 02"),  # integer key
        bytes.fromhex("a1 20 02"),  # negative integer key
        bytes.fromhex("a1 41 61 02"),  # byte-string key
        bytes.fromhex("a1 f6 02"),  # null key
        bytes.fromhex("a1 f5 02"),  # bool key
        bytes.fromhex("a1 80 02"),  # array key
        bytes.fromhex("a1 a0 02"),  # map key
        bytes.fromhex("a2 6161 01 01 02"),  # second key is an integer
        bytes.fromhex("81 a1 6161 a1 07 00"),  # integer key in a nested map
        cbor2.dumps({1: "one"}),
    ],
)
def test_refuses_non_text_keys(data: bytes) -> None:
    refused(data, "keys must be text strings")


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("a2 6161 01 6161 02"),  # {"a": 1, "a": 2}
        bytes.fromhex("a2 6161 01 780161 02"),  # same key, non-minimal length header
        bytes.fromhex("a1 6178 a2 6162 01 6162 02"),  # repeated key in a nested map
    ],
)
def test_refuses_repeated_keys(data: bytes) -> None:
    # Otherwise two decoders (first-wins, last-wins) could read a signed map differently.
    refused(data, "repeated key")


def test_same_key_in_different_maps_is_fine() -> None:
    value = {"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}
    assert cbor.decode(cbor.encode(value), CAP) == value


@pytest.mark.parametrize(
    "data",
    [
        cbor.encode(1) + b"\x00",
        cbor.encode({}) + cbor.encode({}),
        cbor.encode({"a": b"x"}) + b"\xff",
    ],
)
def test_refuses_trailing_bytes(data: bytes) -> None:
    refused(data, "trailing bytes")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "ends in the middle"),
        (bytes.fromhex("a1"), "ends in the middle"),
        (bytes.fromhex("82 01"), "ends in the middle"),
        (bytes.fromhex("19 01"), "ends inside a length"),
        (bytes.fromhex("43 0102"), "longer than the data"),
        (bytes.fromhex("7b ffffffffffffffff"), "longer than the data"),
        (bytes.fromhex("1c"), "reserved"),
        (bytes.fromhex("5d"), "reserved"),
        (bytes.fromhex("62 c328"), "invalid CBOR"),  # not UTF-8
        (bytes.fromhex("63 eda080"), "invalid CBOR"),  # UTF-8 of a surrogate
    ],
)
def test_refuses_truncated_reserved_and_invalid(data: bytes, match: str) -> None:
    refused(data, match)


def test_refuses_non_bytes() -> None:
    with pytest.raises(MalformedCBOR, match="expected bytes"):
        cbor.decode("\xa0", CAP)  # type: ignore[arg-type]


def test_depth_limit() -> None:
    assert cbor.decode(nested_lists(MAX_CBOR_DEPTH), CAP) is not None
    refused(nested_lists(MAX_CBOR_DEPTH + 1), f"deeper than {MAX_CBOR_DEPTH}")
    deep_map = b"\xa1\x61k" * (MAX_CBOR_DEPTH + 1) + b"\x00"
    refused(deep_map, "deeper")
    # Far deeper than Python's recursion limit: refused, not a RecursionError.
    refused(nested_lists(100_000), "deeper")


def test_item_limit() -> None:
    # The outer array counts as one item.
    at_limit = cbor.encode([0] * (MAX_CBOR_ITEMS - 1))
    assert len(cbor.decode(at_limit, CAP)) == MAX_CBOR_ITEMS - 1
    refused(cbor.encode([0] * MAX_CBOR_ITEMS), f"more than {MAX_CBOR_ITEMS} items")
    # Map entries count twice.
    half = MAX_CBOR_ITEMS // 2
    refused(cbor.encode({str(i): 0 for i in range(half)}), "more than")
    # Many small containers add up.
    refused(cbor.encode([[0]] * (MAX_CBOR_ITEMS // 2 + 1)), "more than")


def test_huge_claimed_count_is_refused_without_reading_on() -> None:
    refused(b"\x9b" + b"\xff" * 8, "claims more items")
    refused(b"\xbb" + (MAX_CBOR_ITEMS // 2 + 1).to_bytes(8, "big"), "claims more items")


def test_oversized_input_is_refused_before_parsing() -> None:
    # Garbage, but the size check comes first.
    with pytest.raises(FrameTooLarge):
        cbor.decode(b"\xff" * 101, 100)
    with pytest.raises(FrameTooLarge):
        cbor.decode_map(b"\xff" * 101, 100, "thing")
    exactly = cbor.encode(b"x" * 98)
    assert len(exactly) == 100
    assert cbor.decode(exactly, 100) == b"x" * 98


def test_scan_is_exported_and_strict() -> None:
    cbor.scan(cbor.encode({"a": [1, 2]}))
    with pytest.raises(MalformedCBOR):
        cbor.scan(cbor.encode([1, 2, 3]), max_items=3)
    with pytest.raises(MalformedCBOR):
        cbor.scan(nested_lists(3), max_depth=2)


# --- hash-collision attack ----------------------------------------------------------

_MERSENNE = 2**61 - 1  # the modulus of Python's integer hash


def colliding_map(size: int) -> tuple[bytes, int]:
    """A CBOR map of about ``size`` bytes whose integer keys all hash to 0.

    Built by hand: a dict of such keys would itself take quadratic time.
    Returns the document and the offset just past the first key.
    """
    entries = []
    total = 0
    value = cbor.encode(b"v" * 12)
    for k in range(1, 10_000):
        entries.append(cbor2.dumps(k * _MERSENNE) + value)
        total += len(entries[-1])
        if total >= size:
            break
    header = b"\xb9" + len(entries).to_bytes(2, "big")
    first_key_end = len(header) + len(cbor2.dumps(_MERSENNE))
    return header + b"".join(entries), first_key_end


def test_colliding_keys_hash_alike() -> None:
    assert {hash(k * _MERSENNE) for k in range(1, 10_000)} == {0}


def test_hash_collision_map_is_refused_at_the_first_key() -> None:
    doc, first_key_end = colliding_map(200 << 10)
    assert len(doc) >= 200 << 10
    # Within the item cap, so it is the key check that refuses it.
    assert 2 * int.from_bytes(doc[1:3], "big") <= MAX_CBOR_ITEMS
    refused(doc, "keys must be text strings")
    # The scanner stops at the first key: whatever follows is never read, so
    # turning it into bytes that would fail differently changes nothing.
    garbage = doc[:first_key_end] + b"\xff" * (len(doc) - first_key_end)
    refused(garbage, "keys must be text strings")
    refused(doc[:first_key_end], "keys must be text strings")


def lines_to_refuse(doc: bytes, monkeypatch: pytest.MonkeyPatch) -> int:
    """Lines of p2pdm.core.cbor run to refuse ``doc``: counted work, not time.
    cbor2 (C code, uncounted) must not be reached at all."""

    def not_reached(data: bytes) -> None:
        raise AssertionError("cbor2 decoded a document the scanner should refuse")

    monkeypatch.setattr(cbor2, "loads", not_reached)
    with (
        lines_run_in(cbor.__file__) as lines,
        pytest.raises(MalformedCBOR, match="keys must be text strings"),
    ):
        cbor.decode(doc, CAP)
    monkeypatch.undo()
    return lines()


def test_hash_collision_refusal_does_not_grow_with_size(monkeypatch: pytest.MonkeyPatch) -> None:
    small, _ = colliding_map(50 << 10)
    large, _ = colliding_map(200 << 10)
    # 4x the input, the same work: refusing at the first key is constant.
    assert lines_to_refuse(large, monkeypatch) == lines_to_refuse(small, monkeypatch) > 0


# --- Fields ---------------------------------------------------------------------------------


def fields(**values: Any) -> cbor.Fields:
    return cbor.Fields(values, "thing")


def test_decode_map_refuses_non_maps() -> None:
    with pytest.raises(SchemaError, match="thing: expected a CBOR map"):
        cbor.decode_map(cbor.encode([1]), CAP, "thing")
    f = cbor.decode_map(cbor.encode({"a": 1}), CAP, "thing")
    assert f.integer("a", 0, 1) == 1
    f.done()


def test_fields_missing_names_the_field() -> None:
    with pytest.raises(SchemaError, match="thing: missing field 'n'"):
        fields().integer("n", 0, 10)


@pytest.mark.parametrize(
    ("read", "value", "expected"),
    [
        (lambda f: f.integer("x", 0, 10), 11, r"an integer in \[0, 10\]"),
        (lambda f: f.integer("x", 0, 10), -1, "an integer"),
        (lambda f: f.integer("x", 0, 10), True, "an integer"),
        (lambda f: f.integer("x", 0, 10), "1", "an integer"),
        (lambda f: f.boolean("x"), 1, "a boolean"),
        (lambda f: f.boolean("x"), None, "a boolean"),
        (lambda f: f.blob("x"), "text", "a byte string"),
        (lambda f: f.blob("x", size=4), b"abc", "exactly 4 bytes"),
        (lambda f: f.blob("x", max_size=2), b"abc", "at most 2 bytes"),
        (lambda f: f.opt_blob("x", size=2), b"abc", "exactly 2 bytes"),
        (lambda f: f.opt_blob("x"), 0, "a byte string"),
        (lambda f: f.text("x", 10), b"abc", "a text string"),
        (lambda f: f.text("x", 10, min_chars=1), "", "a text string that is not empty"),
        (lambda f: f.text("x", 4), "ééé", "at most 4 bytes of UTF-8"),
        (lambda f: f.array("x", 2), [1, 2, 3], "an array of at most 2"),
        (lambda f: f.array("x", 2), {"a": 1}, "an array"),
        (lambda f: f.submap("x"), [1], "a map"),
        (lambda f: f.opt_submap("x"), b"", "a map"),
    ],
)
def test_fields_type_errors_name_the_field(read: Any, value: Any, expected: str) -> None:
    with pytest.raises(SchemaError, match=f"thing: field 'x' must be {expected}"):
        read(fields(x=value))


def test_fields_getters_return_values() -> None:
    f = fields(i=5, b=False, blob=b"ab", t="héllo", a=[1], m={"k": 1}, none=None)
    assert f.integer("i", 5, 5) == 5
    assert f.boolean("b") is False
    assert f.blob("blob", size=2, max_size=2) == b"ab"
    assert f.text("t", 6, min_chars=5) == "héllo"
    assert f.array("a", 1) == [1]
    sub = f.submap("m")
    assert sub.what == "thing.m"
    assert sub.integer("k", 0, 1) == 1
    sub.done()
    assert f.opt_blob("none") is None
    assert f.opt_blob("absent") is None
    assert f.opt_submap("absent") is None
    assert f.has("i") and not f.has("absent")
    f.done()


def test_nested_field_errors_carry_the_path() -> None:
    f = fields(outer={"inner": "x"})
    with pytest.raises(SchemaError, match=r"thing\.outer: field 'inner' must be an integer"):
        f.submap("outer").integer("inner", 0, 1)


def test_done_refuses_unknown_fields() -> None:
    f = fields(a=1, zz=2, yy=3)
    f.integer("a", 0, 1)
    with pytest.raises(SchemaError, match=r"thing: unknown field\(s\) \['yy', 'zz'\]"):
        f.done()


def test_done_accepts_fields_asked_for_even_if_absent_or_failed() -> None:
    f = fields(a=1)
    f.opt_blob("b")
    with pytest.raises(SchemaError):
        f.boolean("a")
    f.done()


def test_raw_marks_everything_read() -> None:
    f = fields(a=1, b=[2])
    assert f.raw() == {"a": 1, "b": [2]}
    f.done()
