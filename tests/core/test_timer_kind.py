"""The ``timer`` kind and a text's ``timer_s``: only the allowed timers decode."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.core import cbor
from p2pdm.core.conversation import LocalState, on_message
from p2pdm.core.kinds import KINDS, TextBody, TimerBody, decode_stored, encode_body
from p2pdm.core.kinds.timer import timer_label
from p2pdm.core.wire import InnerMessage
from p2pdm.errors import SchemaError, WireError
from p2pdm.limits import DISAPPEARING_TIMERS_S
from tests.core.conftest import BOB, inner_map, signed


def decoded(body: dict[str, Any], kind: str) -> InnerMessage:
    return InnerMessage.decode(signed(inner_map(body, kind)))


@pytest.mark.parametrize("timer_s", DISAPPEARING_TIMERS_S)
def test_every_allowed_timer_round_trips(timer_s: int) -> None:
    body = TimerBody(timer_s)
    assert decode_stored("timer", cbor.encode(encode_body(body))) == body
    assert decoded({"timer_s": timer_s}, "timer").body == body
    if timer_s:
        text = TextBody("hi", timer_s=timer_s)
        assert decoded(encode_body(text), "text").body == text


def test_a_text_without_a_timer_encodes_as_before() -> None:
    assert encode_body(TextBody("hi")) == {"text": "hi"}


@pytest.mark.parametrize("bad", [1, 42, 299, 86_401, 604_801, -300, 2**40, "300", 300.0, None])
def test_a_timer_outside_the_allowed_set_is_refused(bad: Any) -> None:
    with pytest.raises(WireError):
        decoded({"timer_s": bad}, "timer")
    with pytest.raises(WireError):
        decoded({"text": "hi", "timer_s": bad}, "text")


def test_a_text_with_a_zero_timer_on_the_wire_is_refused() -> None:
    """Off is the field's absence: one encoding per meaning."""
    with pytest.raises(SchemaError):
        decoded({"text": "hi", "timer_s": 0}, "text")


def test_flags_and_labels() -> None:
    spec = KINDS["timer"]
    assert (spec.shown, spec.stored, spec.targets, spec.from_strangers) == (
        True,
        True,
        False,
        False,
    )
    assert [timer_label(t) for t in DISAPPEARING_TIMERS_S] == [
        "off",
        "5 minutes",
        "1 hour",
        "1 day",
        "7 days",
    ]


def test_a_contacts_timer_notice_sets_the_conversation_and_logs_its_event() -> None:
    inner = decoded({"timer_s": 3_600}, "timer")
    effects = on_message(inner, LocalState(me=BOB.peer_id, contact=True), 5)
    assert effects.timer is not None and effects.timer.timer_s == 3_600
    assert effects.store is not None and effects.show
    assert [e.type.value for e in effects.events] == ["conversation.timer"]
    stranger = on_message(inner, LocalState(me=BOB.peer_id), 5)
    assert stranger.timer is None and stranger.store is None


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash_the_timer_decoder(data: bytes) -> None:
    with contextlib.suppress(WireError):
        KINDS["timer"].decode_bytes(data)
