"""Strict CBOR: canonical encoding, and decoding that refuses what we never send.

How this works: before cbor2 sees a byte, :func:`scan` walks the document
once, in time linear in its size, and refuses anything outside the subset
p2pdm uses: unsigned/negative integers, byte strings, text strings, arrays,
maps with *text* keys, and the simple values false/true/null. No tags (so no
sets, decimals, dates or shared references), no floats, no indefinite
lengths, no repeated map keys, no trailing bytes, bounded depth and item
count. Text keys hash with Python's randomised string hash, so the
hash-collision attack on integer keys that cbor2 is open to cannot happen.
Only then does a fresh cbor2 decoder build Python objects.

:class:`Fields` reads a decoded map against a schema and raises
:class:`~p2pdm.errors.SchemaError` naming the field that is wrong.
"""

from __future__ import annotations

from typing import Any, Final

import cbor2

from p2pdm.errors import FrameTooLarge, MalformedCBOR, SchemaError
from p2pdm.limits import MAX_CBOR_DEPTH, MAX_CBOR_ITEMS

__all__ = ["Encoded", "Fields", "decode", "decode_map", "encode", "scan"]

_MAJOR_UINT, _MAJOR_NINT, _MAJOR_BYTES, _MAJOR_TEXT = 0, 1, 2, 3
_MAJOR_ARRAY, _MAJOR_MAP, _MAJOR_TAG, _MAJOR_SIMPLE = 4, 5, 6, 7
_SIMPLE_ALLOWED = frozenset({20, 21, 22})  # false, true, null
_ARG_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}


class Encoded:
    """One item already encoded as canonical CBOR (by :func:`encode`), to put
    inside a value given to :func:`encode`: its bytes are written as they are,
    so what was encoded once (a message's body, signed and then sent) is not
    encoded again. The result is what encoding the item itself in its place
    gives (``tests/core/test_cbor.py``)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Encoded({self.data!r})"


def _write_encoded(encoder: Any, value: Any) -> None:
    """cbor2's hook for types it does not know: an :class:`Encoded` item's bytes."""
    if type(value) is not Encoded:
        raise cbor2.CBOREncodeTypeError(f"cannot serialize type {type(value).__name__}")
    encoder.write(value.data)


def encode(value: Any) -> bytes:
    """Encode ``value`` as canonical CBOR (RFC 8949 §4.2.1 core deterministic).

    cbor2's own canonical mode encodes and sorts every map's keys on every
    call (three to four times the cost of a plain encoding of a message);
    here each map's key order is worked out once per set of keys
    (:func:`_in_canonical_order`) and the plain encoder writes the result,
    which gives the same bytes. Values with anything but text keys, lists
    and the plain leaf types go to cbor2's canonical mode unchanged.
    :class:`Encoded` items are written as they are.
    """
    try:
        ordered = _in_canonical_order(value, 0)
    except _Unusual:
        return cbor2.dumps(value, canonical=True, default=_write_encoded)
    return cbor2.dumps(ordered, default=_write_encoded)


#: Sets of map keys whose canonical order is remembered: the wire's and the
#: store's few schemas, plus room for maps from peers (a body's ``ext``);
#: when full it starts again empty, so peers cannot pin it.
KEY_ORDER_CACHE_SIZE: Final = 1024
#: Only sets of keys this small are remembered (every schema's are), so the
#: cache holds at most about KEY_ORDER_CACHE_SIZE times this many characters
#: whatever maps peers send; larger ones are ordered per call.
KEY_ORDER_CACHED_CHARS: Final = 256
# keys as the map holds them -> the canonical order, or None if it is that already.
_key_orders: dict[tuple[str, ...], tuple[str, ...] | None] = {}
#: Leaf types whose plain encoding is already the canonical one (no floats:
#: canonical CBOR picks their shortest form; an Encoded item is canonical).
_PLAIN_LEAVES: Final = frozenset({bytes, str, int, bool, type(None), Encoded})


class _Unusual(Exception):
    """A value the fast path does not handle: cbor2's canonical mode encodes it."""


def _canonical_key_order(keys: tuple[str, ...]) -> tuple[str, ...] | None:
    if any(type(k) is not str for k in keys):
        raise _Unusual
    # RFC 8949 §4.2.1: bytewise order of the keys' encodings.
    order = tuple(sorted(keys, key=cbor2.dumps))
    return None if order == keys else order


