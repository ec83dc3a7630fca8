"""Scripted timelines (``p2pdm sim --scenario FILE``) and the seeded plan of a run.

How this works: a scenario file is TOML. Its top-level keys are ``p2pdm
sim``'s options (``nodes = 10``, ``partition = "30:60"``, …); its arrays of
tables are the timeline, in seconds since the traffic started:

- ``[[absence]] node, from, until``: the node leaves (store kept) and rejoins;
- ``[[split]] groups, from, until``: the network splits between the
  groups of node indices (nodes in no group form one more group);
- ``[[burst]] at, messages``: that many messages at once, random contact pairs;
- ``[[link]] at, loss, latency``: every link's loss and/or latency from then on.

:func:`load_scenario` parses strictly (unknown keys, wrong types, bad times
are one-line :class:`~p2pdm.errors.ConfigError`\\ s naming the file and
entry); :meth:`Timeline.check` checks it against the options (node indices,
times within the traffic phase, overlaps). :func:`make_plan` turns options,
timeline and the nodes' contacts into a :class:`Plan` — every send, absence,
partition and link change with its time — from the seed alone, so the
traffic and who is offline when are the same in every run with that seed.
"""

from __future__ import annotations

import itertools
import random
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from p2pdm.errors import ConfigError

__all__ = [
    "Absence",
    "Burst",
    "LinkChange",
    "Offline",
    "Partition",
    "Plan",
    "Send",
    "Timeline",
    "load_scenario",
    "make_plan",
    "parse_scenario",
]

#: A node is back this long before the plan lets it leave again or send:
#: a restart (fresh host, DHT join) takes a few virtual seconds.
MIN_ONLINE_GAP_SECONDS: Final = 15.0
#: Most messages one burst may send.
MAX_BURST: Final = 100_000
#: Most entries of each kind a scenario file may hold.
MAX_ENTRIES: Final = 10_000
#: Options a scenario file may set (``p2pdm sim``'s, by the same names).
OPTION_KEYS: Final = frozenset(
    {
        "nodes",
        "duration",
        "rate",
        "offline",
        "churn",
        "mailboxes",
        "contacts",
        "loss",
        "latency",
        "jitter",
        "partition",
        "drain",
        "seed",
        "clock",
        "groups",
        "group_size",
        "link_auth",
        "dht_forming",
        "record_forming",
    }
)
_INT_OPTIONS: Final = frozenset({"nodes", "mailboxes", "contacts", "seed", "groups", "group_size"})


@dataclass(frozen=True, slots=True)
class Offline:
    node: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Partition:
    groups: tuple[tuple[int, ...], ...]
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Burst:
    at: float
    messages: int


@dataclass(frozen=True, slots=True)
class LinkChange:
    at: float
    loss: float | None = None
    latency: float | None = None


