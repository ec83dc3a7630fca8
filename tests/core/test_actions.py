"""The action kinds' decoders and who may react to, edit or unsend which message."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.core import cbor, conversation
from p2pdm.core.actions import Action, ActionBody, Verdict, action_of, decide
from p2pdm.core.conversation import LocalState
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import KINDS, EditBody, ReactionBody, UnsendBody, decode_stored, encode_body
from p2pdm.core.kinds.reaction import check_own_emoji
from p2pdm.core.model import DeliveryStatus, Direction, StoredMessage, direct_conversation_id
from p2pdm.core.wire import InnerMessage
from p2pdm.errors import SchemaError, WireError
from p2pdm.limits import EDIT_WINDOW_MS, MAX_CLOCK_SKEW_SECONDS, MAX_REACTION_BYTES
from tests.core.conftest import ALICE, BOB, CAROL

NOW = 1_700_000_000_000
TARGET = bytes([9]) * 16
ME, THEM = BOB.peer_id, ALICE.peer_id  # this node is Bob's
CONV = direct_conversation_id(ME, THEM)

ids = st.binary(min_size=16, max_size=16)
bodies = st.one_of(
    st.builds(ReactionBody, ids, st.sampled_from(["", "👍", "❤️", "👨‍👩‍👧", "🇫🇷"])),
    st.builds(EditBody, ids, st.text(min_size=1, max_size=50)),
    st.builds(UnsendBody, ids),
)


@given(bodies)
def test_action_bodies_round_trip(body: ActionBody) -> None:
    data = cbor.encode(encode_body(body))
    assert KINDS[body.kind].decode_bytes(data) == body
    assert decode_stored(body.kind, data) == body


#: The action kinds' bodies as this version writes them: frozen, so a change
#: to how the kinds are built cannot change their bytes on the wire.
FROZEN_BODIES: list[tuple[ActionBody, str]] = [
    (
        ReactionBody(bytes(range(16)), "👍"),
        "a265656d6f6a6964f09f918d6674617267657450000102030405060708090a0b0c0d0e0f",
    ),
    (
        ReactionBody(bytes(range(16)), "", {"x": 1}),
        "a363657874a161780165656d6f6a69606674617267657450000102030405060708090a0b0c0d0e0f",
    ),
    (
        EditBody(bytes(range(16)), "new text"),
        "a26474657874686e657720746578746674617267657450000102030405060708090a0b0c0d0e0f",
    ),
    (
        EditBody(bytes(range(16)), "t", {"a": "b"}),
        "a363657874a161616162647465787461746674617267657450000102030405060708090a0b0c0d0e0f",
    ),
    (UnsendBody(bytes(range(16))), "a16674617267657450000102030405060708090a0b0c0d0e0f"),
    (
        UnsendBody(bytes(range(16)), {"k": [1]}),
        "a263657874a1616b81016674617267657450000102030405060708090a0b0c0d0e0f",
    ),
]


@pytest.mark.parametrize(("body", "wire"), FROZEN_BODIES)
def test_action_bodies_keep_their_frozen_bytes(body: ActionBody, wire: str) -> None:
    assert cbor.encode(encode_body(body)).hex() == wire
    assert decode_stored(body.kind, bytes.fromhex(wire)) == body
    spec = KINDS[body.kind]
    assert spec.target_ids(body) == (body.target,)
    assert (spec.shown, spec.targets, spec.from_strangers, spec.stored) == (
        False,
        True,
        True,
        False,
    )


@pytest.mark.parametrize("kind", ["react", "edit", "unsend"])
def test_an_action_with_an_unknown_field_or_no_target_is_refused(kind: str) -> None:
    wire = next(w for b, w in FROZEN_BODIES if b.kind == kind and b.ext is None)
    fields = cbor.decode_map(bytes.fromhex(wire), 1_000, kind).raw()
    with pytest.raises(SchemaError, match="unknown field"):
        KINDS[kind].decode(cbor.Fields({**fields, "extra": 1}, kind))
    without = {k: v for k, v in fields.items() if k != "target"}
    with pytest.raises(SchemaError, match="target"):
        KINDS[kind].decode(cbor.Fields(without, kind))


@given(st.sampled_from(["react", "edit", "unsend"]), st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_a_decoder(kind: str, data: bytes) -> None:
    with contextlib.suppress(WireError):
        KINDS[kind].decode_bytes(data)


@pytest.mark.parametrize(
    "fields",
    [
        {"target": TARGET, "emoji": "a b"},  # whitespace
        {"target": TARGET, "emoji": "\x1b[2J"},  # control characters
        {"target": TARGET, "emoji": "👍" * (MAX_REACTION_BYTES // 4 + 1)},  # too long
        {"target": TARGET[:15], "emoji": "👍"},  # a short id
        {"target": TARGET, "emoji": "👍", "extra": 1},  # an unknown field
    ],
)
def test_a_bad_reaction_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(SchemaError):
        KINDS["react"].decode_bytes(cbor.encode(fields))


@pytest.mark.parametrize("emoji", ["", "👍", "❤️", "👍🏽", "🇩🇪", "1️⃣", "#️⃣", "‼️", "👨‍👩‍👧"])
def test_what_looks_like_an_emoji_may_be_sent(emoji: str) -> None:
    assert check_own_emoji(emoji) == emoji


@pytest.mark.parametrize("text", ["ab", "1", "!", ":)", "é", "ж", "a👍", "ok👍"])
def test_letters_or_plain_ascii_are_no_reaction_to_send_but_are_received(text: str) -> None:
    with pytest.raises(SchemaError, match="a reaction is an emoji"):
        check_own_emoji(text)
    # Another node's reaction is taken as §6.6 allows: no stricter than that.
    decoded = KINDS["react"].decode_bytes(cbor.encode({"target": TARGET, "emoji": text}))
    assert isinstance(decoded, ReactionBody) and decoded.emoji == text


def test_an_empty_edit_is_refused() -> None:
    with pytest.raises(SchemaError):
        KINDS["edit"].decode_bytes(cbor.encode({"target": TARGET, "text": ""}))


def _theirs(**changes: object) -> StoredMessage:
    """Alice's text as Bob stored it."""
    message = StoredMessage(
        TARGET, CONV, THEM, Direction.IN, "text", b"", NOW, NOW, DeliveryStatus.DELIVERED
    )
    return replace(message, **changes)  # type: ignore[arg-type]