def _in_canonical_order(value: Any, depth: int) -> Any:
    """``value`` with every map's keys in canonical order (the same objects
    where nothing moves); raises _Unusual for what the fast path leaves to cbor2."""
    kind = type(value)
    if kind in _PLAIN_LEAVES:
        return value
    if depth > MAX_CBOR_DEPTH:
        raise _Unusual
    if kind is dict:
        keys = tuple(value)
        order = _key_orders.get(keys, keys)
        if order is keys:
            order = _canonical_key_order(keys)
            if sum(map(len, keys)) <= KEY_ORDER_CACHED_CHARS:
                if len(_key_orders) >= KEY_ORDER_CACHE_SIZE:
                    _key_orders.clear()
                _key_orders[keys] = order
        out = value
        if order is None:
            order = keys
        else:
            out = {k: value[k] for k in order}
        for k in order:
            item = value[k]
            if type(item) not in _PLAIN_LEAVES:
                new = _in_canonical_order(item, depth + 1)
                if new is not item:
                    if out is value:
                        out = dict(value)  # the caller's map stays as it was
                    out[k] = new
        return out
    if kind is list:
        out = value
        for i, item in enumerate(value):
            if type(item) not in _PLAIN_LEAVES:
                new = _in_canonical_order(item, depth + 1)
                if new is not item:
                    if out is value:
                        out = list(value)
                    out[i] = new
        return out
    raise _Unusual


# What the first byte of an item says, worked out once for all 256 values:
# (major type, the argument if it is in the byte itself, how many bytes of
# argument follow it; a negative count is a refusal, see _REFUSALS).
_INDEFINITE, _RESERVED, _SIMPLE = -1, -2, -3
_REFUSALS: Final = {
    _INDEFINITE: "indefinite-length CBOR items are refused",
    _RESERVED: "reserved CBOR additional information",
    _SIMPLE: "CBOR floats and simple values other than bool/null are refused",
}


def _head(initial: int) -> tuple[int, int, int]:
    major, info = initial >> 5, initial & 0x1F
    if major == _MAJOR_SIMPLE:
        return (major, 0, 0) if info in _SIMPLE_ALLOWED else (major, 0, _SIMPLE)
    if info < 24:
        return major, info, 0
    if info in _ARG_BYTES:
        return major, 0, _ARG_BYTES[info]
    return major, 0, _INDEFINITE if info == 31 else _RESERVED


_HEADS: Final = tuple(_head(i) for i in range(256))


#: A text string's first byte when its length is in the byte itself (0 to
#: 23 bytes): what nearly every map key is, read by scan's fast path.
_SHORT_TEXT_FIRST: Final = 0x60
_SHORT_TEXT_LAST: Final = 0x60 + 23


def scan(data: bytes, max_items: int = MAX_CBOR_ITEMS, max_depth: int = MAX_CBOR_DEPTH) -> None:
    """Check that ``data`` is exactly one CBOR item of the allowed subset.

    Raises :class:`MalformedCBOR` otherwise. Runs in O(len(data)) and stops
    after ``max_items`` items.

    The open container is kept in locals (items left in it, whether it is a
    map, its keys so far) and the ones around it on a stack: this runs for
    every envelope, session message and frame a node reads. A map key that
    is a short text string (every key p2pdm writes) is read on a path of its
    own, with the same checks in the same order as the general one.
    """
    n = len(data)
    pos = 0
    items = 0
    heads = _HEADS
    # The open container: items left (for maps, keys and values: an even
    # count left means the next item is a key), whether it is a map, and the
    # keys seen in it (a repeated key is refused, so no two decoders can
    # disagree on which value counts). left == 0: no open container.
    left = 0
    in_map = False
    keys: set[bytes] = set()
    outer: list[tuple[int, bool, set[bytes]]] = []
    while True:
        if pos >= n:
            raise MalformedCBOR("CBOR data ends in the middle of an item")
        items += 1
        if items > max_items:
            raise MalformedCBOR(f"CBOR document has more than {max_items} items")
        initial = data[pos]
        pos += 1
        is_key = in_map and not left & 1
        if is_key and _SHORT_TEXT_FIRST <= initial <= _SHORT_TEXT_LAST:
            # A key never ends its map: its value follows.
            end = pos + initial - _SHORT_TEXT_FIRST
            if end > n:
                raise MalformedCBOR("CBOR string is longer than the data")
            key = data[pos:end]
            if key in keys:
                raise MalformedCBOR("CBOR map has a repeated key")
            keys.add(key)
            pos = end
            left -= 1
            continue
        major, arg, width = heads[initial]
        if is_key and major != _MAJOR_TEXT:
            raise MalformedCBOR("CBOR map keys must be text strings")
        if width:
            if width < 0:
                raise MalformedCBOR(_REFUSALS[width])
            if pos + width > n:
                raise MalformedCBOR("CBOR data ends inside a length")
            # One byte (strings of 24 to 255 bytes) is most lengths that follow.
            arg = data[pos] if width == 1 else int.from_bytes(data[pos : pos + width], "big")
            pos += width
        if major in (_MAJOR_BYTES, _MAJOR_TEXT):
            if arg > n - pos:
                raise MalformedCBOR("CBOR string is longer than the data")
            if is_key:
                key = data[pos : pos + arg]
                if key in keys:
                    raise MalformedCBOR("CBOR map has a repeated key")
                keys.add(key)
            pos += arg
        elif major == _MAJOR_TAG:
            raise MalformedCBOR("CBOR tags are refused")
        elif major in (_MAJOR_ARRAY, _MAJOR_MAP):
            count = arg * 2 if major == _MAJOR_MAP else arg
            if count > max_items:
                raise MalformedCBOR("CBOR container claims more items than allowed")
            if count:
                if len(outer) + (left > 0) >= max_depth:
                    raise MalformedCBOR(f"CBOR nesting deeper than {max_depth}")
                if left:
                    outer.append((left, in_map, keys))
                left, in_map, keys = count, major == _MAJOR_MAP, set()
                continue
        # One item finished: close the containers it finished.
        if not left:
            break  # it was the top item itself
        left -= 1
        while not left and outer:
            left, in_map, keys = outer.pop()
            left -= 1
        if not left:
            break
    if pos != n:
        raise MalformedCBOR("trailing bytes after the CBOR item")


