"""Invites: signed, self-contained strings; every damage is refused with an InviteError."""

from __future__ import annotations

import base64
from typing import Any

import nacl.public
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.core import cbor
from p2pdm.core.identity import Identity
from p2pdm.core.invite import INVITE_SCHEME, make_invite, parse_invite
from p2pdm.core.session import OwnPrekeys
from p2pdm.core.wire import PrekeyBundle
from p2pdm.errors import (
    InviteError,
    InviteExpired,
    InviteFormatError,
    InviteSignatureError,
    WireError,
)
from p2pdm.limits import (
    INVITE_TTL_SECONDS,
    MAX_ADDR_BYTES,
    MAX_ADDRS,
    MAX_CLOCK_SKEW_SECONDS,
    MAX_INVITE_CHARS,
    MAX_NAME_BYTES,
)
from tests.core.conftest import ALICE

MALLORY = Identity(bytes([6]) * 32)
NOW = 1_700_000_000
ADDRS = ["/ip4/192.0.2.1/tcp/4001", "/ip6/2001:db8::1/udp/4001/quic-v1"]


def bundle_for(identity: Identity, n_one_time: int = 3) -> PrekeyBundle:
    """A deterministic bundle with a valid signed-prekey signature (Ed25519 over 0x02 || key)."""
    spk = bytes(nacl.public.PrivateKey(bytes([9]) * 32).public_key)
    sig = nacl.signing.SigningKey(identity.seed).sign(b"\x02" + spk).signature
    opks = tuple(
        bytes(nacl.public.PrivateKey(bytes([10 + i]) * 32).public_key) for i in range(n_one_time)
    )
    return PrekeyBundle(identity.peer_id, spk, sig, opks, NOW)


def invite(identity: Identity = ALICE, name: str = "Alice", **kwargs: Any) -> str:
    return make_invite(identity, name, ADDRS, bundle_for(identity), NOW, **kwargs)


def payload(text: str) -> dict[str, Any]:
    raw = text[len(INVITE_SCHEME) :]
    decoded: dict[str, Any] = cbor.decode(
        base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)), 1 << 16
    )
    return decoded


def to_invite(m: dict[str, Any]) -> str:
    return INVITE_SCHEME + base64.urlsafe_b64encode(cbor.encode(m)).rstrip(b"=").decode()


def resign(m: dict[str, Any], identity: Identity) -> str:
    """Re-encode ``m`` with a valid invite signature by ``identity``."""
    unsigned = {k: v for k, v in m.items() if k != "sig"}
    return to_invite({**unsigned, "sig": identity.sign("invite/v1", cbor.encode(unsigned))})


# --- round trip ------------------------------------------------------------------------------


def test_round_trip() -> None:
    text = invite()
    assert text.startswith("p2pdm:")
    assert "=" not in text and "+" not in text and "/" not in text
    parsed = parse_invite(text, NOW)
    assert parsed.peer_id == ALICE.peer_id
    assert parsed.name == "Alice"
    assert parsed.addrs == tuple(ADDRS)
    assert parsed.bundle == bundle_for(ALICE)
    assert parsed.expires_at_s == NOW + INVITE_TTL_SECONDS


def test_round_trip_with_real_prekeys() -> None:
    bundle = OwnPrekeys.create(ALICE, NOW).bundle()
    parsed = parse_invite(make_invite(ALICE, "Alice", [], bundle, NOW), NOW)
    assert parsed.bundle == bundle
    assert parsed.addrs == ()


def test_invites_are_deterministic() -> None:
    assert invite() == invite()


def test_scheme_is_case_insensitive_and_whitespace_ignored() -> None:
    text = invite()
    assert parse_invite(f"  {text}\n", NOW).name == "Alice"
    assert parse_invite("P2PDM:" + text[len(INVITE_SCHEME) :], NOW).name == "Alice"


