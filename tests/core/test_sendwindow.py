"""The dm sender's window bookkeeping, without an event loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.core.sendwindow import SendWindow, WindowFull
from p2pdm.errors import ProtocolViolation


def test_numbers_items_and_returns_them_on_ack() -> None:
    window: SendWindow[str] = SendWindow(2)
    assert window.send("a") == 1
    assert window.send("b") == 2
    assert window.full
    with pytest.raises(WindowFull):
        window.send("c")
    assert window.ack(2) == "b"
    assert not window.full
    assert window.send("c") == 3
    assert list(window) == ["a", "c"]


def test_unknown_and_repeated_acks_are_protocol_violations() -> None:
    window: SendWindow[str] = SendWindow(4)
    with pytest.raises(ProtocolViolation, match="unknown frame 1"):
        window.ack(1)
    seq = window.send("a")
    window.ack(seq)
    with pytest.raises(ProtocolViolation):
        window.ack(seq)


def test_reset_returns_in_flight_oldest_first_and_forgets_them() -> None:
    window: SendWindow[str] = SendWindow(3)
    for item in "abc":
        window.send(item)
    window.ack(2)
    assert window.reset() == ["a", "c"]
    assert len(window) == 0
    with pytest.raises(ProtocolViolation):
        window.ack(1)  # a late ack for a reset item
    assert window.send("d") == 4  # numbers are never reused on a stream


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SendWindow(0)


# send: None; ack: an index into the sequence numbers handed out so far (or a
# number never handed out); reset: True.
operations = st.lists(
    st.one_of(
        st.none(),
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=40)),
        st.just(True),
    ),
    max_size=80,
)


@given(size=st.integers(min_value=1, max_value=8), ops=operations)
def test_window_matches_a_model(size: int, ops: list[object]) -> None:
    """Against a plain dict: never more than ``size`` in flight, numbers grow, acks and
    resets return exactly what was sent under those numbers."""
    window: SendWindow[int] = SendWindow(size)
    model: dict[int, int] = {}
    issued: list[int] = []
    last = 0
    for n, op in enumerate(ops):
        if op is None:
            if len(model) >= size:
                with pytest.raises(WindowFull):
                    window.send(n)
                continue
            seq = window.send(n)
            assert seq > last
            last = seq
            model[seq] = n
            issued.append(seq)
        elif op is True:
            assert window.reset() == [model[s] for s in sorted(model)]
            model.clear()
        else:
            assert isinstance(op, tuple)
            known, index = op
            seq = issued[index % len(issued)] if known and issued else last + 1 + index
            if seq in model:
                assert window.ack(seq) == model.pop(seq)
            else:
                with pytest.raises(ProtocolViolation):
                    window.ack(seq)
        assert len(window) == len(model) <= size
        assert window.full == (len(model) == size)
        assert list(window) == [model[s] for s in sorted(model)]