def decode(data: bytes, max_bytes: int) -> Any:
    """Decode one CBOR item of at most ``max_bytes`` bytes from the allowed subset.

    Raises :class:`FrameTooLarge` before reading anything if the data is too
    big, :class:`MalformedCBOR` if it is not allowed CBOR.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCBOR("expected bytes")
    if len(data) > max_bytes:
        raise FrameTooLarge(f"{len(data)} bytes is over the {max_bytes}-byte limit")
    data = bytes(data)
    scan(data)
    try:
        # cbor2.loads makes a fresh decoder each call: no state shared between
        # messages (CVE-2025-68131 was about reused decoders).
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, UnicodeDecodeError) as exc:
        raise MalformedCBOR(f"invalid CBOR: {exc}") from None


def decode_map(data: bytes, max_bytes: int, what: str) -> Fields:
    """Decode ``data`` as a CBOR map and wrap it in :class:`Fields` for reading."""
    value = decode(data, max_bytes)
    if not isinstance(value, dict):
        raise SchemaError(f"{what}: expected a CBOR map")
    return Fields(value, what)


class Fields:
    """Typed, checked access to the fields of a decoded CBOR map.

    Each getter raises :class:`SchemaError` naming the field. Call
    :meth:`done` last: it refuses fields nobody asked for.
    """

    __slots__ = ("_map", "_seen", "what")

    def __init__(self, mapping: dict[str, Any], what: str) -> None:
        self._map = mapping
        self._seen: set[str] = set()
        self.what = what

    def _get(self, key: str, optional: bool = False) -> Any:
        self._seen.add(key)
        try:
            return self._map[key]
        except KeyError:
            if optional:
                return None
            raise SchemaError(f"{self.what}: missing field {key!r}") from None

    def _fail(self, key: str, expected: str) -> SchemaError:
        return SchemaError(f"{self.what}: field {key!r} must be {expected}")

    def has(self, key: str) -> bool:
        return key in self._map

    def integer(self, key: str, lo: int, hi: int) -> int:
        value = self._get(key)
        if type(value) is not int or not lo <= value <= hi:
            raise self._fail(key, f"an integer in [{lo}, {hi}]")
        return value

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if type(value) is not bool:
            raise self._fail(key, "a boolean")
        return value

    def blob(self, key: str, size: int | None = None, max_size: int | None = None) -> bytes:
        value = self._get(key)
        if type(value) is not bytes:
            raise self._fail(key, "a byte string")
        if size is not None and len(value) != size:
            raise self._fail(key, f"exactly {size} bytes")
        if max_size is not None and len(value) > max_size:
            raise self._fail(key, f"at most {max_size} bytes")
        return value

    def opt_blob(
        self, key: str, size: int | None = None, max_size: int | None = None
    ) -> bytes | None:
        if self._get(key, optional=True) is None:
            return None
        return self.blob(key, size, max_size)

    def text(self, key: str, max_bytes: int, min_chars: int = 0) -> str:
        value = self._get(key)
        if type(value) is not str or len(value) < min_chars:
            raise self._fail(key, "a text string" + (" that is not empty" if min_chars else ""))
        if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
            raise self._fail(key, f"at most {max_bytes} bytes of UTF-8")
        return value

    def array(self, key: str, max_len: int) -> list[Any]:
        value = self._get(key)
        if type(value) is not list or len(value) > max_len:
            raise self._fail(key, f"an array of at most {max_len} items")
        return value

    def submap(self, key: str) -> Fields:
        value = self._get(key)
        if type(value) is not dict:
            raise self._fail(key, "a map")
        return Fields(value, f"{self.what}.{key}")

    def opt_submap(self, key: str) -> Fields | None:
        if self._get(key, optional=True) is None:
            return None
        return self.submap(key)

    def raw(self) -> dict[str, Any]:
        """The underlying map, for opaque bodies; marks every field as read."""
        self._seen.update(self._map)
        return self._map

    def done(self) -> None:
        if self._seen.issuperset(self._map):
            return
        extra = set(self._map) - self._seen
        raise SchemaError(f"{self.what}: unknown field(s) {sorted(extra)!r}")
