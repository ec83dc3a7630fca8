"""Message kinds through two messengers: unknown kinds kept, a kind added in a test, ext fields."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import pytest

from p2pdm.core import cbor
from p2pdm.core.cbor import Fields
from p2pdm.core.identity import Identity
from p2pdm.core.kinds import KINDS, KindSpec, TextBody, UnknownBody, decode_stored
from p2pdm.core.kinds.base import decode_ext, encode_ext
from p2pdm.core.model import Direction, direct_conversation_id
from p2pdm.errors import ReplayError, SchemaError
from p2pdm.limits import MAX_EXT_BYTES, MAX_FRAME_BYTES, MAX_UNKNOWN_BODY_BYTES
from p2pdm.node.messenger import Messenger, Outgoing, is_unsupported, message_text


def send_as_newer(sender: Messenger, to: Messenger, kind: str, fields: dict[str, Any]) -> Outgoing:
    """What a newer version sends: a kind this version has no module for."""
    assert kind not in KINDS
    return sender._send(to.peer_id, UnknownBody(kind, fields))


def test_an_unknown_kind_is_stored_and_shown_as_unsupported(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    fields = {"emoji": "🎉", "to": os.urandom(16), "nested": {"n": [1, None]}}
    out = send_as_newer(alice, bob, "reaction", fields)
    got = bob.receive(out.outbox.envelope)
    assert got.outcome == "stored" and got.message is not None
    assert got.effects is not None and got.effects.unsupported
    conv = direct_conversation_id(alice.peer_id, bob.peer_id)
    [kept] = bob.store.messages(conv, 10).messages
    assert kept.id == out.outbox.message_id and kept.kind == "reaction"
    assert kept.direction is Direction.IN
    # The body is kept as signed, so a later version can read it.
    assert cbor.decode(kept.body, MAX_FRAME_BYTES) == fields
    assert is_unsupported(kept) and message_text(kept) is None
    assert bob.store.list_conversations()[0].unread == 1
    with pytest.raises(ReplayError):  # stored under its id: exactly once
        bob.receive(out.outbox.envelope)


def test_a_strangers_unknown_kind_is_a_request(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    alice = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    alice.add_contact(bob.peer_id, "bob", bob.bundle())
    got = bob.receive(send_as_newer(alice, bob, "sticker", {"id": 3}).outbox.envelope)
    assert got.outcome == "request" and got.message is not None and got.message.request
    assert bob.store.counts()["requests"] == 1


def test_an_unknown_body_over_its_cap_stores_nothing(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    out = send_as_newer(alice, bob, "sticker", {"data": b"x" * MAX_UNKNOWN_BODY_BYTES})
    before = bob.store.counts()
    with pytest.raises(SchemaError, match="too large"):
        bob.receive(out.outbox.envelope)
    assert bob.store.counts() == before


# --- a kind added in a test: one body, one decoder, one spec, one registry entry --


@dataclass(frozen=True, slots=True)
class PokeBody:
    strength: int
    ext: dict[str, Any] | None = None  # every kind's body may carry ext (§6.4)
    kind: Literal["poke"] = field(default="poke", init=False)


def _decode_poke(fields: Fields) -> PokeBody:
    strength = fields.integer("strength", 1, 10)
    ext = decode_ext(fields)
    fields.done()
    return PokeBody(strength, ext)


POKE: Final = KindSpec(
    name="poke",
    body_type=PokeBody,
    decode=_decode_poke,
    encode=lambda body: encode_ext({"strength": body.strength}, body.ext),
    max_body_bytes=MAX_EXT_BYTES + 64,
    shown=True,
    targets=False,
    from_strangers=False,
    stored=True,
)


@pytest.fixture
def poke(monkeypatch: pytest.MonkeyPatch) -> KindSpec[PokeBody]:
    monkeypatch.setitem(KINDS, POKE.name, POKE)
    return POKE


def test_a_registered_kind_round_trips_through_the_messenger(pair, poke) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    out = alice.send(bob.peer_id, PokeBody(7))
    assert out.message is not None and out.message.kind == "poke"
    got = bob.receive(out.outbox.envelope)
    assert got.outcome == "stored" and got.inner.body == PokeBody(7)
    assert got.message is not None and not is_unsupported(got.message)
    assert decode_stored("poke", got.message.body) == PokeBody(7)
    assert message_text(got.message) is None


def test_a_kind_strangers_may_not_send_is_accepted_but_not_kept(make_store, clock, poke) -> None:  # type: ignore[no-untyped-def]
    alice = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    alice.add_contact(bob.peer_id, "bob", bob.bundle())
    got = bob.receive(alice.send(bob.peer_id, PokeBody(1)).outbox.envelope)
    assert got.outcome == "other" and got.message is None
    assert bob.store.counts()["messages"] == 0


def test_a_registered_kinds_bad_body_is_refused(pair, poke) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    # A body only another version's decoder would take.
    out = alice._send(bob.peer_id, UnknownBody("poke", {"strength": 99}))
    before = bob.store.counts()
    with pytest.raises(SchemaError, match="strength"):
        bob.receive(out.outbox.envelope)
    assert bob.store.counts() == before


def test_only_registered_kinds_can_be_sent(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    with pytest.raises(SchemaError, match="not a message kind"):
        alice.send(bob.peer_id, UnknownBody("reaction", {}))
    with pytest.raises(SchemaError, match="not a message kind"):
        alice.send(bob.peer_id, PokeBody(1))  # not registered here
    assert alice.store.counts()["outbox"] == 0


# --- extension fields --------------------------------------------------------------


def test_a_text_with_ext_from_a_newer_sender_shows_its_text(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    ext = {"quote": "what you said", "spans": [[0, 2, "b"]]}
    got = bob.receive(alice.send(bob.peer_id, TextBody("hi", ext=ext)).outbox.envelope)
    assert got.message is not None and message_text(got.message) == "hi"
    assert decode_stored("text", got.message.body) == TextBody("hi", ext=ext)  # kept


def test_a_text_with_a_malformed_ext_is_refused(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    out = alice._send(bob.peer_id, UnknownBody("text", {"text": "hi", "ext": {"": 1}}))
    before = bob.store.counts()
    with pytest.raises(SchemaError, match="ext"):
        bob.receive(out.outbox.envelope)
    assert bob.store.counts() == before