def test_the_largest_invite_make_invite_can_make_still_parses() -> None:
    addrs = ["/dns4/" + "a" * (MAX_ADDR_BYTES - 6)] * (MAX_ADDRS + 4)
    bundle = bundle_for(ALICE, n_one_time=16)
    text = make_invite(ALICE, "é" * (MAX_NAME_BYTES // 2), addrs, bundle, NOW)
    assert len(text) <= MAX_INVITE_CHARS
    assert len(parse_invite(text, NOW).addrs) == MAX_ADDRS


def test_make_invite_leaves_out_addresses_nobody_could_read() -> None:
    too_long = "/dns4/" + "a" * MAX_ADDR_BYTES
    parsed = parse_invite(make_invite(ALICE, "A", [too_long, *ADDRS], bundle_for(ALICE), NOW), NOW)
    assert parsed.addrs == tuple(ADDRS)


def test_make_invite_refuses_a_foreign_bundle_or_long_name() -> None:
    with pytest.raises(ValueError, match="bundle"):
        make_invite(ALICE, "A", [], bundle_for(MALLORY), NOW)
    with pytest.raises(ValueError, match="name"):
        make_invite(ALICE, "a" * (MAX_NAME_BYTES + 1), [], bundle_for(ALICE), NOW)


# --- tampering -------------------------------------------------------------------------------


def flip_char(text: str, index: int) -> str:
    old = text[index]
    new = "A" if old != "A" else "B"
    return text[:index] + new + text[index + 1 :]


def test_flipped_character_in_the_middle_breaks_the_signature() -> None:
    text = invite()
    raw = base64.urlsafe_b64decode(text[len(INVITE_SCHEME) :] + "==")
    # Pick the base64 character that sits in the middle of the signed prekey bytes,
    # so the CBOR structure survives and only signed content changes.
    spk_middle = raw.index(bundle_for(ALICE).signed_prekey) + 16
    index = len(INVITE_SCHEME) + spk_middle * 4 // 3
    assert abs(index - len(text) // 2) < len(text) // 3  # it is in the middle
    with pytest.raises(InviteSignatureError):
        parse_invite(flip_char(text, index), NOW)


def test_changed_name_with_old_signature_is_refused() -> None:
    m = payload(invite())
    m["name"] = "Bob"
    with pytest.raises(InviteSignatureError):
        parse_invite(to_invite(m), NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("addrs", ["/ip4/203.0.113.66/tcp/4001"]),
        ("exp", NOW + 10 * INVITE_TTL_SECONDS),
        ("peer", MALLORY.peer_id.raw),
    ],
)
def test_changed_fields_with_old_signature_are_refused(field: str, value: Any) -> None:
    m = payload(invite())
    m[field] = value
    with pytest.raises(InviteSignatureError):
        parse_invite(to_invite(m), NOW)


def test_invite_signed_in_another_domain_is_refused() -> None:
    m = payload(invite())
    unsigned = {k: v for k, v in m.items() if k != "sig"}
    m["sig"] = ALICE.sign("msg/v1", cbor.encode(unsigned))
    with pytest.raises(InviteSignatureError):
        parse_invite(to_invite(m), NOW)


def test_bundle_of_another_peer_is_refused() -> None:
    # Properly signed by Alice, but carrying Mallory's (validly signed) bundle.
    m = payload(invite())
    m["bundle"] = bundle_for(MALLORY).to_map()
    with pytest.raises(InviteSignatureError):
        parse_invite(resign(m, ALICE), NOW)


def test_bundle_with_bad_prekey_signature_is_refused() -> None:
    m = payload(invite())
    m["bundle"]["spk_sig"] = bytes(64)
    with pytest.raises(InviteSignatureError):
        parse_invite(resign(m, ALICE), NOW)


def test_resigned_invite_parses() -> None:
    # The helper itself is right: a properly signed change is accepted.
    m = payload(invite())
    m["name"] = "Alice 2"
    assert parse_invite(resign(m, ALICE), NOW).name == "Alice 2"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_single_character_change_is_detected(data: st.DataObject) -> None:
    text = invite()
    index = data.draw(st.integers(len(INVITE_SCHEME), len(text) - 1))
    char = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    )
    changed = text[:index] + char + text[index + 1 :]
    try:
        parsed = parse_invite(changed, NOW)
    except (InviteFormatError, InviteSignatureError):
        return
    # Only a change that decodes to the very same bytes (unused low bits of the
    # last base64 character) may be accepted, and then it is the same invite.
    assert parsed == parse_invite(text, NOW)


# --- expiry ----------------------------------------------------------------------------------


def test_expired_invite_is_refused() -> None:
    text = invite(ttl_s=3600)
    expires = NOW + 3600
    assert parse_invite(text, expires + MAX_CLOCK_SKEW_SECONDS).expires_at_s == expires
    with pytest.raises(InviteExpired):
        parse_invite(text, expires + MAX_CLOCK_SKEW_SECONDS + 1)
    with pytest.raises(InviteExpired):
        parse_invite(text, expires + 365 * 24 * 3600)


def test_expiry_is_checked_after_the_signature() -> None:
    # A forged invite is reported as forged, not merely as expired.
    m = payload(invite(ttl_s=0))
    m["name"] = "Bob"
    with pytest.raises(InviteSignatureError):
        parse_invite(to_invite(m), NOW + 10 * INVITE_TTL_SECONDS)


# --- format errors ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_truncated_invites_are_format_errors(data: st.DataObject) -> None:
    text = invite()
    cut = data.draw(st.integers(0, len(text) - 1))
    with pytest.raises(InviteFormatError):
        parse_invite(text[:cut], NOW)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
def test_truncated_at_fixed_points(fraction: float) -> None:
    text = invite()
    with pytest.raises(InviteFormatError, match=r"truncated or damaged|not a p2pdm invite"):
        parse_invite(text[: int(len(text) * fraction)], NOW)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "https://example.com/invite",
        "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB",
        "p2pdm",
        "p2pdm:",
        "p2pdm:!!!!",
        "p2pdm:élan",
        "p2pdm:" + base64.urlsafe_b64encode(cbor.encode([1, 2])).decode(),
        "p2pdm:" + base64.urlsafe_b64encode(cbor.encode({"v": 1})).decode(),
        "p2pdm:" + base64.urlsafe_b64encode(b"\xff\x00\x01").decode(),
    ],
)
def test_non_invites_are_format_errors(text: str) -> None:
    with pytest.raises(InviteFormatError):
        parse_invite(text, NOW)


