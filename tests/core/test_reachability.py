"""The reachability verdict: several peers must agree, one never decides."""

from __future__ import annotations

from p2pdm.core.reachability import REACHABILITY_CONFIRMATIONS, decide


def test_agreeing_peers_decide() -> None:
    assert decide([True] * REACHABILITY_CONFIRMATIONS).status == "public"
    assert decide([False] * REACHABILITY_CONFIRMATIONS).status == "private"


def test_one_peer_never_decides() -> None:
    assert decide([True]).status == "unknown"
    assert decide([False]).status == "unknown"
    assert decide([True, None, None]).status == "unknown"


def test_silence_is_no_evidence() -> None:
    verdict = decide([None, None, None, None])
    assert (verdict.status, verdict.silent) == ("unknown", 4)


def test_a_split_is_unknown_and_a_lone_liar_is_outvoted() -> None:
    assert decide([True, True, False, False]).status == "unknown"
    assert decide([True, False]).status == "unknown"
    assert decide([False, False, False, True]).status == "private"
    verdict = decide([True, True, True, False])
    assert (verdict.status, verdict.reached, verdict.failed) == ("public", 3, 1)
