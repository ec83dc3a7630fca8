"""Handles and profiles: normalisation, the profile in the signed record, ranking."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.core import cbor, records
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.prekeys import OwnPrekeys
from p2pdm.core.profile import Profile, handle_key, normalise_handle, rank_claimants
from p2pdm.errors import ProfileRefused, SchemaError, SignatureError, WireError
from p2pdm.limits import MAX_AVATAR_BYTES, MAX_NODE_RECORD_BYTES

ALICE = Identity(b"\x01" * 32)
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("alice", "alice"),
        ("ALICE", "alice"),
        ("  @Alice.K  ", "alice.k"),
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # fullwidth forms: NFKC makes them ASCII
        ("\ufb01ona", "fiona"),  # the ligature: NFKC
        ("Stra\u00dfe", "strasse"),  # case folding
        ("\u212aate", "kate"),  # KELVIN SIGN: NFKC, then case folding
        ("a_b.c9", "a_b.c9"),
    ],
)
def test_handles_normalise_as_documented(typed: str, normalised: str) -> None:
    assert normalise_handle(typed) == normalised
    assert handle_key(typed) == b"/p2pdm/handle/" + normalised.encode()


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("AL\u0130CE", "U+0307"),  # dotted capital I folds to i + COMBINING DOT ABOVE
        ("\u0430lice", "U+0430"),  # Cyrillic small a
        ("alic\u0435", "U+0435"),  # Cyrillic small ie
        ("al ice", "U+0020"),
        ("al-ice", "'-'"),
        ("al", "3 to 30"),
        ("a" * 31, "3 to 30"),
        ("@", "3 to 30"),
        ("x" * 65, "at most"),
    ],
)
def test_look_alikes_and_bad_handles_are_refused(typed: str, why: str) -> None:
    with pytest.raises(ProfileRefused, match=re.escape(why)):
        normalise_handle(typed)


@given(st.text(max_size=80))
def test_normalising_is_idempotent_or_refuses(text: str) -> None:
    try:
        handle = normalise_handle(text)
    except ProfileRefused:
        return
    assert normalise_handle(handle) == handle
    assert handle.isascii() and 3 <= len(handle) <= 30


def _record(profile: Profile | None, seq: int = 1) -> bytes:
    bundle = OwnPrekeys.create(ALICE, 0).bundle(0)
    return records.NodeRecord(ALICE.peer_id, seq, bundle, (), profile).sign(ALICE)


def test_a_profile_round_trips_in_the_signed_record() -> None:
    profile = Profile("Alice K", "alice.k", "hi there ✨", WEBP)
    value = _record(profile)
    record = records.validate(records.record_key(ALICE.peer_id), value)
    assert record.profile == profile
    assert record.profile.avatar_type == "image/webp"
    # No profile: no field at all (opt-in), and the record decodes to None.
    bare = records.validate(records.record_key(ALICE.peer_id), _record(None))
    assert bare.profile is None
    assert "profile" not in cbor.decode(_record(Profile()), MAX_NODE_RECORD_BYTES)


def test_a_record_with_a_maximal_avatar_fits_the_caps() -> None:
    avatar = b"\xff\xd8\xff" + b"\x00" * (MAX_AVATAR_BYTES - 3)
    profile = Profile("n" * 128, "a" * 30, "é" * 160, avatar)
    value = _record(profile)
    assert len(value) < MAX_NODE_RECORD_BYTES
    assert records.NodeRecord.decode(value).profile == profile


def test_a_tampered_profile_breaks_the_signature() -> None:
    value = cbor.decode(_record(Profile("Alice", "alice")), MAX_NODE_RECORD_BYTES)
    value["profile"]["handle"] = "mallory"
    with pytest.raises(SignatureError):
        records.NodeRecord.decode(cbor.encode(value))


@pytest.mark.parametrize(
    "profile",
    [
        {"handle": "ALICE"},  # not normalised
        {"handle": "\u0430lice"},
        {"name": ""},  # empty fields are left out
        {},  # so is an empty profile
        {"avatar": b"GIF89a"},
        {"avatar": b"\xff\xd8\xff" + b"\x00" * MAX_AVATAR_BYTES},
        {"bio": "x" * 161},
        {"name": "Alice", "extra": 1},
        {"name": 5},
    ],
)
def test_off_schema_profiles_are_refused(profile: dict[str, object]) -> None:
    value = cbor.decode(_record(None), MAX_NODE_RECORD_BYTES)
    value["profile"] = profile
    with pytest.raises(WireError):
        records.NodeRecord.decode(cbor.encode(value))


def test_profiles_refuse_bad_values() -> None:
    with pytest.raises(ProfileRefused):
        Profile(handle="Alice")
    with pytest.raises(ProfileRefused):
        Profile(name=" padded ")
    with pytest.raises(ProfileRefused):
        Profile(avatar=b"not an image")
    assert Profile().empty and not Profile(bio="x").empty
    with pytest.raises(SchemaError):
        cbor.decode_map(b"\x01", 10, "x")


def test_claimants_rank_contacts_first_then_the_longest_seen() -> None:
    peers = [PeerId.from_public_key(bytes([i]) * 32) for i in range(5)]
    first_seen = {peers[0]: 500, peers[1]: 100, peers[2]: 300, peers[3]: 100, peers[4]: 900}
    ranked = rank_claimants(peers, first_seen, contacts={peers[4]}, limit=4)
    tied = sorted([peers[1], peers[3]], key=lambda p: p.raw)
    assert ranked == [peers[4], *tied, peers[2]]


_FIELD_VALUES = st.one_of(
    st.text(max_size=40), st.binary(max_size=40), st.integers(), st.none(), st.booleans()
)


@given(
    st.dictionaries(
        st.sampled_from(["name", "handle", "bio", "avatar", "x"]), _FIELD_VALUES, max_size=5
    )
)
def test_arbitrary_profile_maps_decode_or_are_refused_as_wire_errors(
    profile: dict[str, object],
) -> None:
    try:
        decoded = Profile.from_fields(cbor.Fields(dict(profile), "profile"))
    except WireError:
        return
    # Accepted only in its one encoding: the same map signs the same record.
    assert decoded.to_map() == profile and not decoded.empty
