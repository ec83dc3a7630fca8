"""Wire types and sealing: round trips, strict decoding, signatures, recipients."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import nacl.public
import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pdm.core import cbor
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.kinds import KINDS
from p2pdm.core.sealing import check_inner, open_envelope, seal
from p2pdm.core.wire import (
    Envelope,
    InnerMessage,
    PrekeyBundle,
    ReceiptBody,
    SessionMessage,
    TextBody,
    UnknownBody,
    X3DHHeader,
    encode_body,
    envelope_id,
)
from p2pdm.errors import (
    DecryptError,
    FrameTooLarge,
    MalformedCBOR,
    SchemaError,
    SignatureError,
    UnsupportedVersion,
    WireError,
    WrongRecipient,
)
from p2pdm.limits import (
    MAX_FRAME_BYTES,
    MAX_RECEIPT_IDS,
    MAX_TEXT_BYTES,
    MAX_UNKNOWN_BODY_BYTES,
)
from tests.core.conftest import ALICE, BOB, CAROL, CONV, ID, inner_map, signed

U64 = 2**64 - 1
# A valid multihash, but of an RSA key (sha2-256), not an Ed25519 PeerID.
RSA_PEER_RAW = b"\x12\x20" + bytes(32)

# --- strategies --------------------------------------------------------------------

identities = st.sampled_from([ALICE, BOB, CAROL])
peers = identities.map(lambda i: i.peer_id)
ids16 = st.binary(min_size=16, max_size=16)
keys32 = st.binary(min_size=32, max_size=32)
u64 = st.integers(0, U64)

cbor_leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.binary(max_size=20)
cbor_values = st.recursive(
    cbor_leaves | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=12,
)

text_bodies = st.builds(TextBody, st.text(max_size=300), st.none() | ids16)
receipt_bodies = st.builds(
    ReceiptBody,
    st.sampled_from(["delivered", "read"]),
    st.lists(ids16, min_size=1, max_size=8).map(tuple),
)
unknown_kinds = st.text(min_size=1, max_size=8).filter(lambda k: k not in KINDS)
unknown_bodies = st.builds(
    UnknownBody, unknown_kinds, st.dictionaries(st.text(max_size=8), cbor_values, max_size=5)
)
bodies = text_bodies | receipt_bodies | unknown_bodies


@st.composite
def inner_messages(draw: st.DrawFn) -> InnerMessage:
    return InnerMessage.create(
        draw(identities),
        id=draw(ids16),
        recipient=draw(peers),
        conversation=draw(ids16),
        sent_at_ms=draw(u64),
        body=draw(bodies),
    )


bundles = st.builds(
    PrekeyBundle,
    peer=peers,
    signed_prekey=keys32,
    signed_prekey_sig=st.binary(min_size=64, max_size=64),
    one_time_prekeys=st.lists(keys32, max_size=16, unique=True).map(tuple),
    created_at_s=u64,
)
headers = st.builds(X3DHHeader, keys32, keys32, st.none() | keys32)
session_messages = st.builds(
    SessionMessage,
    sender=peers,
    x3dh=st.none() | headers,
    ratchet_key=keys32,
    previous_chain_length=u64,
    index=u64,
    ciphertext=st.binary(max_size=200),
)
envelopes = st.builds(
    Envelope, recipient=peers, id=ids16, expires_at_s=u64, sealed=st.binary(max_size=200)
)

# --- round trips -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(inner_messages())
def test_inner_message_round_trip(msg: InnerMessage) -> None:
    data = msg.encode()
    decoded = InnerMessage.decode(data)
    assert decoded == msg
    assert decoded.kind == msg.body.kind
    assert decoded.encode() == data


def _spec_encoding(msg: InnerMessage) -> bytes:
    """The message as the spec writes it, every field encoded from scratch
    (what :meth:`InnerMessage.encode` gave before it kept its body's bytes)."""
    return signed(
        {
            "v": 1,
            "id": msg.id,
            "from": msg.sender.raw,
            "to": msg.recipient.raw,
            "conv": msg.conversation,
            "ts": msg.sent_at_ms,
            "kind": msg.kind,
            "body": encode_body(msg.body),
        },
        identity=next(i for i in (ALICE, BOB, CAROL) if i.peer_id == msg.sender),
    )


@settings(max_examples=80, deadline=None)
@given(inner_messages(), bodies)
def test_kept_encodings_are_the_specs(msg: InnerMessage, other: Any) -> None:
    """What a message keeps of its encodings (made once when it is created or
    decoded) is what encoding it from scratch gives, and a copy with another
    body keeps none of them."""
    data = msg.encode()
    assert data == _spec_encoding(msg)  # Ed25519 signatures are deterministic
    assert msg.body_bytes() == cbor.encode(encode_body(msg.body))
    decoded = InnerMessage.decode(data)
    assert decoded.body_bytes() == msg.body_bytes()
    assert decoded.encode() == data
    changed = msg.with_body(other)
    assert changed.body_bytes() == cbor.encode(encode_body(other))
    assert changed.encode() == cbor.encode(
        {**cbor.decode(data, MAX_FRAME_BYTES), "kind": other.kind, "body": encode_body(other)}
    )


@settings(max_examples=60, deadline=None)
@given(bundles)
def test_prekey_bundle_round_trip(bundle: PrekeyBundle) -> None:
    data = bundle.encode()
    assert PrekeyBundle.decode(data) == bundle
    assert PrekeyBundle.decode(data).encode() == data


@settings(max_examples=60, deadline=None)
@given(session_messages)
def test_session_message_round_trip(msg: SessionMessage) -> None:
    data = msg.encode()
    assert SessionMessage.decode(data) == msg
    assert SessionMessage.decode(data).encode() == data


@settings(max_examples=60, deadline=None)
@given(envelopes)
def test_envelope_round_trip(env: Envelope) -> None:
    data = env.encode()
    assert Envelope.decode(data) == env
    assert Envelope.decode(data).encode() == data


# --- never anything but our errors ---------------------------------------------------------

DECODERS: list[Callable[[bytes], object]] = [
    InnerMessage.decode,
    PrekeyBundle.decode,
    SessionMessage.decode,
    Envelope.decode,
]


def decode_all_or_our_errors(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(WireError, SignatureError):
            decode(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_wire_or_signature_errors(data: bytes) -> None:
    decode_all_or_our_errors(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    encoded = draw(
        st.one_of(
            inner_messages().map(InnerMessage.encode),
            bundles.map(PrekeyBundle.encode),
            session_messages.map(SessionMessage.encode),
            envelopes.map(Envelope.encode),
        )
    )
    data = bytearray(encoded)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data.insert(i, draw(st.integers(0, 255)))
        elif op == "delete":
            del data[i]
        else:
            del data[i:]
        if not data:
            break
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_encodings_raise_only_wire_or_signature_errors(data: bytes) -> None:
    decode_all_or_our_errors(data)


@st.composite
def field_swaps(draw: st.DrawFn) -> tuple[Callable[[bytes], object], bytes]:
    """A valid map with one field replaced by an arbitrary CBOR value (or removed/added)."""
    which = draw(st.sampled_from(["inner", "bundle", "session", "envelope"]))
    decoder: Callable[[bytes], object]
    if which == "inner":
        decoder, data = InnerMessage.decode, draw(inner_messages()).encode()
    elif which == "bundle":
        decoder, data = PrekeyBundle.decode, draw(bundles).encode()
    elif which == "session":
        decoder, data = SessionMessage.decode, draw(session_messages).encode()
    else:
        decoder, data = Envelope.decode, draw(envelopes).encode()
    m = cbor.decode(data, MAX_FRAME_BYTES)
    key = draw(st.sampled_from([*sorted(m), "extra"]))
    if draw(st.booleans()):
        m.pop(key, None)
    else:
        m[key] = draw(cbor_values)
    return decoder, cbor.encode(m)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_swaps())
def test_wrong_field_values_raise_only_wire_or_signature_errors(
    case: tuple[Callable[[bytes], object], bytes],
) -> None:
    decoder, data = case
    with contextlib.suppress(WireError, SignatureError):
        decoder(data)


# --- field checks ------------------------------------------------------------------------


def bundle_map(**changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "v": 1,
        "peer": ALICE.peer_id.raw,
        "spk": bytes(32),
        "spk_sig": bytes(64),
        "opks": [bytes([i]) * 32 for i in range(3)],
        "ts": 5,
    }
    m.update(changes)
    return m


def session_map(**changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "v": 1,
        "from": ALICE.peer_id.raw,
        "dh": bytes(32),
        "pn": 0,
        "n": 1,
        "ct": b"ciphertext",
        "x3dh": {"ek": bytes(32), "spk": bytes([1]) * 32, "opk": None},
    }
    m.update(changes)
    return m


def envelope_map(**changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "v": 1,
        "to": BOB.peer_id.raw,
        "id": ID,
        "exp": 1_700_000_000,
        "box": b"sealed",
    }
    m.update(changes)
    return m


def without(m: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k != key}


def test_valid_maps_decode() -> None:
    msg = InnerMessage.decode(signed(inner_map()))
    assert msg.body == TextBody("hi")
    assert msg.sender == ALICE.peer_id and msg.recipient == BOB.peer_id
    assert PrekeyBundle.decode(cbor.encode(bundle_map())).created_at_s == 5
    sm = SessionMessage.decode(cbor.encode(session_map()))
    assert sm.x3dh == X3DHHeader(bytes(32), bytes([1]) * 32, None)
    assert SessionMessage.decode(cbor.encode(without(session_map(), "x3dh"))).x3dh is None
    assert Envelope.decode(cbor.encode(envelope_map())).sealed == b"sealed"


BAD_FIELDS: list[tuple[str, Callable[..., dict[str, Any]], str, Any]] = [
    # (type, map factory, field, bad value); the error must name the field.
    ("inner", inner_map, "id", bytes(15)),
    ("inner", inner_map, "id", "0" * 16),
    ("inner", inner_map, "from", RSA_PEER_RAW),
    ("inner", inner_map, "from", bytes(100)),
    ("inner", inner_map, "to", ALICE.peer_id.raw[:-1]),
    ("inner", inner_map, "to", str(BOB.peer_id)),
    ("inner", inner_map, "conv", bytes(17)),
    ("inner", inner_map, "ts", -1),
    ("inner", inner_map, "ts", "now"),
    ("inner", inner_map, "kind", ""),
    ("inner", inner_map, "kind", "k" * 33),
    ("inner", inner_map, "kind", 1),
    ("inner", inner_map, "body", "hi"),
    ("inner", inner_map, "body", [1]),
    ("inner", inner_map, "sig", bytes(63)),
    ("inner", inner_map, "sig", None),
    ("bundle", bundle_map, "peer", RSA_PEER_RAW),
    ("bundle", bundle_map, "spk", bytes(31)),
    ("bundle", bundle_map, "spk_sig", bytes(65)),
    ("bundle", bundle_map, "opks", [bytes(31)]),
    ("bundle", bundle_map, "opks", [bytes(32), bytes(32)]),
    ("bundle", bundle_map, "opks", [bytes([i]) * 32 for i in range(17)]),
    ("bundle", bundle_map, "opks", bytes(32)),
    ("bundle", bundle_map, "ts", True),
    ("session", session_map, "from", bytes(38)),
    ("session", session_map, "dh", bytes(33)),
    ("session", session_map, "pn", -1),
    ("session", session_map, "ct", "text"),
    ("session", session_map, "x3dh", {"ek": bytes(32), "spk": bytes(32), "opk": bytes(1)}),
    ("session", session_map, "x3dh", {"ek": bytes(32), "opk": None}),
    ("session", session_map, "x3dh", {"ek": bytes(32), "spk": bytes(32), "zz": 1}),
    ("session", session_map, "x3dh", [bytes(32)]),
    ("envelope", envelope_map, "to", RSA_PEER_RAW),
    ("envelope", envelope_map, "id", bytes(32)),
    ("envelope", envelope_map, "exp", -5),
    ("envelope", envelope_map, "box", "sealed"),
]


def decode_map_as(which: str, m: dict[str, Any]) -> object:
    if which == "inner":
        # Signed properly unless the test sets its own 'sig'.
        return InnerMessage.decode(cbor.encode(m) if "sig" in m else signed(m))
    decoder = {
        "bundle": PrekeyBundle.decode,
        "session": SessionMessage.decode,
        "envelope": Envelope.decode,
    }[which]
    return decoder(cbor.encode(m))


FACTORIES = [
    ("inner", inner_map),
    ("bundle", bundle_map),
    ("session", session_map),
    ("envelope", envelope_map),
]


# Errors raised further in name what they check in words, or the nested field.
_NAMED_AS = {
    ("bundle", "opks"): "one-time prekey|'opks'",
    ("session", "x3dh"): r"x3dh: (field 'opk'|missing field 'spk'|unknown field)|'x3dh' must",
}


@pytest.mark.parametrize(("which", "factory", "field", "bad"), BAD_FIELDS)
def test_bad_field_is_refused_and_named(
    which: str, factory: Callable[..., dict[str, Any]], field: str, bad: Any
) -> None:
    with pytest.raises(SchemaError, match=_NAMED_AS.get((which, field), f"'{field}'")):
        decode_map_as(which, factory(**{field: bad}))


@pytest.mark.parametrize(("which", "factory"), FACTORIES)
def test_integers_beyond_64_bits_are_malformed(
    which: str, factory: Callable[..., dict[str, Any]]
) -> None:
    # 2**64 only fits a bignum, and tags are outside the accepted CBOR subset.
    field = {"inner": "ts", "bundle": "ts", "session": "n", "envelope": "exp"}[which]
    with pytest.raises(MalformedCBOR, match="tags"):
        decode_map_as(which, factory(**{field: 2**64}))


@pytest.mark.parametrize(("which", "factory"), FACTORIES)
def test_every_required_field_is_required(
    which: str, factory: Callable[..., dict[str, Any]]
) -> None:
    for field in factory():
        if field == "x3dh":
            continue  # optional
        with pytest.raises(SchemaError, match=f"missing field '{field}'"):
            decode_map_as(which, without(factory(), field))


@pytest.mark.parametrize(("which", "factory"), FACTORIES)
def test_unknown_fields_are_refused(which: str, factory: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(SchemaError, match="unknown field"):
        decode_map_as(which, factory(extra=1))


@pytest.mark.parametrize(("which", "factory"), FACTORIES)
@pytest.mark.parametrize("version", [0, 2, 2**64 - 1])
def test_unknown_version_is_unsupported(
    which: str, factory: Callable[..., dict[str, Any]], version: int
) -> None:
    with pytest.raises(UnsupportedVersion):
        decode_map_as(which, factory(v=version))


@pytest.mark.parametrize(("which", "factory"), FACTORIES)
@pytest.mark.parametrize("version", ["1", True, None, -1, b"\x01"])
def test_malformed_version_is_a_schema_error(
    which: str, factory: Callable[..., dict[str, Any]], version: Any
) -> None:
    with pytest.raises(SchemaError, match="'v'"):
        decode_map_as(which, factory(v=version))


@pytest.mark.parametrize("decode", DECODERS)
def test_non_maps_are_refused(decode: Callable[[bytes], object]) -> None:
    with pytest.raises(SchemaError, match="expected a CBOR map"):
        decode(cbor.encode([1, 2]))
    with pytest.raises(MalformedCBOR):
        decode(b"")


def test_size_caps_come_first() -> None:
    with pytest.raises(FrameTooLarge):
        Envelope.decode(b"\xa0" * (MAX_FRAME_BYTES + 1))
    with pytest.raises(FrameTooLarge):
        InnerMessage.decode(b"\xa0" * (MAX_FRAME_BYTES + 1))
    # Bundles are control-sized.
    with pytest.raises(FrameTooLarge):
        PrekeyBundle.decode(b"\xa0" * (20 << 10))


def test_envelope_box_cap() -> None:
    too_big = cbor.encode(envelope_map(box=bytes(MAX_FRAME_BYTES - 200)))
    with pytest.raises(SchemaError, match="'box'"):
        Envelope.decode(too_big)


# --- inner message: bodies and signatures ----------------------------------------------------


def test_text_body_limits() -> None:
    at_limit = "a" * MAX_TEXT_BYTES
    assert InnerMessage.decode(signed(inner_map({"text": at_limit}))).body == TextBody(at_limit)
    with pytest.raises(SchemaError, match="'text'"):
        InnerMessage.decode(signed(inner_map({"text": "a" * (MAX_TEXT_BYTES + 1)})))
    # The limit is in UTF-8 bytes, not characters.
    with pytest.raises(SchemaError, match="'text'"):
        InnerMessage.decode(signed(inner_map({"text": "é" * (MAX_TEXT_BYTES // 2 + 1)})))


def test_text_body_fields() -> None:
    reply = InnerMessage.decode(signed(inner_map({"text": "", "reply_to": ID})))
    assert reply.body == TextBody("", ID)
    with pytest.raises(SchemaError, match="'reply_to'"):
        InnerMessage.decode(signed(inner_map({"text": "x", "reply_to": bytes(8)})))
    with pytest.raises(SchemaError, match="unknown field"):
        InnerMessage.decode(signed(inner_map({"text": "x", "bold": True})))
    with pytest.raises(SchemaError, match="missing field 'text'"):
        InnerMessage.decode(signed(inner_map({})))


def receipt(ids: list[Any], status: Any = "read") -> bytes:
    return signed(inner_map({"status": status, "ids": ids}, kind="receipt"))


def test_receipt_bodies() -> None:
    ok = InnerMessage.decode(receipt([ID, CONV], "delivered"))
    assert ok.body == ReceiptBody("delivered", (ID, CONV))
    most = [i.to_bytes(16, "big") for i in range(MAX_RECEIPT_IDS)]
    body = InnerMessage.decode(receipt(most)).body
    assert isinstance(body, ReceiptBody) and len(body.ids) == MAX_RECEIPT_IDS


@pytest.mark.parametrize(
    "ids",
    [
        [],
        [i.to_bytes(16, "big") for i in range(MAX_RECEIPT_IDS + 1)],
        [bytes(15)],
        [ID, "not bytes"],
    ],
)
def test_receipt_ids_are_checked(ids: list[Any]) -> None:
    with pytest.raises(SchemaError, match="ids"):
        InnerMessage.decode(receipt(ids))


@pytest.mark.parametrize("status", ["seen", "", 1, None])
def test_receipt_status_is_checked(status: Any) -> None:
    with pytest.raises(SchemaError, match="status"):
        InnerMessage.decode(receipt([ID], status))


def test_unknown_kind_is_kept_opaque() -> None:
    body = {"emoji": "👍", "target": ID, "nested": {"list": [1, None, True]}}
    msg = InnerMessage.decode(signed(inner_map(body, kind="reaction")))
    assert msg.body == UnknownBody("reaction", body)
    assert msg.kind == "reaction"
    assert cbor.decode(msg.body_bytes(), MAX_FRAME_BYTES) == body
    # It re-encodes to the bytes that were signed.
    assert InnerMessage.decode(msg.encode()) == msg


def test_unknown_body_size_cap() -> None:
    body = {"blob": bytes(MAX_UNKNOWN_BODY_BYTES)}
    with pytest.raises(SchemaError, match="too large"):
        InnerMessage.decode(signed(inner_map(body, kind="sticker")))


def test_signature_is_over_domain_and_canonical_map() -> None:
    """The signature is plain Ed25519 over b"p2pdm/msg/v1\\0" + canonical CBOR without 'sig'."""
    m = inner_map()
    raw_sig = (
        nacl.signing.SigningKey(ALICE.seed).sign(b"p2pdm/msg/v1\x00" + cbor.encode(m)).signature
    )
    assert InnerMessage.decode(cbor.encode({**m, "sig": raw_sig})).signature == raw_sig


@pytest.mark.parametrize(
    "change",
    [
        {"ts": 1},
        {"id": bytes(16)},
        {"conv": bytes(16)},
        {"to": CAROL.peer_id.raw},
        {"from": BOB.peer_id.raw},
        {"body": {"text": "hi!"}},
        {"body": {"text": "hi", "reply_to": ID}},
        {"kind": "note"},
    ],
)
def test_tampered_inner_message_fails_signature(change: dict[str, Any]) -> None:
    original = cbor.decode(signed(inner_map()), MAX_FRAME_BYTES)
    with pytest.raises(SignatureError):
        InnerMessage.decode(cbor.encode({**original, **change}))


def test_signature_by_someone_else_or_other_domain_fails() -> None:
    with pytest.raises(SignatureError):
        InnerMessage.decode(signed(inner_map(), identity=CAROL))
    with pytest.raises(SignatureError):
        InnerMessage.decode(signed(inner_map(), domain="invite/v1"))
    good = cbor.decode(signed(inner_map()), MAX_FRAME_BYTES)
    flipped = bytes([good["sig"][0] ^ 1]) + good["sig"][1:]
    with pytest.raises(SignatureError):
        InnerMessage.decode(cbor.encode({**good, "sig": flipped}))


def test_create_refuses_bad_id_sizes() -> None:
    with pytest.raises(SchemaError):
        InnerMessage.create(
            ALICE,
            id=bytes(15),
            recipient=BOB.peer_id,
            conversation=CONV,
            sent_at_ms=0,
            body=TextBody("x"),
        )


# --- sealing ---------------------------------------------------------------------------------


def message(sender: Identity = ALICE, recipient: PeerId = BOB.peer_id) -> InnerMessage:
    return InnerMessage.create(
        sender, id=ID, recipient=recipient, conversation=CONV, sent_at_ms=7, body=TextBody("yo")
    )


def session_message(sender: PeerId = ALICE.peer_id, ct: bytes = b"ct") -> SessionMessage:
    return SessionMessage(sender, None, bytes(32), 0, 0, ct)


def test_seal_and_open() -> None:
    sm = session_message()
    env = seal(BOB.peer_id, sm, 1234)
    assert (env.recipient, env.expires_at_s) == (BOB.peer_id, 1234)
    assert env.id == envelope_id(BOB.peer_id, 1234, env.sealed)
    assert sm.encode() not in env.sealed and ALICE.peer_id.raw not in env.sealed
    assert open_envelope(BOB, Envelope.decode(env.encode())) == sm


def test_sealing_is_libsodium_sealed_box() -> None:
    env = seal(BOB.peer_id, session_message(), 1)
    box = nacl.public.SealedBox(nacl.public.PrivateKey(BOB.x25519_private_key))
    assert SessionMessage.decode(box.decrypt(env.sealed)) == session_message()
    # Fresh ephemeral key each time.
    assert seal(BOB.peer_id, session_message(), 1).sealed != env.sealed


def test_envelope_for_someone_else_is_wrong_recipient() -> None:
    env = seal(BOB.peer_id, session_message(), 1)
    with pytest.raises(WrongRecipient):
        open_envelope(CAROL, env)


def test_opening_with_another_identity_fails_to_decrypt() -> None:
    # Addressed to Carol, but sealed to Bob's key.
    sealed_to_bob = seal(BOB.peer_id, session_message(), 1).sealed
    with pytest.raises(DecryptError):
        open_envelope(CAROL, Envelope(CAROL.peer_id, ID, 1, sealed_to_bob))


@pytest.mark.parametrize("box", [b"", b"x", bytes(48), bytes(200)])
def test_garbage_box_fails_to_decrypt(box: bytes) -> None:
    with pytest.raises(DecryptError):
        open_envelope(BOB, Envelope(BOB.peer_id, ID, 1, box))


def test_damaged_box_fails_to_decrypt() -> None:
    env = seal(BOB.peer_id, session_message(), 1)
    for i in (0, 40, len(env.sealed) - 1):
        damaged = bytearray(env.sealed)
        damaged[i] ^= 0x80
        with pytest.raises(DecryptError):
            open_envelope(BOB, Envelope(BOB.peer_id, ID, 1, bytes(damaged)))


def test_sealed_content_that_is_not_a_session_message_is_a_wire_error() -> None:
    box = nacl.public.SealedBox(nacl.public.PublicKey(BOB.peer_id.x25519_public_key))
    for plain in (b"not cbor", cbor.encode({"v": 1}), cbor.encode({**session_map(), "v": 9})):
        with pytest.raises(WireError):
            open_envelope(BOB, Envelope(BOB.peer_id, ID, 1, box.encrypt(plain)))


def test_check_inner_accepts_the_session_peers_message() -> None:
    inner = message()
    assert check_inner(BOB, session_message(), inner.encode()) == inner


def test_check_inner_refuses_another_signer() -> None:
    # The session says Alice, but Carol signed the message inside.
    inner = message(sender=CAROL)
    with pytest.raises(SignatureError, match="another peer"):
        check_inner(BOB, session_message(sender=ALICE.peer_id), inner.encode())


def test_check_inner_refuses_another_recipient() -> None:
    inner = message(recipient=CAROL.peer_id)
    with pytest.raises(WrongRecipient):
        check_inner(BOB, session_message(), inner.encode())


def test_check_inner_refuses_tampered_plaintext() -> None:
    data = bytearray(message().encode())
    data[data.index(b"yo")] = ord("Y")
    with pytest.raises(SignatureError):
        check_inner(BOB, session_message(), bytes(data))


def test_sealing_with_the_callers_ephemeral_key_is_a_libsodium_sealed_box() -> None:
    """The caller's randomness decides the box, and so the envelope id (seeded runs)."""
    secret = bytes(range(32))
    env = seal(BOB.peer_id, session_message(), 1, secret)
    assert seal(BOB.peer_id, session_message(), 1, secret) == env
    assert seal(BOB.peer_id, session_message(), 1, bytes(31) + b"\x01").id != env.id
    box = nacl.public.SealedBox(nacl.public.PrivateKey(BOB.x25519_private_key))
    assert SessionMessage.decode(box.decrypt(env.sealed)) == session_message()
    assert len(env.sealed) == len(session_message().encode()) + 48
    env.check_id()
