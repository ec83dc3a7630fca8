"""Frozen wire vectors: bytes written by an earlier p2pdm must keep decoding the same way.

The vectors in ``tests/core/vectors/wire-v1.json`` were written once by
``scripts/make_vectors.py``. These tests only read them; they never make new
ones. If a test here fails, the change broke compatibility with data already
on the network or in mailboxes: fix the code, not the vector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from p2pdm import errors
from p2pdm.core.identity import Identity, PeerId, safety_number
from p2pdm.core.invite import parse_invite
from p2pdm.core.kinds import UnknownBody
from p2pdm.core.model import OutboxItem, direct_conversation_id
from p2pdm.core.replay import rekeyed
from p2pdm.core.sealing import open_envelope
from p2pdm.core.session import verify_bundle
from p2pdm.core.wire import (
    Body,
    Envelope,
    InnerMessage,
    PrekeyBundle,
    ReceiptBody,
    SessionMessage,
    TextBody,
)

DOC = json.loads((Path(__file__).parent / "vectors" / "wire-v1.json").read_text(encoding="utf-8"))
VECTORS: dict[str, dict[str, Any]] = DOC["vectors"]
IDENTITIES = {
    name: Identity(bytes.fromhex(ident["seed"])) for name, ident in DOC["identities"].items()
}
DECODERS = {
    "InnerMessage": InnerMessage.decode,
    "PrekeyBundle": PrekeyBundle.decode,
    "SessionMessage": SessionMessage.decode,
    "Envelope": Envelope.decode,
}


def names(*types: str, refused: bool = False) -> list[str]:
    return [
        name
        for name, v in VECTORS.items()
        if v["type"] in types and ("refused_with" in v) == refused
    ]


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def body_fields(body: Body) -> dict[str, Any]:
    if isinstance(body, TextBody):
        return {"text": body.text, "reply_to": body.reply_to.hex() if body.reply_to else None}
    if isinstance(body, ReceiptBody):
        return {"status": body.status, "ids": [i.hex() for i in body.ids]}
    assert isinstance(body, UnknownBody)
    return {"fields": body.fields}


def bundle_fields(b: PrekeyBundle) -> dict[str, Any]:
    return {
        "peer": str(b.peer),
        "spk": b.signed_prekey.hex(),
        "spk_sig": b.signed_prekey_sig.hex(),
        "opks": [k.hex() for k in b.one_time_prekeys],
        "ts": b.created_at_s,
    }


def fields_of(obj: object) -> dict[str, Any]:
    """The decoded object in the vector file's notation."""
    if isinstance(obj, InnerMessage):
        return {
            "id": obj.id.hex(),
            "from": str(obj.sender),
            "to": str(obj.recipient),
            "conv": obj.conversation.hex(),
            "ts": obj.sent_at_ms,
            "kind": obj.kind,
            "body": body_fields(obj.body),
            "sig": obj.signature.hex(),
        }
    if isinstance(obj, PrekeyBundle):
        return bundle_fields(obj)
    if isinstance(obj, SessionMessage):
        h = obj.x3dh
        return {
            "from": str(obj.sender),
            "x3dh": None
            if h is None
            else {
                "ek": h.ephemeral_key.hex(),
                "spk": h.signed_prekey.hex(),
                "opk": h.one_time_prekey.hex() if h.one_time_prekey else None,
            },
            "dh": obj.ratchet_key.hex(),
            "pn": obj.previous_chain_length,
            "n": obj.index,
            "ct": obj.ciphertext.hex(),
        }
    if isinstance(obj, Envelope):
        return {
            "to": str(obj.recipient),
            "id": obj.id.hex(),
            "exp": obj.expires_at_s,
            "box": obj.sealed.hex(),
        }
    raise TypeError(obj)


def expected(vector: dict[str, Any]) -> dict[str, Any]:
    expect = dict(vector["expect"])
    if "body" in expect and "fields" in expect["body"]:
        expect["body"] = {"fields": from_json(expect["body"]["fields"])}
    return expect


def test_the_file_covers_every_wire_type() -> None:
    kinds = {v["type"] for v in VECTORS.values() if "refused_with" not in v}
    assert kinds == {*DECODERS, "Invite", "ConversationId", "SafetyNumber"}
    bodies = {VECTORS[n]["expect"]["kind"] for n in names("InnerMessage")}
    assert {"text", "receipt"} < bodies and len(bodies) >= 3
    headers = [VECTORS[n]["expect"]["x3dh"] for n in names("SessionMessage")]
    assert None in headers
    assert any(h and h["opk"] for h in headers) and any(h and not h["opk"] for h in headers)