@dataclass(frozen=True, slots=True)
class Timeline:
    """Scripted events, in seconds since the traffic started."""

    offline: tuple[Offline, ...] = ()
    partitions: tuple[Partition, ...] = ()
    bursts: tuple[Burst, ...] = ()
    links: tuple[LinkChange, ...] = ()

    def check(self, nodes: int, fixed: int, duration: float) -> None:
        """Raise ConfigError unless every entry fits ``nodes`` nodes and ``duration`` s."""

        def when(kind: str, i: int, *times: float) -> None:
            for t in times:
                if not 0 <= t <= duration:
                    raise ConfigError(
                        f"[[{kind}]] #{i + 1}: time {t:g} is outside the traffic phase"
                        f" (0 to duration {duration:g})"
                    )

        def index(kind: str, i: int, node: int) -> None:
            if not 0 <= node < nodes:
                raise ConfigError(
                    f"[[{kind}]] #{i + 1}: node {node} out of range (0 to {nodes - 1})"
                )

        for i, off in enumerate(self.offline):
            index("absence", i, off.node)
            when("absence", i, off.start, off.end)
            if off.node < fixed:
                raise ConfigError(
                    f"[[absence]] #{i + 1}: node {off.node} is a bootstrap or mailbox node"
                    f" (the first {fixed}), which never go offline"
                )
        spans = sorted((o.node, o.start, o.end) for o in self.offline)
        for (a, _, a_end), (b, b_start, _) in itertools.pairwise(spans):
            if a == b and b_start < a_end + MIN_ONLINE_GAP_SECONDS:
                raise ConfigError(
                    f"[[absence]]: node {a}'s absences overlap or are less than"
                    f" {MIN_ONLINE_GAP_SECONDS:g} s apart (a restart takes a few seconds)"
                )
        for i, part in enumerate(self.partitions):
            when("split", i, part.start, part.end)
            seen: set[int] = set()
            for group in part.groups:
                for node in group:
                    index("split", i, node)
                    if node in seen:
                        raise ConfigError(f"[[split]] #{i + 1}: node {node} in two groups")
                    seen.add(node)
        ordered = sorted(self.partitions, key=lambda p: p.start)
        for p, q in itertools.pairwise(ordered):
            if q.start < p.end:
                raise ConfigError("[[split]]: splits overlap in time (one at a time)")
        for i, burst in enumerate(self.bursts):
            when("burst", i, burst.at)
        for i, link in enumerate(self.links):
            when("link", i, link.at)


# --- parsing -----------------------------------------------------------------------


def _number(where: str, key: str, value: Any, *, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}: {key} must be {kind}, not {value!r}")
    return value


def _time(where: str, key: str, value: Any) -> float:
    t = float(_number(where, key, value))
    if not 0 <= t < float("inf"):
        raise ConfigError(f"{where}: {key} must be seconds >= 0, not {value!r}")
    return t


def _table(where: str, entry: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a table")
    unknown = sorted(set(entry) - required - optional)
    if unknown:
        known = ", ".join(sorted(required | optional))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {known})")
    missing = sorted(required - set(entry))
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r}")
    return dict(entry)


def _span(where: str, entry: dict[str, Any]) -> tuple[float, float]:
    start, end = _time(where, "from", entry["from"]), _time(where, "until", entry["until"])
    if end <= start:
        raise ConfigError(f"{where}: until ({end:g}) must be after from ({start:g})")
    return start, end


def _entries(data: Mapping[str, Any], kind: str) -> list[Any]:
    entries = data.get(kind, [])
    if not isinstance(entries, list):
        raise ConfigError(f"{kind}: expected an array of tables, [[{kind}]]")
    if len(entries) > MAX_ENTRIES:
        raise ConfigError(f"{kind}: more than {MAX_ENTRIES} entries")
    return entries


