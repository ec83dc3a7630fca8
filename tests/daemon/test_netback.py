"""When the peer watch counts the node's network as back (and fetches from its mailboxes)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.daemon.netback import SLEPT_SECONDS, NetworkBack, gone_after
from p2pdm.daemon.runner import PEER_WATCH_SECONDS
from p2pdm.net.upkeep import DEFAULT_UPKEEP, Upkeep

GONE = 20.0


@dataclass(frozen=True)
class Look:
    now: float
    wall: float
    opened: frozenset[int]
    failed: int = 0  # bootstrap dials failed since the start


def looks_of(watch: NetworkBack, looks: list[Look]) -> list[bool]:
    return [watch.observe(look.now, look.wall, look.opened, look.failed) for look in looks]


def every(period: float, start: float, *sets: frozenset[int]) -> list[Look]:
    """Looks ``period`` apart from ``start``, the wall clock following the monotonic one."""
    return [Look(start + i * period, start + i * period, s) for i, s in enumerate(sets)]


NONE: frozenset[int] = frozenset()


def test_the_bound_is_a_failed_redial_round() -> None:
    # Production: a 60 s retry, a 10 s maintenance round, a 5 s dial, a 2 s look.
    assert gone_after(DEFAULT_UPKEEP, PEER_WATCH_SECONDS) == 77.0
    quick = Upkeep(interval=0.5, idle_timeout=3, dht_refresh_interval=5, bootstrap_retry_interval=1)
    assert gone_after(quick, 2.0) == 8.5
    with pytest.raises(ValueError, match="positive"):
        NetworkBack(0)


def test_connections_that_idle_out_and_come_back_fetch_nothing() -> None:
    watch = NetworkBack(GONE)
    # Connected, then quiet spells of up to just under the bound, again and again.
    sets = [frozenset({1})] + [NONE] * 9 + [frozenset({2})] + [NONE] * 9 + [frozenset({3, 4})]
    assert not any(looks_of(watch, every(2.0, 0.0, *sets)))


def test_a_spell_longer_than_failed_dials_take_is_the_network_back_once() -> None:
    watch = NetworkBack(GONE)
    sets = [frozenset({1})] + [NONE] * 11 + [frozenset({2}), frozenset({2, 3}), frozenset({3})]
    assert looks_of(watch, every(2.0, 0.0, *sets)) == [False] * 12 + [True, False, False]


def test_a_short_spell_in_which_a_bootstrap_dial_failed_is_the_network_back() -> None:
    """A Wi-Fi blip or a partition: the re-dial fails, so however short the
    spell, the first connection after it fetches (once)."""
    looks = [
        Look(0.0, 0.0, frozenset({1})),
        Look(2.0, 2.0, NONE, failed=0),
        Look(4.0, 4.0, NONE, failed=1),  # the re-dial failed
        Look(6.0, 6.0, frozenset({2}), failed=1),
        Look(8.0, 8.0, NONE, failed=1),  # idle again; its re-dial works
        Look(10.0, 10.0, frozenset({3}), failed=1),
    ]
    assert looks_of(NetworkBack(GONE), looks) == [False, False, False, True, False, False]


def test_no_connection_since_the_start_counts_whatever_its_length() -> None:
    watch = NetworkBack(GONE)
    assert looks_of(watch, every(2.0, 0.0, NONE, frozenset({1}), NONE, frozenset({2}))) == [
        False,
        True,  # the start-up round may have run without a network
        False,
        False,  # a short spell after that: idle
    ]
    # Connected at the first look: nothing to catch up.
    assert looks_of(NetworkBack(GONE), every(2.0, 0.0, frozenset({1}), frozenset({1}))) == [
        False,
        False,
    ]


def test_after_a_sleep_the_first_connection_opened_since_is_the_network_back() -> None:
    watch = NetworkBack(GONE)
    looks = [
        Look(0.0, 0.0, frozenset({1, 2})),
        Look(2.0, 2.0, frozenset({1, 2})),
        # An hour asleep: the monotonic clock stood still, the wall clock did not.
        Look(4.0, 3604.0, frozenset({1, 2})),  # the old connections still look open
        Look(6.0, 3606.0, frozenset({2})),
        Look(8.0, 3608.0, NONE),  # they failed; a short spell
        Look(10.0, 3610.0, frozenset({3})),  # the first one opened after the wake
        Look(12.0, 3612.0, frozenset({3, 4})),
    ]
    assert looks_of(watch, looks) == [False] * 5 + [True, False]


def test_the_wall_clock_set_back_or_a_little_ahead_is_no_sleep() -> None:
    watch = NetworkBack(GONE)
    looks = [
        Look(0.0, 100.0, frozenset({1})),
        Look(2.0, 50.0, frozenset({2})),  # set back
        Look(4.0, 52.0 + SLEPT_SECONDS - 1, frozenset({3})),  # ahead, less than a sleep
    ]
    assert looks_of(watch, looks) == [False, False, False]


@st.composite
def histories(draw: st.DrawFn) -> list[Look]:
    """Looks at growing times; connections opened (new numbers), kept or all gone;
    now and then the wall clock jumps ahead (a sleep) or a little."""
    looks: list[Look] = []
    now = wall = 0.0
    opened: frozenset[int] = frozenset()
    counter = failed = 0
    for _ in range(draw(st.integers(1, 40))):
        now_step = draw(st.sampled_from([0.5, 2.0, 2.0, 5.0, 15.0, 30.0]))
        wall_extra = draw(st.sampled_from([0.0, 0.0, 0.0, 1.0, SLEPT_SECONDS, 3600.0]))
        now += now_step
        wall += now_step + wall_extra
        action = draw(st.sampled_from(["keep", "open", "gone", "gone", "drop_one"]))
        if action == "open":
            counter += 1
            opened = opened | {counter}
        elif action == "gone":
            opened = frozenset()
        elif action == "drop_one" and opened:
            opened = opened - {min(opened)}
        failed += draw(st.sampled_from([0, 0, 0, 0, 1]))
        looks.append(Look(now, wall, opened, failed))
    return looks


def reference(looks: list[Look], gone: float) -> list[bool]:
    """The module's rules, restated over the whole history."""
    out: list[bool] = []
    for k, look in enumerate(looks):
        if not look.opened:
            out.append(False)
            continue
        start = k
        while start > 0 and not looks[start - 1].opened:
            start -= 1
        spell = start < k and (
            not any(earlier.opened for earlier in looks[:start])
            or look.now - looks[start].now >= gone
            or look.failed > looks[start].failed
        )
        last_back = max((i for i in range(k) if out[i]), default=-1)
        sleeps = [
            i
            for i in range(max(1, last_back + 1), k + 1)
            if (looks[i].wall - looks[i - 1].wall) - (looks[i].now - looks[i - 1].now)
            >= SLEPT_SECONDS
        ]
        woke = False
        if sleeps:
            before = [n for earlier in looks[: sleeps[-1]] for n in earlier.opened]
            woke = max(look.opened) > max(before, default=0)
        out.append(spell or woke)
    return out


@settings(max_examples=150, deadline=None)
@given(histories())
def test_the_watch_follows_its_rules(looks: list[Look]) -> None:
    said = looks_of(NetworkBack(GONE), looks)
    assert said == reference(looks, GONE)
    # Never back without a connection; never back twice in a row on the same ones.
    for k, back in enumerate(said):
        if back:
            assert looks[k].opened
            if k > 0 and said[k - 1]:
                assert looks[k].opened - looks[k - 1].opened


@settings(max_examples=100, deadline=None)
@given(histories())
def test_without_sleeps_or_long_spells_nothing_is_fetched_after_the_first_connection(
    looks: list[Look],
) -> None:
    """The point of the rule: connections idling out between short spells never fetch."""
    short = [
        Look(i * 2.0, i * 2.0, look.opened) for i, look in enumerate(looks)
    ]  # every spell < GONE unless ≥ 10 looks long; no dial fails
    said = looks_of(NetworkBack(GONE), short)
    first = next((i for i, look in enumerate(short) if look.opened), None)
    for k, back in enumerate(said):
        if not back:
            continue
        start = k
        while start > 0 and not short[start - 1].opened:
            start -= 1
        assert start == 0 or short[k].now - short[start].now >= GONE
        assert first is not None and k >= first
