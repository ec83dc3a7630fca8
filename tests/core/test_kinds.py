"""The registry of message kinds, each kind's decoder, and the ``ext`` rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.core import cbor
from p2pdm.core.kinds import (
    KINDS,
    KindSpec,
    ReceiptBody,
    TextBody,
    UnknownBody,
    decode_stored,
    encode_body,
    spec_for,
)
from p2pdm.core.kinds import receipt as receipt_kind
from p2pdm.core.kinds import text as text_kind
from p2pdm.core.wire import InnerMessage
from p2pdm.errors import FrameTooLarge, SchemaError
from p2pdm.limits import MAX_EXT_BYTES, MAX_EXT_FIELDS, MAX_EXT_KEY_BYTES, MAX_TEXT_BYTES
from tests.core.conftest import CONV, ID, inner_map, signed


def signed_inner(body: dict[str, Any], kind: str = "text") -> bytes:
    """An inner message from a peer that may be newer than this version."""
    return signed(inner_map(body, kind))


def test_the_registry_lists_each_kind_once_under_its_name() -> None:
    assert set(KINDS) == {
        "text",
        "receipt",
        "react",
        "edit",
        "unsend",
        "timer",
        "typing",
        "media",
        "location",
        "blob_chunk",
        "group_change",
        "group_msg",
        "live_location",
    }
    for name, spec in KINDS.items():
        assert spec.name == name and spec_for(name) is spec
    assert spec_for("reaction") is None


def test_flags_of_the_kinds_of_today() -> None:
    text, receipt = KINDS["text"], KINDS["receipt"]
    assert (text.shown, text.targets, text.from_strangers, text.stored) == (
        True,
        False,
        True,
        True,
    )
    assert (receipt.shown, receipt.targets, receipt.from_strangers, receipt.stored) == (
        False,
        True,
        True,
        False,
    )
    assert receipt.target_ids(ReceiptBody("read", (ID, CONV))) == (ID, CONV)


def test_a_spec_that_would_hide_a_stored_message_is_refused() -> None:
    with pytest.raises(ValueError, match="shown if and only if"):
        KindSpec(
            "hidden", TextBody, text_kind.decode, text_kind.encode, 10, False, False, True, True
        )
    with pytest.raises(ValueError, match="name"):
        KindSpec(
            "x" * 33, TextBody, text_kind.decode, text_kind.encode, 10, True, False, True, True
        )


@given(st.text(max_size=200), st.none() | st.binary(min_size=16, max_size=16))
def test_text_bodies_round_trip_through_stored_bytes(text: str, reply_to: bytes | None) -> None:
    body = TextBody(text, reply_to)
    data = cbor.encode(encode_body(body))
    assert KINDS["text"].decode_bytes(data) == body
    assert decode_stored("text", data) == body


def test_stored_bodies_are_capped_before_parsing() -> None:
    huge = cbor.encode({"text": "x" * (KINDS["text"].max_body_bytes + 1)})
    with pytest.raises(FrameTooLarge):
        KINDS["text"].decode_bytes(huge)
    assert decode_stored("text", huge) is None
    assert decode_stored("text", b"\xff") is None  # damaged row: nothing, no exception
    assert decode_stored("reaction", cbor.encode({"a": 1})) is None


def test_a_body_of_an_unregistered_kind_cannot_be_encoded_as_a_known_one() -> None:
    class Impostor:
        kind = "text"

    with pytest.raises(SchemaError):
        encode_body(Impostor())
    assert encode_body(UnknownBody("reaction", {"e": "x"})) == {"e": "x"}


# --- extension fields ------------------------------------------------------------


def test_a_newer_senders_text_with_ext_is_accepted_and_keeps_its_ext() -> None:
    ext = {"quote": "earlier words", "mentions": [b"\x00" * 4], "fmt": {"bold": [0, 5]}}
    data = signed_inner({"text": "hello", "ext": ext})
    msg = InnerMessage.decode(data)  # the signature covers ext: it must be kept
    assert isinstance(msg.body, TextBody)
    assert msg.body.text == "hello" and msg.body.ext == ext
    assert msg.encode() == data
    assert decode_stored("text", msg.body_bytes()) == msg.body


def test_receipts_take_ext_too() -> None:
    msg = InnerMessage.decode(
        signed_inner({"status": "read", "ids": [ID], "ext": {"n": 1}}, "receipt")
    )
    assert msg.body == ReceiptBody("read", (ID,), {"n": 1})


@pytest.mark.parametrize(
    "ext",
    [
        "not a map",
        [1, 2],
        {},
        {"": 1},
        {"k" * (MAX_EXT_KEY_BYTES + 1): 1},
        {f"f{i}": i for i in range(MAX_EXT_FIELDS + 1)},
        {"big": b"x" * MAX_EXT_BYTES},
    ],
)
def test_a_malformed_ext_is_refused(ext: Any) -> None:
    with pytest.raises(SchemaError, match="ext"):
        InnerMessage.decode(signed_inner({"text": "hello", "ext": ext}))
    with pytest.raises(SchemaError, match="ext"):
        receipt_kind.decode(cbor.Fields({"status": "read", "ids": [ID], "ext": ext}, "receipt"))


def test_ext_does_not_open_other_fields() -> None:
    with pytest.raises(SchemaError, match="unknown field"):
        InnerMessage.decode(signed_inner({"text": "hello", "ext": {"a": 1}, "edit_of": ID}))


def test_a_maximal_text_with_a_maximal_ext_fits_its_stored_cap() -> None:
    ext = {"pad": b"x" * (MAX_EXT_BYTES - 16)}
    body = TextBody("é" * (MAX_TEXT_BYTES // 2), ID, ext)
    data = cbor.encode(encode_body(body))
    assert len(cbor.encode(ext)) <= MAX_EXT_BYTES
    assert KINDS["text"].decode_bytes(data) == body
