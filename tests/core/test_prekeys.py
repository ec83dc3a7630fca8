"""Own prekeys restored without the x3dh state until it is used.

The bundle a node publishes (no one-time prekeys) comes from the signed
prekey saved beside the x3dh package's state (version 3), so an idle node
never imports the session libraries; everything else builds the state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Final

import pytest

from p2pdm.core import cbor
from p2pdm.core.identity import Identity
from p2pdm.core.prekeys import OwnPrekeys, verify_bundle
from p2pdm.core.session import PeerSessions
from p2pdm.errors import SchemaError, SessionError
from p2pdm.limits import SIGNED_PREKEY_ROTATION_SECONDS

NOW: Final = 1_700_000_000


def _fields(data: bytes) -> dict[str, object]:
    decoded = cbor.decode(data, 1 << 20)
    assert isinstance(decoded, dict)
    return decoded


def _saved(fields: dict[str, object]) -> bytes:
    return cbor.encode(fields)


def _same_state(a: bytes, b: bytes) -> bool:
    """Equal saved states: the x3dh package writes its one-time prekeys from
    a set, whose order depends on how the set was built, so those compare as
    sets and everything else exactly."""

    def meaning(data: bytes) -> dict[str, object]:
        fields = _fields(data)
        x3dh = fields["x3dh"]
        assert isinstance(x3dh, bytes)
        state = json.loads(x3dh)
        state["pre_keys"] = sorted(state["pre_keys"])
        return dict(fields, x3dh=state)

    return meaning(a) == meaning(b)


def test_a_restored_state_publishes_its_bundle_without_building_the_x3dh_state() -> None:
    me = Identity(os.urandom(32))
    own = OwnPrekeys.create(me, NOW)
    data = own.to_bytes()
    assert _fields(data)["v"] == 3
    again = OwnPrekeys.from_bytes(me, data)
    assert again._loaded is None
    assert again.bundle(0) == own.bundle(0)
    verify_bundle(again.bundle(0))
    assert again.to_bytes() == data  # unchanged: saved as it was read
    assert again._loaded is None
    assert again.bundle() == own.bundle()  # none by default (limits.py says why)
    assert again._loaded is None
    # One-time prekeys need the state: built on demand, the same keys.
    assert again.bundle(3) == own.bundle(3)
    assert len(again.bundle(3).one_time_prekeys) == 3
    assert again._loaded is not None
    assert _same_state(again.to_bytes(), data)  # rebuilt: one-time prekeys in any order


def test_a_lazily_restored_state_opens_and_starts_sessions() -> None:
    a, b = Identity(os.urandom(32)), Identity(os.urandom(32))
    oa = OwnPrekeys.from_bytes(a, OwnPrekeys.create(a, NOW).to_bytes())
    ob = OwnPrekeys.from_bytes(b, OwnPrekeys.create(b, NOW).to_bytes())
    ab, ba = PeerSessions(b.peer_id), PeerSessions(a.peer_id)
    first = ab.encrypt(oa, b"hello", ob.bundle(1))
    assert ba.decrypt(ob, first) == b"hello"
    assert ab.decrypt(oa, ba.encrypt(ob, b"back")) == b"back"
    # The used one-time prekey is gone from what is saved.
    assert first.x3dh is not None and first.x3dh.one_time_prekey is not None
    again = OwnPrekeys.from_bytes(b, ob.to_bytes())
    assert first.x3dh.one_time_prekey not in again.bundle().one_time_prekeys


def test_rotation_without_a_built_state_builds_it_and_saves_the_new_signed_prekey() -> None:
    me = Identity(os.urandom(32))
    data = OwnPrekeys.create(me, NOW).to_bytes()
    own = OwnPrekeys.from_bytes(me, data)
    assert not own.maybe_rotate(NOW + 1)
    assert own._loaded is None  # not due: the state is not needed
    before = own.bundle(0)
    assert own.maybe_rotate(NOW + SIGNED_PREKEY_ROTATION_SECONDS)
    after = OwnPrekeys.from_bytes(me, own.to_bytes()).bundle(0)
    assert after.signed_prekey != before.signed_prekey
    assert after.created_at_s == NOW + SIGNED_PREKEY_ROTATION_SECONDS
    verify_bundle(after)


def test_a_version_2_state_is_read_and_flagged_to_be_saved_again() -> None:
    me = Identity(os.urandom(32))
    own = OwnPrekeys.create(me, NOW)
    fields = _fields(own.to_bytes())
    old = {"v": 2, "x3dh": fields["x3dh"], "rotated_at": fields["rotated_at"], "ik": fields["ik"]}
    again = OwnPrekeys.from_bytes(me, _saved(old))
    assert again.outdated
    assert again.bundle(3) == own.bundle(3)
    assert _same_state(again.to_bytes(), own.to_bytes())
    assert not OwnPrekeys.from_bytes(me, again.to_bytes()).outdated


def test_a_damaged_signed_prekey_is_refused() -> None:
    me = Identity(os.urandom(32))
    fields = _fields(OwnPrekeys.create(me, NOW).to_bytes())
    bad_sig = dict(fields, spk_sig=bytes(64))
    with pytest.raises(SessionError, match="signature is bad"):
        OwnPrekeys.from_bytes(me, _saved(bad_sig))
    # A validly signed prekey that is not the state's (another state's):
    # refused when the state is built.
    other = _fields(OwnPrekeys.create(me, NOW).to_bytes())
    mixed = dict(fields, spk=other["spk"], spk_sig=other["spk_sig"])
    own = OwnPrekeys.from_bytes(me, _saved(mixed))
    with pytest.raises(SessionError, match="not the state's"):
        own.check()
    with pytest.raises(SessionError, match="not the state's"):
        own.one_time_count()
    damaged = dict(fields, x3dh=b'{"version": "1.0.0"}')
    with pytest.raises(SessionError, match="damaged"):
        OwnPrekeys.from_bytes(me, _saved(damaged)).check()
    with pytest.raises(SchemaError, match="spk"):
        OwnPrekeys.from_bytes(me, _saved(dict(fields, spk=b"short")))
    with pytest.raises(SessionError, match="another identity"):
        OwnPrekeys.from_bytes(Identity(os.urandom(32)), _saved(fields))


_PROBE: Final = """
import json, sys
from p2pdm.core.identity import Identity
from p2pdm.core.prekeys import OwnPrekeys, verify_bundle
me = Identity(bytes.fromhex(sys.argv[1]))
own = OwnPrekeys.from_bytes(me, bytes.fromhex(sys.argv[2]))
verify_bundle(own.bundle(0))
own.maybe_rotate(int(sys.argv[3]))
heavy = ("x3dh", "doubleratchet", "pydantic", "xeddsa", "p2pdm.core.session")
print(json.dumps([m for m in heavy if m in sys.modules]))
"""


def test_publishing_the_bundle_imports_no_session_library() -> None:
    seed = os.urandom(32)
    data = OwnPrekeys.create(Identity(seed), NOW).to_bytes()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, seed.hex(), data.hex(), str(NOW + 1)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == []


def test_the_public_bundle_is_derived_once_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Invites and record publications ask for the bundle again and again: its
    public keys are derived once until the state changes (a used one-time
    prekey, a rotation), and each change shows at once."""
    import x3dh

    derived: list[int] = []
    original = x3dh.BaseState.bundle

    def counted(state: x3dh.BaseState) -> x3dh.Bundle:
        derived.append(1)
        return original.fget(state)  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(x3dh.BaseState, "bundle", property(counted))
    a, b = Identity(os.urandom(32)), Identity(os.urandom(32))
    oa, ob = OwnPrekeys.create(a, NOW), OwnPrekeys.create(b, NOW)
    first = ob.bundle(2)
    for _ in range(5):
        assert ob.bundle(2) == first and ob.bundle(0).signed_prekey == first.signed_prekey
    assert len(derived) == 1
    # b's first one-time prekey is used: the next bundle offers the others.
    ab, ba = PeerSessions(b.peer_id), PeerSessions(a.peer_id)
    opening = ab.encrypt(oa, b"hello", ob.bundle(1))
    assert ba.decrypt(ob, opening) == b"hello"
    used = opening.x3dh.one_time_prekey if opening.x3dh else None
    assert used is not None and used not in ob.bundle(5).one_time_prekeys
    assert ob.bundle(5) == OwnPrekeys.from_bytes(b, ob.to_bytes()).bundle(5)
    # A rotation: a new signed prekey at once.
    assert ob.maybe_rotate(NOW + SIGNED_PREKEY_ROTATION_SECONDS)
    assert ob.bundle(0).signed_prekey != first.signed_prekey
    verify_bundle(ob.bundle(0))
