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
from typing import TYPE_CHECKING, Any, Final

import trio

from p2pdm.errors import P2PDMError
from p2pdm.sim.metrics import latency_summary

if TYPE_CHECKING:
    from p2pdm.sim.nodes import LocalNodes
    from p2pdm.store.base import Store

__all__ = [
    "GROUP_FORMING_SECONDS",
    "MAX_GROUPS",
    "GroupDriver",
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
            n - 1
            for r in self.messages.values()
            for i, n in r.copies.items()
            if i in r.due and n > 1
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


# --- carrying the plan out ---------------------------------------------------------

#: How long, in simulation seconds, the run waits for every member of a new
#: group to know it before the traffic starts (the invitation's fan-out).
GROUP_FORMING_SECONDS: Final = 60.0
#: How often the run looks whether every member knows its groups.
_FORMING_POLL_SECONDS: Final = 0.5


class GroupDriver:
    """Groups on the nodes of a :class:`~p2pdm.sim.nodes.LocalNodes` (one process)."""

    def __init__(self, nodes: LocalNodes, plan: GroupPlan, ledger: GroupLedger) -> None:
        self.nodes = nodes
        self.plan = plan
        self.ledger = ledger
        #: Group index -> its group id, once made.
        self.ids: dict[int, bytes] = {}
        self.counter = 0

    async def form(self) -> None:
        """Make every group (creators befriend their members first), then wait, bounded,
        until each member's node knows its group; a group that fails is noted, not fatal."""
        sim = self.nodes.sim
        for spec in self.plan.groups:
            self.ledger.groups[spec.index] = spec
            creator = spec.creator
            for member in spec.members[1:]:
                if member not in sim.contacts[creator]:
                    sim.befriend(creator, member)
            node = sim[creator].running.node
            peers = [sim[m].peer_id for m in spec.members[1:]]
            try:
                made = await node.create_group(spec.name, peers)
            except P2PDMError as exc:
                self.ledger.failed[spec.index] = f"{type(exc).__name__}: {exc}"
                continue
            self.ids[spec.index] = made.row.id
        with trio.move_on_after(GROUP_FORMING_SECONDS):
            while not self._formed():  # noqa: ASYNC110 (no event says a member learnt it)
                await trio.sleep(_FORMING_POLL_SECONDS)
        for spec in self.plan.groups:
            if spec.index in self.ids and not self._knows_all(spec):
                self.ledger.failed.setdefault(
                    spec.index, f"not every member knew it after {GROUP_FORMING_SECONDS:g} s"
                )

    def _knows_all(self, spec: GroupSpec) -> bool:
        sim = self.nodes.sim
        group_id = self.ids[spec.index]
        return all(not sim[m].online or _joined(sim[m].store, group_id) for m in spec.members)

    def _formed(self) -> bool:
        return all(self._knows_all(s) for s in self.plan.groups if s.index in self.ids)

    async def send(self, send: GroupSend, now_s: float) -> None:
        """A random online member of the send's group writes to it (skipped if none is)."""
        spec = self.plan.groups[send.group]
        group_id = self.ids.get(spec.index)
        online = [m for m in spec.members if self.nodes.online(m)]
        sender = self.plan.sender(send, online)
        if group_id is None or sender is None:
            self.ledger.skipped += 1
            return
        self.counter += 1
        node = self.nodes.sim[sender].running.node
        sent = await node.send_group_text(group_id, f"sim group message {self.counter}")
        self.ledger.sent(sent.message.id, spec, sender, now_s)


def _joined(store: Store, group_id: bytes) -> bool:
    row = store.get_group(group_id)
    return row is not None and row.state == "active"


# --- the report -------------------------------------------------------------------


def group_invariants(summary: dict[str, Any] | None) -> dict[str, bool]:
    """The two group invariants of a run's group summary (none without groups)."""
    if summary is None:
        return {}
    return {
        "group_members_store_once": summary["duplicates"] == 0,
        "group_non_members_store_none": summary["stored_outside_group"] == 0,
    }


def render_groups(summary: dict[str, Any], checks: dict[str, Any]) -> list[str]:
    """The report's Groups section, in Markdown."""
    rate = summary["delivery_rate"]
    lines = [
        "",
        "## Groups",
        "",
        f"{summary['messages']} group messages to {len(summary['groups'])} groups:"
        f" {summary['stored']} of {summary['due']} member copies stored"
        f" ({'-' if rate is None else f'{rate:.2%}'});"
        f" {summary['skipped_no_member_online']} sends skipped (no member online).",
        "",
        "| group | members | messages | stored / due | delivery rate | p50 | p95 | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in summary["groups"]:
        s = g["latency_seconds"]
        rate = g["delivery_rate"]
        shown = "-" if rate is None else f"{rate:.2%}"
        cells = " | ".join("-" if s[k] is None else str(s[k]) for k in ("p50", "p95", "max"))
        note = f" (not formed: {g['failed']})" if g["failed"] else ""
        lines.append(
            f"| {g['group']}{note} | {len(g['members'])} | {g['messages']} |"
            f" {g['stored']} / {g['due']} | {shown} | {cells} |"
        )
    lines += [
        "",
        "- each member stored each group message once: "
        f"{'yes' if checks['group_members_store_once'] else 'NO'}"
        f" ({summary['duplicates']} second copies)",
        "- no node outside a group stored its messages: "
        f"{'yes' if checks['group_non_members_store_none'] else 'NO'}"
        f" ({summary['stored_outside_group']} copies outside)",
    ]
    return lines