def parse_scenario(data: Mapping[str, Any]) -> tuple[dict[str, Any], Timeline]:
    """Options (by ``p2pdm sim`` name) and the timeline of a parsed TOML document."""
    kinds = {"absence", "split", "burst", "link"}
    unknown = sorted(set(data) - OPTION_KEYS - kinds)
    if unknown:
        known = ", ".join(sorted(OPTION_KEYS | kinds))
        raise ConfigError(f"unknown key {unknown[0]!r} (known: {known})")
    options: dict[str, Any] = {}
    for key in sorted(OPTION_KEYS & set(data)):
        value = data[key]
        if key == "clock":
            if value not in ("real", "virtual"):
                raise ConfigError(f"clock must be 'real' or 'virtual', not {value!r}")
        elif key == "dht_forming":
            if value not in ("auto", "join", "plan"):
                raise ConfigError(f"dht_forming must be 'auto', 'join' or 'plan', not {value!r}")
        elif key == "record_forming":
            if value not in ("auto", "plan", "put"):
                raise ConfigError(f"record_forming must be 'auto', 'plan' or 'put', not {value!r}")
        elif key == "link_auth":
            if value not in ("noise", "sim"):
                raise ConfigError(f"link_auth must be 'noise' or 'sim', not {value!r}")
        elif key == "partition":
            if not isinstance(value, str):
                raise ConfigError(f"partition must be a string START:END, not {value!r}")
            start, sep, end = value.partition(":")
            try:
                if not sep:
                    raise ValueError
                value = (float(start), float(end))
            except ValueError:
                raise ConfigError(f"partition must be START:END seconds, not {value!r}") from None
        else:
            value = _number(key, key, value, integer=key in _INT_OPTIONS)
            value = value if key in _INT_OPTIONS else float(value)
        options[key] = value
    offline = []
    for i, raw in enumerate(_entries(data, "absence")):
        where = f"[[absence]] #{i + 1}"
        entry = _table(where, raw, {"node", "from", "until"}, set())
        node = _number(where, "node", entry["node"], integer=True)
        offline.append(Offline(node, *_span(where, entry)))
    partitions = []
    for i, raw in enumerate(_entries(data, "split")):
        where = f"[[split]] #{i + 1}"
        entry = _table(where, raw, {"groups", "from", "until"}, set())
        groups = entry["groups"]
        if not isinstance(groups, list) or not all(isinstance(g, list) and g for g in groups):
            raise ConfigError(f"{where}: groups must be lists of node indices, e.g. [[0, 1], [2]]")
        if not groups:
            raise ConfigError(f"{where}: groups must not be empty")
        parsed = tuple(
            tuple(_number(where, "groups", n, integer=True) for n in group) for group in groups
        )
        partitions.append(Partition(parsed, *_span(where, entry)))
    bursts = []
    for i, raw in enumerate(_entries(data, "burst")):
        where = f"[[burst]] #{i + 1}"
        entry = _table(where, raw, {"at", "messages"}, set())
        count = _number(where, "messages", entry["messages"], integer=True)
        if not 1 <= count <= MAX_BURST:
            raise ConfigError(f"{where}: messages must be between 1 and {MAX_BURST}")
        bursts.append(Burst(_time(where, "at", entry["at"]), count))
    links = []
    for i, raw in enumerate(_entries(data, "link")):
        where = f"[[link]] #{i + 1}"
        entry = _table(where, raw, {"at"}, {"loss", "latency"})
        if "loss" not in entry and "latency" not in entry:
            raise ConfigError(f"{where}: set loss, latency or both")
        loss = entry.get("loss")
        if loss is not None and not 0 <= _number(where, "loss", loss) < 1:
            raise ConfigError(f"{where}: loss is a probability below 1, not {loss!r}")
        latency = entry.get("latency")
        if latency is not None:
            latency = _time(where, "latency", latency)
        links.append(
            LinkChange(
                _time(where, "at", entry["at"]), None if loss is None else float(loss), latency
            )
        )
    timeline = Timeline(tuple(offline), tuple(partitions), tuple(bursts), tuple(links))
    return options, timeline


