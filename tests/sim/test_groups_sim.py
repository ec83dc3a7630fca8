"""The simulator's group traffic: the seeded plan, the ledger's figures and invariants,
the report's Groups section and the options that refuse what cannot run."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from p2pdm.errors import ConfigError
from p2pdm.sim import invariants_hold, simulate, summarize
from p2pdm.sim.groups import GroupLedger, GroupSpec, group_invariants, plan_groups, render_groups
from p2pdm.sim.options import SimOptions


def test_the_plan_is_drawn_from_the_seed_alone() -> None:
    args: dict[str, Any] = {"nodes": 10, "groups": 3, "size": 4, "duration": 60.0, "rate": 1.0}
    plan = plan_groups(seed=7, **args)
    assert plan == plan_groups(seed=7, **args)
    assert plan != plan_groups(seed=8, **args)
    assert [len(set(g.members)) for g in plan.groups] == [4, 4, 4]
    assert all(0 <= m < 10 for g in plan.groups for m in g.members)
    assert 30 < len(plan.sends) < 100  # Poisson at 1/s over 60 s
    assert all(0 <= s.at < 60 and 0 <= s.group < 3 for s in plan.sends)
    assert plan_groups(seed=7, **{**args, "groups": 0}).groups == ()
    # A sender is one of the members online, whatever the pick.
    send = plan.sends[0]
    assert plan.sender(send, [4, 5]) in (4, 5)
    assert plan.sender(send, []) is None


def test_the_ledger_counts_member_copies_and_flags_duplicates_and_outsiders() -> None:
    ledger = GroupLedger()
    spec = GroupSpec(0, (1, 2, 3))
    ledger.groups[0] = spec
    ledger.sent(b"m1", spec, sender=1, at=10.0)
    ledger.sent(b"m2", spec, sender=2, at=20.0)
    assert ledger.stored(2, b"m1", 10.5) and ledger.stored(3, b"m1", 12.0)
    assert not ledger.stored(2, b"one-to-one", 13.0)  # not a group message of the run
    assert not ledger.all_delivered()
    ledger.stored(1, b"m2", 21.0)
    summary = ledger.summary()
    assert (summary["due"], summary["stored"], summary["delivery_rate"]) == (4, 3, 0.75)
    [group] = summary["groups"]
    assert group["latency_seconds"]["count"] == 3 and group["latency_seconds"]["max"] == 2.0
    assert group_invariants(summary) == {
        "group_members_store_once": True,
        "group_non_members_store_none": True,
    }
    ledger.stored(3, b"m2", 22.0)
    assert ledger.all_delivered()
    ledger.stored(3, b"m2", 23.0)  # a second copy
    ledger.stored(5, b"m2", 23.0)  # a node outside the group
    ledger.stored(2, b"m2", 23.0)  # its own sender, again
    summary = ledger.summary()
    assert (summary["duplicates"], summary["stored_outside_group"]) == (1, 2)
    checks = group_invariants(summary)
    assert checks == {"group_members_store_once": False, "group_non_members_store_none": False}
    text = "\n".join(render_groups(summary, checks))
    assert "## Groups" in text and "| 0 | 3 | 2 | 4 / 4 | 100.00% |" in text
    assert "stored each group message once: NO (1 second copies)" in text
    assert group_invariants(None) == {}


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (SimOptions(groups=2, group_size=1, clock="virtual"), "--group-size"),
        (SimOptions(nodes=4, groups=2, group_size=5, clock="virtual"), "at most --nodes"),
        (SimOptions(groups=2, workers=2), "--workers 1"),
        (SimOptions(groups=-1, clock="virtual"), "--groups"),
    ],
)
def test_options_refuse_groups_that_cannot_run(options: SimOptions, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        options.check()


@pytest.mark.slow
async def test_group_traffic_reaches_every_member_once_and_nobody_else(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Six whole nodes, two groups of four, recipients taken offline now and then: every
    member stores every group message once, nobody else does."""
    options = SimOptions(
        nodes=6,
        duration=30,
        rate=1,
        offline=0.3,
        mailboxes=1,
        groups=2,
        group_size=4,
        clock="virtual",
        seed=4,
    )
    outcome = await simulate(options)
    summary = summarize(outcome)
    groups = summary["groups"]
    assert groups["messages"] > 10 and not any(g["failed"] for g in groups["groups"])
    assert groups["stored"] == groups["due"] > 0
    assert [g["delivery_rate"] for g in groups["groups"]] == [1.0, 1.0]
    assert summary["invariants"]["group_members_store_once"]
    assert summary["invariants"]["group_non_members_store_none"]
    assert invariants_hold(summary) and summary["delivery_rate"] == 1.0
