"""Idle-connection bookkeeping, without sockets or a clock."""

from __future__ import annotations

import pytest

from p2pdm.net.upkeep import IdleTracker, Upkeep


def test_idle_connection_expires_after_the_timeout() -> None:
    tracker: IdleTracker[str] = IdleTracker(10.0)
    assert tracker.observe(0.0, {"a": False}) == []
    assert tracker.observe(9.9, {"a": False}) == []
    assert tracker.observe(10.0, {"a": False}) == ["a"]
    assert len(tracker) == 0  # returned connections are forgotten


def test_busy_connection_restarts_its_clock() -> None:
    tracker: IdleTracker[str] = IdleTracker(10.0)
    tracker.observe(0.0, {"a": False})
    tracker.observe(8.0, {"a": True})
    assert tracker.observe(17.0, {"a": False}) == []
    assert tracker.observe(18.0, {"a": False}) == ["a"]


def test_vanished_connections_are_forgotten() -> None:
    tracker: IdleTracker[str] = IdleTracker(10.0)
    tracker.observe(0.0, {"a": False, "b": False})
    assert tracker.observe(5.0, {"b": False}) == []
    assert len(tracker) == 1
    # "a" comes back (a new connection object would be a new key anyway): fresh clock.
    assert tracker.observe(12.0, {"a": False, "b": False}) == ["b"]
    assert tracker.observe(21.0, {"a": False}) == []
    assert tracker.observe(22.0, {"a": False}) == ["a"]


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        IdleTracker(0.0)


def test_upkeep_periods_must_be_positive() -> None:
    assert Upkeep().idle_timeout == 120.0
    with pytest.raises(ValueError):
        Upkeep(interval=0)
