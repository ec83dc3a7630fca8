"""The CBOR scanner as it was before its table-driven rewrite (p2pdm.core.cbor.scan):
the reference the rewrite is checked against, byte for byte and error for error."""

from __future__ import annotations

from p2pdm.core.cbor import (
    _ARG_BYTES,
    _MAJOR_ARRAY,
    _MAJOR_BYTES,
    _MAJOR_MAP,
    _MAJOR_SIMPLE,
    _MAJOR_TAG,
    _MAJOR_TEXT,
    _SIMPLE_ALLOWED,
)
from p2pdm.errors import MalformedCBOR
from p2pdm.limits import MAX_CBOR_DEPTH, MAX_CBOR_ITEMS


def reference_scan(
    data: bytes, max_items: int = MAX_CBOR_ITEMS, max_depth: int = MAX_CBOR_DEPTH
) -> None:
    """Check that ``data`` is exactly one CBOR item of the allowed subset.

    Raises :class:`MalformedCBOR` otherwise. Runs in O(len(data)) and stops
    after ``max_items`` items.
    """
    n = len(data)
    pos = 0
    items = 0
    # Stack of [remaining items, is_map]; for maps, remaining counts keys and
    # values, and an even remaining count means the next item is a key.
    stack: list[list[int]] = []
    # Keys already seen in each open container (unused for arrays). A repeated
    # key is refused, so no two decoders can disagree on which value counts.
    keys: list[set[bytes]] = []
    while True:
        if pos >= n:
            raise MalformedCBOR("CBOR data ends in the middle of an item")
        items += 1
        if items > max_items:
            raise MalformedCBOR(f"CBOR document has more than {max_items} items")
        initial = data[pos]
        pos += 1
        major, info = initial >> 5, initial & 0x1F
        is_key = bool(stack) and stack[-1][1] == 1 and stack[-1][0] % 2 == 0
        if is_key and major != _MAJOR_TEXT:
            raise MalformedCBOR("CBOR map keys must be text strings")
        if major == _MAJOR_SIMPLE:
            if info not in _SIMPLE_ALLOWED:
                raise MalformedCBOR(
                    "CBOR floats and simple values other than bool/null are refused"
                )
            arg = 0
        elif info < 24:
            arg = info
        elif info in _ARG_BYTES:
            width = _ARG_BYTES[info]
            if pos + width > n:
                raise MalformedCBOR("CBOR data ends inside a length")
            arg = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        elif info == 31:
            raise MalformedCBOR("indefinite-length CBOR items are refused")
        else:
            raise MalformedCBOR("reserved CBOR additional information")

        if major in (_MAJOR_BYTES, _MAJOR_TEXT):
            if arg > n - pos:
                raise MalformedCBOR("CBOR string is longer than the data")
            if is_key:
                key = data[pos : pos + arg]
                if key in keys[-1]:
                    raise MalformedCBOR("CBOR map has a repeated key")
                keys[-1].add(key)
            pos += arg
        elif major == _MAJOR_TAG:
            raise MalformedCBOR("CBOR tags are refused")
        elif major in (_MAJOR_ARRAY, _MAJOR_MAP):
            count = arg * 2 if major == _MAJOR_MAP else arg
            if count > max_items:
                raise MalformedCBOR("CBOR container claims more items than allowed")
            if count:
                if len(stack) >= max_depth:
                    raise MalformedCBOR(f"CBOR nesting deeper than {max_depth}")
                stack.append([count, 1 if major == _MAJOR_MAP else 0])
                keys.append(set())
                continue
        # One item finished: pop finished containers.
        while stack:
            stack[-1][0] -= 1
            if stack[-1][0]:
                break
            stack.pop()
            keys.pop()
        if not stack:
            break
    if pos != n:
        raise MalformedCBOR("trailing bytes after the CBOR item")
