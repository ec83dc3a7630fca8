"""Group traffic in a simulation (``p2pdm sim --groups N --group-size K``).

How this works: :func:`plan_groups` draws, from the seed alone (a random
stream of its own, so a run without groups keeps its plan), which nodes form
each group (its first member creates it) and when a message goes to which
group: group sends arrive at the run's ``--rate`` as well, a Poisson process
over all groups. The run makes the groups before the traffic (the creator
made a contact of each member, so no invitation is a request) and, at each
send time, a random online member of that group writes to it.

A :class:`GroupLedger` keeps every group message's fate: the sender's node
fans it out, each member's node commits it once (the node observer reports
it, with the id every member shares). Its figures are per group — delivery
rate (member copies stored out of those due) and latency (send → a member's
commit) — and the two invariants: each member stores each group message
exactly once, and no node outside the group stores it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from p2pdm.sim.metrics import latency_summary

__all__ = [
    "MAX_GROUPS",
    "GroupLedger",
    "GroupMessageRecord",
    "GroupPlan",
    "GroupSend",
    "GroupSpec",
    "plan_groups",
]

#: Most groups a run makes (each costs its members' membership logs and one
#: creation fan-out before the traffic starts).
MAX_GROUPS: Final = 200
#: The seed's stream for group traffic is its own, so that adding groups
#: leaves the one-to-one plan of a seed as it was.
_GROUP_STREAM: Final = "p2pdm-sim-groups"


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """One simulated group: its index and its members' node indices (creator first)."""

    index: int
    members: tuple[int, ...]

    @property
    def creator(self) -> int:
        return self.members[0]

    @property
    def name(self) -> str:
        return f"sim group {self.index}"


@dataclass(frozen=True, slots=True)
class GroupSend:
    """A message to group ``group`` at ``at`` seconds of traffic, from ``pick`` (in [0, 1))
    times its online members."""

    at: float
    group: int
    pick: float


@dataclass(frozen=True, slots=True)
class GroupPlan:
    groups: tuple[GroupSpec, ...] = ()
    sends: tuple[GroupSend, ...] = ()

    def sender(self, send: GroupSend, online: Sequence[int]) -> int | None:
        """The member of the send's group who writes: one of those ``online``, or None."""
        if not online:
            return None
        return online[min(int(send.pick * len(online)), len(online) - 1)]


def plan_groups(
    *, seed: int, nodes: int, groups: int, size: int, duration: float, rate: float
) -> GroupPlan:
    """The seeded groups and their sends (none without groups)."""
    if groups <= 0:
        return GroupPlan()
    rng = random.Random(f"{_GROUP_STREAM}-{seed}")
    specs = tuple(
        GroupSpec(index, tuple(rng.sample(range(nodes), size))) for index in range(groups)
    )
    sends = []
    at = rng.expovariate(rate)
    while at < duration:
        sends.append(GroupSend(round(at, 6), rng.randrange(groups), rng.random()))
        at += rng.expovariate(rate)
    return GroupPlan(specs, tuple(sends))


@dataclass(slots=True)
class GroupMessageRecord:
    """One group message the simulation sent, and which members committed it when."""

    id: bytes
    group: int
    sender: int
    #: The members it is due to: the group's members but the sender.
    due: frozenset[int]
    sent_s: float
    #: Member -> when it first committed the message (simulation seconds).
    stored_s: dict[int, float] = field(default_factory=dict)
    #: Node -> how many times it committed the message (members and others).
    copies: Counter[int] = field(default_factory=Counter)


@dataclass
class GroupLedger:
    """Every group message's fate (see the module's docstring)."""

    groups: dict[int, GroupSpec] = field(default_factory=dict)
    messages: dict[bytes, GroupMessageRecord] = field(default_factory=dict)
    #: Group sends that found no member of their group online.
    skipped: int = 0
    #: Groups whose creation failed, by group index: why.
    failed: dict[int, str] = field(default_factory=dict)

    def sent(self, message_id: bytes, spec: GroupSpec, sender: int, at: float) -> None:
        due = frozenset(spec.members) - {sender}
        self.messages[message_id] = GroupMessageRecord(message_id, spec.index, sender, due, at)

    def stored(self, index: int, message_id: bytes, at: float) -> bool:
        """Node ``index`` committed a message; False if it is no group message of the run."""
        record = self.messages.get(message_id)
        if record is None:
            return False
        record.copies[index] += 1
        if index in record.due and index not in record.stored_s:
            record.stored_s[index] = at
        return True

    @property
    def due(self) -> int:
        return sum(len(r.due) for r in self.messages.values())

    @property
    def stored_copies(self) -> int:
        return sum(len(r.stored_s) for r in self.messages.values())

    def all_delivered(self) -> bool:
        return self.stored_copies == self.due

    def summary(self) -> dict[str, Any]:
        """Per-group figures and the two invariants, ready for JSON."""
        per_group = []
        for spec in self.groups.values():
            records = [r for r in self.messages.values() if r.group == spec.index]
            due = sum(len(r.due) for r in records)
            stored = sum(len(r.stored_s) for r in records)
            latencies = [at - r.sent_s for r in records for at in r.stored_s.values()]
            per_group.append(
                {
                    "group": spec.index,
                    "members": list(spec.members),
                    "messages": len(records),
                    "due": due,
                    "stored": stored,
                    "delivery_rate": round(stored / due, 6) if due else None,
                    "latency_seconds": latency_summary(latencies),
                    "failed": self.failed.get(spec.index),
                }
            )
        twice = sum(
            n - 1 for r in self.messages.values() for i, n in r.copies.items() if i in r.due and n > 1
        )
        outside = sum(
            n for r in self.messages.values() for i, n in r.copies.items() if i not in r.due
        )
        return {
            "groups": per_group,
            "messages": len(self.messages),
            "due": self.due,
            "stored": self.stored_copies,
            "delivery_rate": round(self.stored_copies / self.due, 6) if self.due else None,
            "skipped_no_member_online": self.skipped,
            "duplicates": twice,
            "stored_outside_group": outside,
        }