def test_newer_version_is_a_format_error_asking_to_upgrade() -> None:
    m = payload(invite())
    m["v"] = 2
    with pytest.raises(InviteFormatError, match="upgrade"):
        parse_invite(resign(m, ALICE), NOW)
    m = payload(invite())
    m["bundle"]["v"] = 2
    with pytest.raises(InviteFormatError, match="upgrade"):
        parse_invite(resign(m, ALICE), NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("peer", b"\x12\x20" + bytes(32)),
        ("name", "n" * (MAX_NAME_BYTES + 1)),
        ("name", b"Alice"),
        ("addrs", ["/ip4/1.2.3.4/tcp/1"] * (MAX_ADDRS + 1)),
        ("addrs", ["a" * (MAX_ADDR_BYTES + 1)]),
        ("addrs", [b"/ip4/1.2.3.4/tcp/1"]),
        ("exp", -1),
        ("sig", bytes(63)),
        ("bundle", b""),
        ("extra", 1),
    ],
)
def test_bad_fields_are_format_errors(field: str, value: Any) -> None:
    m = payload(invite())
    m[field] = value
    with pytest.raises(InviteFormatError):
        parse_invite(resign(m, ALICE) if field != "sig" else to_invite(m), NOW)


def test_oversized_invites_are_format_errors() -> None:
    with pytest.raises(InviteFormatError, match="longer than"):
        parse_invite("p2pdm:" + "A" * MAX_INVITE_CHARS, NOW)
    # A real invite padded past the limit is refused unread as well.
    with pytest.raises(InviteFormatError, match="longer than"):
        parse_invite(invite() + "A" * MAX_INVITE_CHARS, NOW)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.text(max_size=200).map(lambda t: "p2pdm:" + t))
def test_arbitrary_text_raises_only_invite_errors(text: str) -> None:
    with pytest.raises(InviteError):
        parse_invite(text, NOW)


def test_format_errors_are_wire_errors_and_signature_errors_are_invite_errors() -> None:
    # Callers catch either family.
    assert issubclass(InviteFormatError, WireError)
    assert issubclass(InviteSignatureError, InviteError)
