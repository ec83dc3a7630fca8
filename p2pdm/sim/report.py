"""A simulation's report: ``report.json``, ``report.md`` and, with matplotlib, plots.

How this works: :func:`summarize` turns an :class:`~p2pdm.sim.options.Outcome`
into one JSON-ready dict (figures and invariant checks); :func:`write_report`
writes it, ``messages.csv`` (one row per message), when matplotlib is
installed (``pip install 'p2pdm[sim]'``; :mod:`p2pdm.sim.plots`) a latency
CDF and deliveries over time as PNG files, and a Markdown rendering that
shows those plots or says why there are none.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from p2pdm.net.limits import RECORD_LOOKUP_CLOSEST
from p2pdm.sim.groups import group_invariants, render_groups
from p2pdm.sim.metrics import MISDELIVERY_ERRORS, latency_summary
from p2pdm.sim.options import Outcome
from p2pdm.sim.plots import Plot, draw_plots
from p2pdm.sim.tables import CLOSEST, PER_BUCKET

__all__ = ["MAY_DIFFER", "invariants_hold", "reproducible", "summarize", "write_report"]

#: Report fields that two virtual-clock runs with one seed may disagree on:
#: wall-clock and CPU seconds and the process's memory, which follow the machine,
#: and where the SQLite stores went, which follows ``--out``. Every other
#: field, and every row of ``messages.csv``, is replayed exactly
#: (docs/simulation.md, "Same seed, same report").
MAY_DIFFER: Final = (
    ("seconds", "wall"),
    ("seconds", "cpu"),
    ("seconds", "forming_steps_cpu"),
    ("memory_mb",),
    ("options", "store_dir"),
)


def summarize(outcome: Outcome) -> dict[str, Any]:
    """Figures and invariant checks of a run, ready for JSON."""
    recorder = outcome.recorder
    records = list(recorder.messages.values())
    sent, delivered = len(records), recorder.delivered
    latencies = {
        "all": [r.latency_s for r in records if r.latency_s is not None],
        "direct": [r.latency_s for r in records if r.path == "direct" and r.latency_s is not None],
        "mailbox": [
            r.latency_s for r in records if r.path == "mailbox" and r.latency_s is not None
        ],
    }
    misdelivered = recorder.misdelivered()
    misdelivery_refusals = sum(recorder.refusals[name] for name in MISDELIVERY_ERRORS)
    options = asdict(outcome.options)
    options["store_dir"] = str(options["store_dir"]) if options["store_dir"] else None
    nodes = outcome.options.nodes
    faults = outcome.options.link_faults()
    groups = None if outcome.groups is None else outcome.groups.summary()
    return {
        "options": options,
        # Every link, the clock's defaults filled in (the options say None
        # where the default was taken).
        "links": {"latency": faults.latency, "jitter": faults.jitter, "loss": faults.loss},
        # How the routing tables formed, "auto" resolved: "plan" or "join".
        "dht_forming": "plan" if outcome.options.planned_tables() else "join",
        # Where the first records went, "auto" resolved: "plan" or "put".
        "record_forming": "plan" if outcome.options.planned_records() else "put",
        "seconds": {
            "forming": round(outcome.form_s, 3),
            "forming_steps": outcome.forming_steps,
            "phases": {name: round(s, 3) for name, s in outcome.phase_s.items()},
            "simulated": round(outcome.sim_s, 3),
            "wall": round(outcome.wall_s, 3),
            # This process's CPU in each phase (not a worker process's).
            "cpu": {name: round(s, 1) for name, s in outcome.cpu_s.items()},
            # The same for each step of forming (this process; virtual clock).
            "forming_steps_cpu": outcome.forming_cpu,
        },
        "plan": outcome.plan_counts,
        "join_addrs": outcome.join_addrs,
        "outside_peers": outcome.outside_peers,
        "sent": sent,
        "delivered": delivered,
        "delivery_rate": round(delivered / sent, 6) if sent else None,
        "sent_while_recipient_offline": sum(1 for r in records if r.recipient_offline),
        "paths": {
            "direct": sum(1 for r in records if r.path == "direct"),
            "mailbox": sum(1 for r in records if r.path == "mailbox"),
        },
        "latency_seconds": {name: latency_summary(v) for name, v in latencies.items()},
        "dht_lookups": {
            name: {
                **latency_summary([seconds for seconds, _, _ in calls]),
                "found": sum(1 for _, found, _ in calls if found),
                # Why the others found nothing (metrics.LOOKUP_FAILURES).
                "not_found": dict(
                    sorted(Counter(why for _, found, why in calls if not found).items())
                ),
            }
            for name, calls in recorder.lookups.items()
        },
        "duplicates": recorder.duplicates,
        "undelivered": outcome.undelivered,
        "refusals": dict(sorted(recorder.refusals.items())),
        "restarts": outcome.restarts,
        "mailboxes": {
            "held_at_end": outcome.held_in_mailboxes,
            "expired_held": outcome.expired_in_mailboxes,
        },
        "invariants": {
            "exactly_once": recorder.duplicates == 0,
            "only_recipient_stores": not misdelivered,
            "misdelivery_refusals": misdelivery_refusals,
            "no_expired_envelope_in_mailboxes": outcome.expired_in_mailboxes == 0,
            **group_invariants(groups),
        },
        # Group traffic (--groups): per-group delivery and latency; None without.
        "groups": groups,
        "memory_mb": {
            **{k: round(v, 1) for k, v in outcome.rss_mb.items()},
            "per_node": round(
                (outcome.rss_mb.get("formed", 0.0) - outcome.rss_mb.get("start", 0.0)) / nodes, 2
            ),
        },
        "network": outcome.network_stats,
    }


def reproducible(summary: dict[str, Any]) -> dict[str, Any]:
    """A copy of a summary without the :data:`MAY_DIFFER` fields."""
    kept = copy.deepcopy(summary)
    for *parents, key in MAY_DIFFER:
        table = kept
        for parent in parents:
            table = table[parent]
        table.pop(key, None)
    return kept


def invariants_hold(summary: dict[str, Any]) -> bool:
    checks = summary["invariants"]
    return bool(
        checks["exactly_once"]
        and checks["only_recipient_stores"]
        and checks["no_expired_envelope_in_mailboxes"]
        and checks.get("group_members_store_once", True)
        and checks.get("group_non_members_store_none", True)
    )


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def _traffic_text(summary: dict[str, Any]) -> str:
    """What was sent, in words that add up to the count sent."""
    o, plan = summary["options"], summary["plan"]
    expected = o["rate"] * o["duration"]
    parts = [
        f"{plan['sends_at_rate']} at random times at a mean rate of {o['rate']:g}/s"
        f" ({expected:g} expected: Poisson arrivals, so the count varies by about"
        f" ±{math.sqrt(expected):.0f})"
    ]
    bursts = [b["messages"] for b in o["timeline"]["bursts"]]
    if plan["sends_in_bursts"]:
        sizes = " + ".join(str(n) for n in bursts)
        parts.append(
            f"{plan['sends_in_bursts']} in {len(bursts)} scripted burst"
            f"{'s' if len(bursts) > 1 else ''} ({sizes})"
        )
    text = f"{summary['sent']} messages sent in {o['duration']:g} s of traffic: "
    text += " plus ".join(parts)
    if summary["sent"] != plan["sends"]:
        text += f"; the plan held {plan['sends']}"
    if plan["sends_dropped"]:
        text += f"; {plan['sends_dropped']} send times dropped (no sender was online)"
    return text + "."


def _links_text(summary: dict[str, Any]) -> str:
    links, o = summary["links"], summary["options"]
    if not links["latency"] and not links["jitter"]:
        text = "no added latency"
        if o["clock"] == "real":
            text += " (loopback TCP: the machine's own delays)"
    else:
        text = f"{links['latency'] * 1000:g} ms one way"
        if links["jitter"]:
            text += f" plus 0-{links['jitter'] * 1000:g} ms of jitter"
        if o["latency"] is None:
            text += " (the virtual clock's default: home broadband in one region; --latency"
            text += " and --jitter change it)"
    text += f", loss {links['loss']:g}"
    if o.get("link_auth") == "sim":
        text += (
            "; authenticated by the memory network itself, not by Noise (--link-auth sim:"
            " no key agreement, no encryption)"
        )
    elif o["clock"] == "virtual":
        text += "; secured by Noise, as on TCP"
    text = f"Links: {text}."
    if summary.get("dht_forming") == "plan":
        text += (
            f" DHT forming: each node's join put in its routing table the peers its"
            f" self-lookup would have found, computed from the plan (its {CLOSEST} closest"
            f" nodes and up to {PER_BUCKET} of each farther bucket), instead of looking"
            f" itself up; every other lookup (records, peers, refreshes, restarted nodes'"
            f" joins) ran over the network (--dht-forming plan)."
        )
    if summary.get("record_forming") == "plan":
        text += (
            f" First records: once the network had formed, each node's record was placed"
            f" at the {RECORD_LOOKUP_CLOSEST} online nodes closest to its key, where its put's"
            f" lookup would end, each checking it as a PUT_VALUE, instead of put over the"
            f" network; later puts (restarted nodes, retries) and every lookup ran over"
            f" the network (--record-forming plan)."
        )
    return text


def _phases_text(summary: dict[str, Any]) -> str:
    seconds = summary["seconds"]
    phases = ", ".join(f"{name} {s:g} s" for name, s in seconds["phases"].items())
    text = (
        f"Phases: {phases}; the whole run {seconds['simulated']} simulated s in"
        f" {seconds['wall']} s of wall time."
    )
    steps = seconds.get("forming_steps")
    if steps:
        text += " Forming: " + ", ".join(f"{name} {s:g} s" for name, s in steps.items()) + "."
    steps_cpu = seconds.get("forming_steps_cpu")
    if steps_cpu:
        spent = ", ".join(f"{name} {s:g} s" for name, s in steps_cpu.items())
        text += f" CPU of forming's steps: {spent}."
    cpu = seconds.get("cpu")
    if cpu:
        spent = ", ".join(f"{name} {s:g} s" for name, s in cpu.items())
        text += f" CPU of this process: {spent}."
    return text


def _plots_section(plots: list[Plot], notes: list[str]) -> list[str]:
    lines = ["", "## Plots", ""]
    for plot in plots:
        lines += [f"![{plot.caption}]({plot.file})", ""]
    lines += [f"{note[0].upper()}{note[1:]}." for note in notes]
    return lines


def render_markdown(
    summary: dict[str, Any], plots: list[Plot] | None = None, notes: list[str] | None = None
) -> str:
    """The report as Markdown; ``plots`` are shown, ``notes`` say what was not drawn."""
    o = summary["options"]
    rate = summary["delivery_rate"]
    lines = [
        "# p2pdm simulation report",
        "",
        f"{o['nodes']} nodes, {o['clock']} clock, seed {o['seed']}. {_traffic_text(summary)}",
        "",
        f"{_links_text(summary)} Faults: offline {o['offline']}, churn {o['churn']}/min,"
        f" partition {_fmt(o['partition'])}; scripted events: {summary['plan']['scripted']};"
        f" {o['mailboxes']} mailboxes.",
        "",
        _phases_text(summary),
        "",
        "| figure | value |",
        "|---|---|",
        f"| sent | {summary['sent']} |",
        f"| delivered | {summary['delivered']} |",
        f"| delivery rate | {'-' if rate is None else f'{rate:.2%}'} |",
        f"| sent while the recipient was offline | {summary['sent_while_recipient_offline']} |",
        f"| delivered direct / via mailbox | {summary['paths']['direct']} / "
        f"{summary['paths']['mailbox']} |",
        f"| duplicates | {summary['duplicates']} |",
        f"| node restarts | {summary['restarts']} |",
        f"| memory per node (RSS growth while forming) | {summary['memory_mb']['per_node']} MB |",
    ]
    outside = summary["outside_peers"]
    if outside:
        lines.append(
            f"| peers outside this simulation seen: in routing tables / mailboxes found"
            f" | {outside['in_routing_tables']} / {outside['mailbox_providers']} |"
        )
    lines += [
        "",
        "## Latency (seconds, send to the recipient's commit)",
        "",
        "| path | count | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary["latency_seconds"].items():
        cells = " | ".join(_fmt(s[k]) for k in ("p50", "p95", "p99", "max"))
        lines.append(f"| {name} | {s['count']} | {cells} |")
    lines += [
        "",
        "## DHT lookups made by the nodes (seconds)",
        "",
        "| call | asked | found | p50 | p95 | max | not found, why |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["dht_lookups"].items():
        cells = " | ".join(_fmt(s[k]) for k in ("p50", "p95", "max"))
        found = f"{s['found']} ({s['found'] / s['count']:.0%})" if s["count"] else "0"
        why = ", ".join(f"{n} {reason}" for reason, n in s["not_found"].items()) or "-"
        lines.append(f"| {name} | {s['count']} | {found} | {cells} | {why} |")
    lines += [
        "",
        "Not found, why: *not_published* the record's owner had not published it "
        "when the lookup started; *timed_out* the caller's deadline ended the lookup; "
        "*not_found* it asked the closest peers it could reach and none had it "
        "(find_peer: the peer was not found); *no_peers* nobody to ask; *cancelled* the node "
        "stopped meanwhile; *error* it raised; *offline* (find_peer) the peer sought was "
        "offline, so there was nothing to find.",
    ]
    lines += ["", "## Invariants", ""]
    checks = summary["invariants"]
    lines += [
        "- each delivered message stored exactly once: "
        f"{'yes' if checks['exactly_once'] else 'NO'}",
        "- only the recipient stored each message: "
        f"{'yes' if checks['only_recipient_stores'] else 'NO'} "
        f"({checks['misdelivery_refusals']} envelopes refused as not ours / undecryptable)",
        "- no mailbox holds an expired envelope: "
        f"{'yes' if checks['no_expired_envelope_in_mailboxes'] else 'NO'} "
        f"({summary['mailboxes']['held_at_end']} envelopes still held at the end)",
        "",
        "## Undelivered, by the sender's last status",
        "",
    ]
    if summary["undelivered"]:
        lines += [f"- {count} x {reason}" for reason, count in summary["undelivered"].items()]
    else:
        lines.append("none")
    if summary.get("groups"):
        lines += render_groups(summary["groups"], checks)
    if summary["refusals"]:
        lines += ["", "## Envelopes refused by receivers", ""]
        lines += [f"- {name}: {count}" for name, count in summary["refusals"].items()]
    lines += _plots_section(plots or [], notes or [])
    return "\n".join(lines) + "\n"


def write_report(outcome: Outcome, out: Path) -> tuple[dict[str, Any], list[str]]:
    """Write the report files into ``out``; returns the summary and notes for the user."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(outcome)
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (out / "messages.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "sender", "recipient", "sent_s", "delivered_s", "path", "copies"])
        for r in outcome.recorder.messages.values():
            delivered = "" if r.delivered_s is None else f"{r.delivered_s:.3f}"
            writer.writerow(
                [
                    r.id.hex(),
                    r.sender,
                    r.recipient,
                    f"{r.sent_s:.3f}",
                    delivered,
                    r.path or "",
                    r.copies,
                ]
            )
    plots, notes = draw_plots(outcome, out)
    (out / "report.md").write_text(render_markdown(summary, plots, notes))
    return summary, notes