def test_identities_match_their_peer_ids() -> None:
    for name, ident in DOC["identities"].items():
        assert str(IDENTITIES[name].peer_id) == ident["peer_id"]


@pytest.mark.parametrize("name", names(*DECODERS))
def test_vector_decodes_to_its_fields(name: str) -> None:
    vector = VECTORS[name]
    data = bytes.fromhex(vector["hex"])
    decoded = DECODERS[vector["type"]](data)
    assert fields_of(decoded) == expected(vector)
    # Canonical: encoding what was decoded gives the very same bytes.
    assert decoded.encode() == data  # type: ignore[attr-defined]


def test_prekey_bundle_signature_still_verifies() -> None:
    for name in names("PrekeyBundle"):
        verify_bundle(PrekeyBundle.decode(bytes.fromhex(VECTORS[name]["hex"])))


def test_inner_messages_are_in_the_direct_conversation() -> None:
    for name in names("InnerMessage"):
        msg = InnerMessage.decode(bytes.fromhex(VECTORS[name]["hex"]))
        assert msg.conversation == direct_conversation_id(msg.sender, msg.recipient)


@pytest.mark.parametrize("name", names("Envelope"))
def test_envelope_opens_to_the_session_message_it_holds(name: str) -> None:
    vector = VECTORS[name]
    envelope = Envelope.decode(bytes.fromhex(vector["hex"]))
    opened = open_envelope(IDENTITIES[vector["opens_with"]], envelope)
    inside = bytes.fromhex(VECTORS[vector["contains"]]["hex"])
    assert opened.encode() == inside
    assert opened == SessionMessage.decode(inside)


@pytest.mark.parametrize("name", names("Invite"))
def test_invite_parses_to_its_fields(name: str) -> None:
    vector = VECTORS[name]
    invite = parse_invite(vector["text"], vector["now"])
    expect = vector["expect"]
    assert str(invite.peer_id) == expect["peer"]
    assert invite.name == expect["name"]
    assert list(invite.addrs) == expect["addrs"]
    assert invite.expires_at_s == expect["exp"]
    assert bundle_fields(invite.bundle) == expect["bundle"]
    verify_bundle(invite.bundle)


@pytest.mark.parametrize("name", names("ConversationId", "SafetyNumber"))
def test_derived_values_are_stable(name: str) -> None:
    vector = VECTORS[name]
    a, b = IDENTITIES[vector["a"]].peer_id, IDENTITIES[vector["b"]].peer_id
    if vector["type"] == "ConversationId":
        assert direct_conversation_id(a, b).hex() == vector["expect"]
        assert direct_conversation_id(b, a).hex() == vector["expect"]
    else:
        assert safety_number(a, b) == vector["expect"]


@pytest.mark.parametrize("name", names(*DECODERS, refused=True))
def test_refused_vectors_stay_refused(name: str) -> None:
    vector = VECTORS[name]
    error = getattr(errors, vector["refused_with"])
    with pytest.raises(error):
        DECODERS[vector["type"]](bytes.fromhex(vector["hex"]))


def test_peer_ids_in_the_file_parse() -> None:
    for ident in DOC["identities"].values():
        assert str(PeerId.parse(ident["peer_id"])) == ident["peer_id"]


def test_a_frozen_envelope_predates_bound_ids_and_can_be_rekeyed() -> None:
    """v1 envelopes made before ids were bound to content still decode; their id
    fails the check (receivers and mailboxes refuse them), and the sender's
    re-keying keeps the sealed bytes, so the recipient opens the same message."""
    vector = VECTORS["envelope"]
    envelope = Envelope.decode(bytes.fromhex(vector["hex"]))
    with pytest.raises(errors.EnvelopeIdMismatch):
        envelope.check_id()
    item = OutboxItem(envelope.id, bytes(16), envelope.recipient, envelope.encode(), 0, 1, 0)
    fresh = rekeyed(item)
    assert fresh is not None and rekeyed(fresh) is None
    again = Envelope.decode(fresh.envelope)
    again.check_id()
    assert (again.recipient, again.expires_at_s, again.sealed) == (
        envelope.recipient,
        envelope.expires_at_s,
        envelope.sealed,
    )
    opened = open_envelope(IDENTITIES[vector["opens_with"]], again)
    assert opened.encode() == bytes.fromhex(VECTORS[vector["contains"]]["hex"])