def load_scenario(path: Path) -> tuple[dict[str, Any], Timeline]:
    """Parse a scenario file; ConfigError (one line, naming the file) if it is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from None
    try:
        return parse_scenario(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# --- the plan ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    at: float
    sender: int
    recipient: int
    #: The recipient is away (per the plan) when the message is sent.
    recipient_offline: bool
    #: One of a scripted ``[[burst]]``'s messages, not of the ``rate`` traffic.
    burst: bool = False


@dataclass(frozen=True, slots=True)
class Absence:
    node: int
    start: float
    end: float
    why: str  # "scripted", "churn" or "message"


@dataclass
class Plan:
    """Everything a run does, with times since the traffic started; seeded."""

    sends: list[Send] = field(default_factory=list)
    absences: list[Absence] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)
    links: list[LinkChange] = field(default_factory=list)
    #: Send times dropped because every node with contacts was away then.
    unsent: int = 0

    def counts(self) -> dict[str, int]:
        """How many sends of each origin the plan holds, for the report."""
        bursts = sum(1 for send in self.sends if send.burst)
        return {
            "sends": len(self.sends),
            "sends_at_rate": len(self.sends) - bursts,
            "sends_in_bursts": bursts,
            "sends_dropped": self.unsent,
            "sends_to_absent": sum(1 for send in self.sends if send.recipient_offline),
            "absences": len(self.absences),
            "partitions": len(self.partitions),
            "link_changes": len(self.links),
        }

    def away(self, node: int, t: float, grace: float = 0.0) -> bool:
        """Whether ``node`` is away at ``t`` (or came back less than ``grace`` s before)."""
        return any(a.node == node and a.start <= t < a.end + grace for a in self.absences)

    def free(self, node: int, start: float, end: float) -> bool:
        """Whether ``node`` may be away from ``start`` to ``end`` (no absence near it)."""
        gap = MIN_ONLINE_GAP_SECONDS
        return not any(
            a.node == node and a.start < end + gap and start < a.end + gap for a in self.absences
        )


def make_plan(
    *,
    seed: int,
    duration: float,
    rate: float,
    offline: float,
    churn: float,
    partition: tuple[float, float] | None,
    timeline: Timeline,
    contacts: Mapping[int, Sequence[int]],
    fixed: int,
    offline_seconds: tuple[float, float],
    churn_away_seconds: tuple[float, float],
) -> Plan:
    """The run's sends and faults, from the seed and these inputs only."""
    rng = random.Random(seed + 1)
    nodes = len(contacts)
    plan = Plan()
    plan.absences += [Absence(o.node, o.start, o.end, "scripted") for o in timeline.offline]
    plan.partitions += list(timeline.partitions)
    if partition is not None:
        indices = list(range(nodes))
        rng.shuffle(indices)
        half = nodes // 2
        groups = (tuple(sorted(indices[:half])), tuple(sorted(indices[half:])))
        plan.partitions.append(Partition(groups, *partition))
    plan.links = sorted(timeline.links, key=lambda link: link.at)
    movable = [i for i in range(fixed, nodes)]
    if churn:
        t = rng.expovariate(churn / 60.0)
        while t < duration:
            away = rng.uniform(*churn_away_seconds)
            free = [i for i in movable if plan.free(i, t, t + away)]
            if free:
                plan.absences.append(Absence(rng.choice(free), t, t + away, "churn"))
            t += rng.expovariate(churn / 60.0)
    # Poisson arrivals at ``rate``: their count varies around rate x duration.
    times: list[tuple[float, bool]] = []
    t = rng.expovariate(rate)
    while t < duration:
        times.append((t, False))
        t += rng.expovariate(rate)
    for burst in timeline.bursts:
        times += [(burst.at, True)] * burst.messages
    times.sort()
    senders_with_contacts = [i for i in range(nodes) if contacts[i]]
    # Nodes in a send at this instant (a burst): they may not leave at it too,
    # since the run stops leaving nodes before it sends anything at that time.
    busy_at: tuple[float, set[int]] = (-1.0, set())
    for t, in_burst in times:
        if busy_at[0] != t:
            busy_at = (t, set())
        senders = [i for i in senders_with_contacts if not plan.away(i, t, MIN_ONLINE_GAP_SECONDS)]
        if not senders:
            plan.unsent += 1
            continue
        sender = rng.choice(senders)
        recipient = rng.choice(list(contacts[sender]))
        recipient_offline = plan.away(recipient, t)
        if offline and rng.random() < offline and not recipient_offline and recipient >= fixed:
            away = rng.uniform(*offline_seconds)
            if recipient not in busy_at[1] and plan.free(recipient, t, t + away):
                plan.absences.append(Absence(recipient, t, t + away, "message"))
                recipient_offline = True
        busy_at[1].update((sender, recipient))
        plan.sends.append(Send(t, sender, recipient, recipient_offline, in_burst))
    plan.absences.sort(key=lambda a: (a.start, a.node))
    plan.partitions.sort(key=lambda p: p.start)
    return plan
