"""The failure-log throttle: a few lines per peer and window, then one count."""

from __future__ import annotations

import logging
import os

import pytest

from p2pdm.core.identity import Identity
from p2pdm.core.ratelimit import FailureLog, Pacer

log = logging.getLogger("p2pdm.test-throttle")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == log.name]


def test_first_few_then_a_count_when_the_window_closes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    peer = Identity(os.urandom(32)).peer_id
    throttle = FailureLog(log, "bad frames", first=2, window_s=10)
    for i in range(1_000):
        throttle.note(i / 1_000, peer, "bad frame %d", i)
    assert lines(caplog) == ["bad frame 0", "bad frame 1"]
    throttle.flush(9.9)
    assert len(lines(caplog)) == 2  # the window is not over yet
    throttle.flush(10.0)
    assert lines(caplog)[2:] == [
        f"dropped 998 more bad frames from {peer.short()} in the last 10 s"
    ]
    throttle.note(11.0, peer, "bad frame %d", 1_000)  # a new window logs again
    assert lines(caplog)[-1] == "bad frame 1000"


def test_the_peer_table_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    peers = [Identity(bytes([i + 1]) * 32).peer_id for i in range(5)]
    throttle = FailureLog(log, "refusals", first=1, window_s=60, max_peers=3)
    for peer in peers:
        for _ in range(3):
            throttle.note(0.0, peer, "refused")
    assert len(throttle._windows) == 3
    # The two oldest windows were closed early, each with its count.
    summaries = [line for line in lines(caplog) if line.startswith("dropped")]
    assert summaries == [
        f"dropped 2 more refusals from {peer.short()} in the last 1 s" for peer in peers[:2]
    ]


def test_a_pacer_allows_one_go_per_interval_per_peer_and_forgets_the_oldest() -> None:
    a, b, c = (Identity(bytes([i]) * 32).peer_id for i in (1, 2, 3))
    pacer = Pacer(30.0, cap=2)
    assert pacer.allow(a, 0.0) and not pacer.allow(a, 29.9) and pacer.allow(a, 30.0)
    assert pacer.allow(b, 31.0) and not pacer.allow(b, 40.0)
    assert pacer.allow(c, 41.0)  # a third peer: the one paced longest ago (a) is forgotten
    assert pacer.allow(a, 42.0) and not pacer.allow(c, 43.0)
    with pytest.raises(ValueError):
        Pacer(1.0, cap=0)