def _mine(**changes: object) -> StoredMessage:
    return _theirs(direction=Direction.OUT, **changes)


def _act(body: ActionBody, sender: PeerId = THEM, at: int = NOW + 1000) -> Action:
    return Action(bytes(16), sender, CONV, at, body)


def test_a_missing_target_holds_the_action() -> None:
    assert decide(_act(UnsendBody(TARGET)), None, ME, NOW).verdict is Verdict.HOLD


def test_only_the_author_edits_or_unsends() -> None:
    for body in (EditBody(TARGET, "x"), UnsendBody(TARGET)):
        assert decide(_act(body), _theirs(), ME, NOW).verdict is Verdict.APPLY
        refused = decide(_act(body), _mine(), ME, NOW)  # Alice on Bob's message
        assert refused.verdict is Verdict.REFUSE and "author" in refused.reason
        assert decide(_act(body, ME), _mine(), ME, NOW).verdict is Verdict.APPLY


def test_both_parties_react_to_either_side() -> None:
    for target in (_mine(), _theirs()):
        assert decide(_act(ReactionBody(TARGET, "👍")), target, ME, NOW).verdict is Verdict.APPLY


def test_an_action_on_another_conversation_is_refused() -> None:
    elsewhere = _theirs(conversation_id=direct_conversation_id(ME, CAROL.peer_id))
    for body in (ReactionBody(TARGET, "👍"), EditBody(TARGET, "x"), UnsendBody(TARGET)):
        decision = decide(_act(body), elsewhere, ME, NOW)
        assert decision.verdict is Verdict.REFUSE and "another conversation" in decision.reason


def test_the_edit_window_and_clock() -> None:
    edit, later = EditBody(TARGET, "x"), NOW + EDIT_WINDOW_MS
    assert decide(_act(edit, at=later), _theirs(), ME, later).verdict is Verdict.APPLY
    late = decide(_act(edit, at=later + 1), _theirs(), ME, later + 1)
    assert late.verdict is Verdict.REFUSE and "minutes" in late.reason
    assert decide(_act(edit, at=NOW - 1), _theirs(), ME, NOW).verdict is Verdict.REFUSE
    # within the window of its target, but ahead of this node's clock past the skew
    ahead = decide(_act(edit, at=NOW + 1000), _theirs(), ME, NOW - MAX_CLOCK_SKEW_SECONDS * 1000)
    assert ahead.verdict is Verdict.REFUSE and "future" in ahead.reason
    assert decide(_act(edit), _theirs(kind="receipt"), ME, NOW).verdict is Verdict.REFUSE


def test_nothing_acts_on_an_unsent_message() -> None:
    gone = _theirs(unsent=True)
    assert decide(_act(UnsendBody(TARGET)), gone, ME, NOW).verdict is Verdict.NOTHING
    for body in (ReactionBody(TARGET, "👍"), EditBody(TARGET, "x")):
        assert decide(_act(body), gone, ME, NOW).verdict is Verdict.REFUSE


def test_the_machine_hands_actions_to_the_caller_and_blocks_blocked_senders() -> None:
    inner = InnerMessage.create(
        ALICE,
        id=bytes(16),
        recipient=ME,
        conversation=CONV,
        sent_at_ms=NOW + 5,
        body=EditBody(TARGET, "new"),
    )
    assert conversation.targets_of(inner) == (TARGET,)
    state = LocalState(me=ME, contact=True, targets={TARGET: _theirs()})
    effects = conversation.on_message(inner, state, NOW + 10)
    assert effects.outcome == "action" and effects.store is None and effects.events == ()
    assert effects.action == action_of(inner, ME)
    assert effects.decision is not None and effects.decision.verdict is Verdict.APPLY
    blocked = conversation.on_message(inner, replace(state, blocked=True), NOW + 10)
    assert blocked.outcome == "blocked" and blocked.action is None
