"""What other peers can make a node's DHT store: the guard's bookkeeping, no I/O.

The attacks through real hosts are in test_net_dht_flood.py.
"""

from __future__ import annotations

import pytest

from p2pdm.net import _dht_guard
from p2pdm.net._dht_guard import (
    DhtGuard,
    DhtLimits,
    Ledger,
    StoreCaps,
    WriteRates,
    WriteRefused,
)
from tests.linecount import lines_run_in


def caps(records: int = 10, per_peer: int = 4, total_bytes: int = 1 << 20) -> StoreCaps:
    return StoreCaps(records, total_bytes, per_peer, 1 << 20)


def test_a_peer_is_capped_and_a_refusal_changes_nothing() -> None:
    ledger: Ledger[str] = Ledger(caps(per_peer=2))
    ledger.admit("a1", "mallory", 10)
    ledger.admit("a2", "mallory", 10)
    with pytest.raises(WriteRefused, match="peer_cap"):
        ledger.admit("a3", "mallory", 10)
    assert (ledger.count, ledger.bytes, ledger.held_by("mallory")) == (2, 20, 2)
    # Replacing one of its own records is not a new record.
    assert ledger.admit("a2", "mallory", 30) == []
    assert (ledger.count, ledger.bytes) == (2, 40)
    # A record taken over by another peer changes owner.
    ledger.admit("a2", "bob", 5)
    assert (ledger.held_by("mallory"), ledger.held_by("bob"), ledger.bytes) == (1, 1, 15)


def test_a_full_store_evicts_the_newest_record_of_the_biggest_holder() -> None:
    ledger: Ledger[str] = Ledger(caps(records=6, per_peer=4))
    ledger.admit("bob", "bob", 1)  # long-held, the only record of its peer
    for i in range(4):
        ledger.admit(f"m{i}", "mallory", 1)
    ledger.admit("t0", "trent", 1)
    # Full: carol holds nothing, mallory 4 -> mallory's newest goes.
    assert ledger.admit("carol", "carol", 1) == ["m3"]
    # trent (1) and mallory (3): mallory's newest again.
    assert ledger.admit("t1", "trent", 1) == ["m2"]
    # Now nobody holds two more than trent (2): refused, nothing moved.
    with pytest.raises(WriteRefused, match="store_full"):
        ledger.admit("t2", "trent", 1)
    assert {item for item in ["bob", "carol", "m0", "m1", "t0", "t1"] if item in ledger} == {
        "bob",
        "carol",
        "m0",
        "m1",
        "t0",
        "t1",
    }


def test_a_flood_of_single_record_peers_never_evicts_a_held_record() -> None:
    ledger: Ledger[str] = Ledger(caps(records=5))
    ledger.admit("bob", "bob", 1)
    for i in range(4):
        ledger.admit(f"s{i}", f"sybil{i}", 1)
    for i in range(4, 50):
        with pytest.raises(WriteRefused, match="store_full"):
            ledger.admit(f"s{i}", f"sybil{i}", 1)
    assert "bob" in ledger and ledger.count == 5


def test_our_own_records_always_fit_and_bytes_are_capped() -> None:
    ledger: Ledger[str] = Ledger(caps(records=5, per_peer=3, total_bytes=100))
    ledger.admit("m0", "mallory", 40)
    ledger.admit("m1", "mallory", 40)
    # 110 bytes > 100: mallory holds two more than bob, so its newest goes.
    assert ledger.admit("b", "bob", 30) == ["m1"]
    with pytest.raises(WriteRefused, match="store_full"):
        ledger.admit("t", "trent", 40)
    assert ledger.bytes == 70
    # Ours (owner None) evict from a peer holding two or more, else exceed the cap.
    assert ledger.admit("own", None, 50) == []
    assert ledger.count == 3 and ledger.bytes == 120
    ledger.forget("own")
    ledger.forget("unknown")
    assert ledger.count == 2 and ledger.bytes == 70


#: Evictions measured per store size (fewer than the small store can make).
EVICTIONS = 2_000
#: Python lines the ledger runs per eviction: measured 52 at 5,000 and at
#: 50,000 records; a scan of the store would run one or more per record.
MAX_LINES_PER_EVICTION = 100


def lines_per_eviction(peers: int) -> float:
    """Lines of the ledger's module run per eviction in a full store of
    ``peers`` peers holding 100 records each: counted work, not time."""
    size = peers * 100
    ledger: Ledger[int] = Ledger(StoreCaps(size, 1 << 40, 100, 1 << 20))
    for i in range(size):
        ledger.admit(i, i // 100, 1)
    with lines_run_in(_dht_guard.__file__) as lines:
        for i in range(size, size + EVICTIONS):
            assert len(ledger.admit(i, f"newcomer{i}", 1)) == 1
    assert ledger.count == size
    return lines() / EVICTIONS


def test_eviction_costs_constant_time_at_50000_records() -> None:
    # libp2p's own eviction scanned the whole store: 70 ms per record at 50,000.
    # The work an eviction does is the same at 5,000 and 50,000 records.
    small, large = lines_per_eviction(50), lines_per_eviction(500)
    assert large <= small * 1.05, (small, large)
    assert large < MAX_LINES_PER_EVICTION, large


def test_write_rates_refill_and_their_table_is_bounded() -> None:
    rates = WriteRates(rate=2.0, burst=3, max_peers=100)
    assert [rates.take("m", 0.0) for _ in range(4)] == [True, True, True, False]
    assert rates.take("m", 0.5)  # one token back after 0.5 s
    assert not rates.take("m", 0.5)
    for i in range(1_000):
        rates.take(i, 1.0)
    assert len(rates) == 100


def test_the_guard_counts_refusals_and_logs_them_in_aggregate() -> None:
    now = [0.0]
    guard = DhtGuard(DhtLimits(write_rate=1.0, write_burst=2), lambda: now[0])
    assert [guard.allows(b"m") for _ in range(5)] == [True, True, False, False, False]
    assert guard.allows(b"bob")
    with pytest.raises(WriteRefused):
        guard.charge(b"m")
    line = guard.summary()
    assert line is not None
    assert "refused: 4 (4 rate) from 1 peers" in line
    assert guard.summary() is None  # nothing new
    assert guard.stats().refused == {"rate": 4}


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        StoreCaps(0, 1, 1, 1)
    with pytest.raises(ValueError):
        DhtLimits(write_rate=0)
