#!/usr/bin/env python3
"""Write p2pdm's frozen wire vectors to tests/core/vectors/wire-v1.json, once.

Every input is fixed (seeds, ids, times, prekeys, the sealed box's ephemeral
key) and Ed25519 signatures are deterministic, so this script always makes
the same bytes. The file is written ONCE; after that it is only read:
``tests/core/test_vectors.py`` checks that today's decoders still accept the old
bytes and read the same fields from them.

    python scripts/make_vectors.py           # write the file if it does not exist
    python scripts/make_vectors.py --check   # does today's code still make the same bytes?

Never edit or regenerate a published vector to make a test pass. A change to
the wire format gets a new version and a new vector file beside this one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import nacl.public
import nacl.signing

from p2pdm.core import cbor
from p2pdm.core.identity import Identity, PeerId, safety_number
from p2pdm.core.invite import make_invite
from p2pdm.core.model import direct_conversation_id
from p2pdm.core.wire import (
    Body,
    Envelope,
    InnerMessage,
    PrekeyBundle,
    ReceiptBody,
    SessionMessage,
    TextBody,
    UnknownBody,
    X3DHHeader,
)

OUT = Path(__file__).resolve().parent.parent / "tests" / "core" / "vectors" / "wire-v1.json"

NOW_S = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW_MS = NOW_S * 1000


def fixed(label: str, size: int = 32) -> bytes:
    """Deterministic bytes named by ``label``."""
    return hashlib.shake_256(b"p2pdm-vectors/" + label.encode()).digest(size)


def x25519_public(label: str) -> bytes:
    return bytes(nacl.public.PrivateKey(fixed(label)).public_key)


def json_value(value: Any) -> Any:
    """CBOR value → JSON: bytes become {"$bytes": hex}."""
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def body_fields(body: Body) -> dict[str, Any]:
    if isinstance(body, TextBody):
        return {"text": body.text, "reply_to": body.reply_to.hex() if body.reply_to else None}
    if isinstance(body, ReceiptBody):
        return {"status": body.status, "ids": [i.hex() for i in body.ids]}
    return {"fields": json_value(body.fields)}


def bundle_fields(b: PrekeyBundle) -> dict[str, Any]:
    return {
        "peer": str(b.peer),
        "spk": b.signed_prekey.hex(),
        "spk_sig": b.signed_prekey_sig.hex(),
        "opks": [k.hex() for k in b.one_time_prekeys],
        "ts": b.created_at_s,
    }


def session_fields(m: SessionMessage) -> dict[str, Any]:
    h = m.x3dh
    return {
        "from": str(m.sender),
        "x3dh": None
        if h is None
        else {
            "ek": h.ephemeral_key.hex(),
            "spk": h.signed_prekey.hex(),
            "opk": h.one_time_prekey.hex() if h.one_time_prekey else None,
        },
        "dh": m.ratchet_key.hex(),
        "pn": m.previous_chain_length,
        "n": m.index,
        "ct": m.ciphertext.hex(),
    }


def deterministic_seal(recipient: PeerId, plaintext: bytes, ephemeral_seed: bytes) -> bytes:
    """libsodium's crypto_box_seal with a fixed ephemeral key (normally random).

    sealed = epk || crypto_box(plaintext, nonce = BLAKE2b-192(epk || rpk), esk, rpk)
    """
    esk = nacl.public.PrivateKey(ephemeral_seed)
    epk = bytes(esk.public_key)
    rpk = recipient.x25519_public_key
    nonce = hashlib.blake2b(epk + rpk, digest_size=24).digest()
    box = nacl.public.Box(esk, nacl.public.PublicKey(rpk))
    return epk + box.encrypt(plaintext, nonce).ciphertext


def inner_vector(alice: Identity, bob: Identity, label: str, body: Body) -> dict[str, Any]:
    msg_id = fixed(f"{label}/id", 16)
    conv = direct_conversation_id(alice.peer_id, bob.peer_id)
    ts = NOW_MS + len(label)
    msg = InnerMessage.create(
        alice, id=msg_id, recipient=bob.peer_id, conversation=conv, sent_at_ms=ts, body=body
    )
    return {
        "type": "InnerMessage",
        "hex": msg.encode().hex(),
        "expect": {
            "id": msg_id.hex(),
            "from": str(alice.peer_id),
            "to": str(bob.peer_id),
            "conv": conv.hex(),
            "ts": ts,
            "kind": body.kind,
            "body": body_fields(body),
            "sig": msg.signature.hex(),
        },
    }


def build() -> dict[str, Any]:
    alice = Identity(fixed("identity/alice"))
    bob = Identity(fixed("identity/bob"))
    vectors: dict[str, Any] = {}

    # --- inner messages -------------------------------------------------------
    vectors["inner_text"] = inner_vector(alice, bob, "inner_text", TextBody("hello, Bob 👋"))
    vectors["inner_text_reply"] = inner_vector(
        alice, bob, "inner_text_reply", TextBody("yes", reply_to=fixed("inner_text/id", 16))
    )
    vectors["inner_receipt"] = inner_vector(
        alice,
        bob,
        "inner_receipt",
        ReceiptBody("read", (fixed("receipt/1", 16), fixed("receipt/2", 16))),
    )
    vectors["inner_unknown_kind"] = inner_vector(
        alice,
        bob,
        "inner_unknown_kind",
        UnknownBody(
            "reaction",
            {"emoji": "👍", "target": fixed("inner_text/id", 16), "extra": [1, -2, True, None]},
        ),
    )

    # --- prekey bundle ----------------------------------------------------------
    spk = x25519_public("bob/spk")
    bundle = PrekeyBundle(
        peer=bob.peer_id,
        signed_prekey=spk,
        signed_prekey_sig=nacl.signing.SigningKey(bob.seed).sign(b"\x02" + spk).signature,
        one_time_prekeys=tuple(x25519_public(f"bob/opk/{i}") for i in range(3)),
        created_at_s=NOW_S,
    )
    vectors["prekey_bundle"] = {
        "type": "PrekeyBundle",
        "hex": bundle.encode().hex(),
        "expect": bundle_fields(bundle),
    }

    # --- session messages ---------------------------------------------------------
    first = SessionMessage(
        sender=alice.peer_id,
        x3dh=X3DHHeader(x25519_public("alice/ek"), spk, bundle.one_time_prekeys[0]),
        ratchet_key=x25519_public("alice/dh/0"),
        previous_chain_length=0,
        index=0,
        ciphertext=fixed("ct/first", 96),
    )
    first_no_opk = SessionMessage(
        sender=alice.peer_id,
        x3dh=X3DHHeader(x25519_public("alice/ek/2"), spk, None),
        ratchet_key=x25519_public("alice/dh/0b"),
        previous_chain_length=0,
        index=1,
        ciphertext=fixed("ct/first-no-opk", 64),
    )
    later = SessionMessage(
        sender=alice.peer_id,
        x3dh=None,
        ratchet_key=x25519_public("alice/dh/1"),
        previous_chain_length=3,
        index=7,
        ciphertext=fixed("ct/later", 48),
    )
    for name, m in [
        ("session_message_x3dh", first),
        ("session_message_x3dh_no_opk", first_no_opk),
        ("session_message", later),
    ]:
        vectors[name] = {
            "type": "SessionMessage",
            "hex": m.encode().hex(),
            "expect": session_fields(m),
        }

    # --- envelope ------------------------------------------------------------------
    sealed = deterministic_seal(bob.peer_id, first.encode(), fixed("envelope/ephemeral"))
    env = Envelope(bob.peer_id, fixed("envelope/id", 16), NOW_S + 14 * 24 * 3600, sealed)
    vectors["envelope"] = {
        "type": "Envelope",
        "hex": env.encode().hex(),
        "expect": {
            "to": str(bob.peer_id),
            "id": env.id.hex(),
            "exp": env.expires_at_s,
            "box": sealed.hex(),
        },
        # Opened with Bob's identity, the box holds exactly this vector's bytes.
        "opens_with": "bob",
        "contains": "session_message_x3dh",
    }

    # --- invite ------------------------------------------------------------------------
    addrs = ["/ip4/192.0.2.7/tcp/4001", "/ip4/192.0.2.7/udp/4001/quic-v1"]
    text = make_invite(bob, "Bob", addrs, bundle, NOW_S, 30 * 24 * 3600)
    vectors["invite"] = {
        "type": "Invite",
        "text": text,
        "now": NOW_S,
        "expect": {
            "peer": str(bob.peer_id),
            "name": "Bob",
            "addrs": addrs,
            "exp": NOW_S + 30 * 24 * 3600,
            "bundle": bundle_fields(bundle),
        },
    }

    # --- derived values users compare across versions ---------------------------------------
    vectors["conversation_id"] = {
        "type": "ConversationId",
        "a": "alice",
        "b": "bob",
        "expect": direct_conversation_id(alice.peer_id, bob.peer_id).hex(),
    }
    vectors["safety_number"] = {
        "type": "SafetyNumber",
        "a": "alice",
        "b": "bob",
        "expect": safety_number(alice.peer_id, bob.peer_id),
    }

    # --- bytes that must always be refused ----------------------------------------------------
    tampered = bytearray(bytes.fromhex(vectors["inner_text"]["hex"]))
    tampered[tampered.index(b"hello")] = ord("j")
    envelope_v2 = cbor.decode(env.encode(), 1 << 20)
    envelope_v2["v"] = 2
    refused = {
        "inner_tampered": ("InnerMessage", bytes(tampered), "SignatureError"),
        "envelope_v2": ("Envelope", cbor.encode(envelope_v2), "UnsupportedVersion"),
        "envelope_repeated_key": (
            "Envelope",
            bytes.fromhex("a2 6176 01 6176 01".replace(" ", "")),
            "MalformedCBOR",
        ),
        "envelope_float_exp": (
            "Envelope",
            env.encode().replace(
                b"\x63exp\x1a" + env.expires_at_s.to_bytes(4, "big"), b"\x63exp\xfb" + bytes(8)
            ),
            "MalformedCBOR",
        ),
    }
    assert refused["envelope_float_exp"][1] != env.encode()
    for name, (kind, data, error) in refused.items():
        vectors[name] = {"type": kind, "hex": data.hex(), "refused_with": error}

    return {
        "about": (
            "Frozen p2pdm wire vectors (format v1). Written once by scripts/make_vectors.py; "
            "never edit or regenerate. Bytes fields are hex; PeerIDs base58; values inside "
            'opaque bodies are JSON with bytes as {"$bytes": hex}.'
        ),
        "identities": {
            "alice": {"seed": alice.seed.hex(), "peer_id": str(alice.peer_id)},
            "bob": {"seed": bob.seed.hex(), "peer_id": str(bob.peer_id)},
        },
        "vectors": vectors,
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored file")
    args = parser.parse_args()
    fresh = render(build())
    if args.check:
        if not OUT.exists():
            print(f"{OUT} does not exist", file=sys.stderr)
            return 1
        if OUT.read_text(encoding="utf-8") != fresh:
            print("today's code makes different bytes than the frozen vectors", file=sys.stderr)
            return 1
        print("vectors match")
        return 0
    if OUT.exists():
        print(f"{OUT} exists; frozen vectors are never regenerated", file=sys.stderr)
        return 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(fresh, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
