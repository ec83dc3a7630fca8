"""Scenario files (``p2pdm sim --scenario``) and the seeded plan."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.cli.main import main
from p2pdm.errors import ConfigError
from p2pdm.sim import SimOptions, invariants_hold, simulate, summarize
from p2pdm.sim.timeline import (
    Absence,
    Burst,
    Offline,
    Partition,
    Timeline,
    load_scenario,
    make_plan,
    parse_scenario,
)

EXAMPLE = Path(__file__).parents[2] / "scripts" / "scenarios" / "example.toml"


def test_example_scenario_parses_and_fits() -> None:
    options, timeline = load_scenario(EXAMPLE)
    assert options["nodes"] == 10 and options["clock"] == "virtual"
    assert timeline.offline == (Offline(5, 10.0, 60.0), Offline(7, 40.0, 100.0))
    assert timeline.partitions[0].groups == ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
    assert timeline.bursts == (Burst(45.0, 20),)
    assert [(link.at, link.loss, link.latency) for link in timeline.links] == [
        (70.0, 0.05, 0.1),
        (90.0, 0.0, 0.02),
    ]
    SimOptions(**options, timeline=timeline).check()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("nodez = 3", "unknown key 'nodez'"),
        ("nodes = 2.5", "nodes must be an integer"),
        ("nodes = true", "nodes must be an integer"),
        ("rate = 'fast'", "rate must be a number"),
        ("clock = 'wall'", "clock must be 'real' or 'virtual'"),
        ("link_auth = 'tls'", "link_auth must be 'noise' or 'sim'"),
        ("dht_forming = 'seeded'", "dht_forming must be 'auto', 'join' or 'plan'"),
        ("record_forming = 'seeded'", "record_forming must be 'auto', 'plan' or 'put'"),
        ("partition = '30'", "partition must be START:END"),
        ("partition = [30, 60]", "partition must be a string"),
        ("absence = 3", "expected an array of tables"),
        ("[[absence]]\nnode = 5\nfrom = 10", "[[absence]] #1: missing key 'until'"),
        ("[[absence]]\nnode = 5\nfrom = 10\nuntil = 20\nwhy = 1", "unknown key 'why'"),
        ("[[absence]]\nnode = 5\nfrom = 20\nuntil = 10", "until (10) must be after from (20)"),
        ("[[absence]]\nnode = 5\nfrom = -1\nuntil = 10", "from must be seconds >= 0"),
        ("[[absence]]\nnode = 5\nfrom = 'soon'\nuntil = 10", "from must be a number"),
        ("[[absence]]\nnode = 5\nfrom = nan\nuntil = 10", "from must be seconds >= 0"),
        ("[[split]]\ngroups = [0, 1]\nfrom = 1\nuntil = 2", "groups must be lists"),
        ("[[split]]\ngroups = []\nfrom = 1\nuntil = 2", "groups must not be empty"),
        ("[[burst]]\nat = 5\nmessages = 0", "messages must be between 1"),
        ("[[link]]\nat = 5", "set loss, latency or both"),
        ("[[link]]\nat = 5\nloss = 1.0", "loss is a probability below 1"),
        ("[[link]]\nat = 5\nlatency = -0.1", "latency must be seconds >= 0"),
    ],
)
def test_parse_errors_are_one_line(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario(tomllib.loads(text))
    assert error in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("timeline", "error"),
    [
        (Timeline(offline=(Offline(10, 1, 2),)), "node 10 out of range (0 to 9)"),
        (Timeline(offline=(Offline(1, 1, 2),)), "node 1 is a bootstrap or mailbox node"),
        (Timeline(offline=(Offline(5, 1, 200),)), "time 200 is outside the traffic phase"),
        (
            Timeline(offline=(Offline(5, 1, 20), Offline(5, 10, 30))),
            "node 5's absences overlap",
        ),
        (
            Timeline(offline=(Offline(5, 1, 20), Offline(5, 30, 40))),
            "less than 15 s apart",
        ),
        (Timeline(partitions=(Partition(((0, 1), (1, 2)), 1, 2),)), "node 1 in two groups"),
        (Timeline(partitions=(Partition(((0,), (12,)), 1, 2),)), "node 12 out of range"),
        (
            Timeline(partitions=(Partition(((0,),), 1, 20), Partition(((1,),), 10, 30))),
            "splits overlap in time",
        ),
        (Timeline(bursts=(Burst(121, 1),)), "time 121 is outside"),
    ],
)
def test_timeline_checked_against_options(timeline: Timeline, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        SimOptions(nodes=10, duration=120, clock="virtual", timeline=timeline).check()
    assert error in str(info.value)


def test_real_clock_takes_scripted_splits() -> None:
    timeline = Timeline(partitions=(Partition(((0,), (1,)), 1, 2),))
    SimOptions(clock="real", timeline=timeline).check()  # peer filters over TCP


def test_unreadable_and_bad_toml_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("nodes = = 3")
    with pytest.raises(ConfigError, match=r"bad\.toml: not TOML"):
        load_scenario(bad)


spans = st.tuples(st.floats(0, 1000, allow_nan=False), st.floats(0.001, 1000, allow_nan=False)).map(
    lambda p: (p[0], p[0] + p[1])
)


@given(
    absences=st.lists(st.tuples(st.integers(0, 50), spans), max_size=5),
    bursts=st.lists(
        st.tuples(st.floats(0, 1e4, allow_nan=False), st.integers(1, 1000)), max_size=5
    ),
    options=st.fixed_dictionaries(
        {},
        optional={
            "nodes": st.integers(2, 1000),
            "rate": st.floats(0.01, 100, allow_nan=False),
            "seed": st.integers(0, 2**31),
            "clock": st.sampled_from(["real", "virtual"]),
        },
    ),
)
def test_parse_round_trips_valid_documents(
    absences: list[tuple[int, tuple[float, float]]],
    bursts: list[tuple[float, int]],
    options: dict[str, Any],
) -> None:
    data: dict[str, Any] = dict(options)
    data["absence"] = [{"node": n, "from": a, "until": b} for n, (a, b) in absences]
    data["burst"] = [{"at": at, "messages": count} for at, count in bursts]
    parsed, timeline = parse_scenario(data)
    assert parsed == {k: (float(v) if k == "rate" else v) for k, v in options.items()}
    assert timeline.offline == tuple(Offline(n, a, b) for n, (a, b) in absences)
    assert timeline.bursts == tuple(Burst(at, count) for at, count in bursts)


@given(key=st.text(min_size=1, max_size=20), value=st.integers())
def test_parse_refuses_unknown_keys(key: str, value: int) -> None:
    known = {"nodes", "duration", "rate", "offline", "churn", "mailboxes", "contacts", "loss"}
    known |= {"latency", "partition", "drain", "seed", "clock", "absence", "split", "burst"}
    known |= {"link", "jitter"}
    if key in known:
        return
    with pytest.raises(ConfigError, match="unknown key"):
        parse_scenario({key: value})


def _plan(seed: int) -> Any:
    contacts = {i: [(i + 1) % 12, (i + 5) % 12] for i in range(12)}
    return make_plan(
        seed=seed,
        duration=300,
        rate=2,
        offline=0.3,
        churn=3,
        partition=(30, 60),
        timeline=Timeline(offline=(Offline(6, 10, 50),), bursts=(Burst(100, 30),)),
        contacts=contacts,
        fixed=3,
        offline_seconds=(20, 90),
        churn_away_seconds=(10, 120),
    )


@given(seed=st.integers(0, 2**32))
def test_plan_depends_on_the_seed_only_and_keeps_its_rules(seed: int) -> None:
    plan = _plan(seed)
    assert plan == _plan(seed)
    assert Absence(6, 10, 50, "scripted") in plan.absences
    assert sum(1 for send in plan.sends if send.at == 100) == 30
    for absence in plan.absences:
        assert absence.node >= 3  # bootstrap and mailbox nodes stay
        others = [a for a in plan.absences if a.node == absence.node and a is not absence]
        assert all(a.end <= absence.start or absence.end <= a.start for a in others)
    for send in plan.sends:
        assert not plan.away(send.sender, send.at)
        assert send.recipient_offline == plan.away(send.recipient, send.at)


def test_cli_scenario_file_and_overrides(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        "nodes = 6\nduration = 40\nrate = 0.5\nclock = 'virtual'\nmailboxes = 2\n"
        "[[absence]]\nnode = 4\nfrom = 5\nuntil = 25\n"
        "[[split]]\ngroups = [[0, 1, 2], [3, 4, 5]]\nfrom = 10\nuntil = 20\n"
        "[[burst]]\nat = 30\nmessages = 5\n"
        "[[link]]\nat = 2\nlatency = 0.05\n"
    )
    out = tmp_path / "out"
    args = ["sim", "--scenario", str(scenario), "--seed", "4", "--store", "memory"]
    assert main([*args, "--out", str(out)]) == 0
    import json

    report = json.loads((out / "report.json").read_text())
    assert report["options"]["seed"] == 4  # the command line wins
    assert report["options"]["nodes"] == 6
    assert report["plan"]["scripted"] == 4
    assert report["sent"] == report["plan"]["sends"] >= 5
    assert report["delivery_rate"] == 1.0, report["undelivered"]
    assert report["restarts"] >= 1
    assert report["network"]["breaks"] > 0
    assert invariants_hold(report)


def test_cli_scenario_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text("nodes = 6\n[[absence]]\nnode = 9\nfrom = 5\nuntil = 25\n")
    assert main(["sim", "--scenario", str(scenario)]) == 1
    err = capsys.readouterr().err
    assert "s.toml: [[absence]] #1: node 9 out of range (0 to 5)" in err


@pytest.mark.slow
async def test_example_scenario_runs_in_virtual_time(autojump_clock: trio.abc.Clock) -> None:
    options, timeline = load_scenario(EXAMPLE)
    outcome = await simulate(SimOptions(**options, timeline=timeline))
    summary = summarize(outcome)
    assert summary["sent"] == summary["plan"]["sends"] > 20
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert summary["restarts"] == 2
    assert summary["dht_lookups"]["find_peer"]["count"] > 0
    assert invariants_hold(summary)
