"""A simulation's report: ``report.json``, ``report.md`` and, with matplotlib, plots.

How this works: :func:`summarize` turns an :class:`~p2pdm.sim.scenario.Outcome`
into one JSON-ready dict (figures and invariant checks); :func:`write_report`
writes it, a Markdown rendering, ``messages.csv`` (one row per message) and,
when matplotlib is installed (``pip install 'p2pdm[sim]'``), a latency CDF
and deliveries over time as PNG files.
"""

from __future__ import annotations

import copy
import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from p2pdm.sim.metrics import MISDELIVERY_ERRORS, latency_summary
from p2pdm.sim.scenario import Outcome

__all__ = ["MAY_DIFFER", "invariants_hold", "reproducible", "summarize", "write_report"]

#: Report fields that two virtual-clock runs with one seed may disagree on:
#: wall-clock seconds and the process's memory, which follow the machine,
#: and where the SQLite stores went, which follows ``--out``. Every other
#: field, and every row of ``messages.csv``, is replayed exactly
#: (docs/simulation.md, "Same seed, same report").
MAY_DIFFER: Final = (("seconds", "wall"), ("memory_mb",), ("options", "store_dir"))


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
    return {
        "options": options,
        "seconds": {
            "forming": round(outcome.form_s, 3),
            "simulated": round(outcome.sim_s, 3),
            "wall": round(outcome.wall_s, 3),
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
                **latency_summary([seconds for seconds, _ in calls]),
                "found": sum(1 for _, found in calls if found),
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
        },
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
    )


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def render_markdown(summary: dict[str, Any]) -> str:
    o = summary["options"]
    rate = summary["delivery_rate"]
    lines = [
        "# p2pdm simulation report",
        "",
        f"{o['nodes']} nodes, {o['clock']} clock, {o['duration']} s of traffic at "
        f"{o['rate']}/s, seed {o['seed']}; offline {o['offline']}, churn {o['churn']}/min, "
        f"{o['mailboxes']} mailboxes, loss {o['loss']}, latency {o['latency']} s, "
        f"partition {_fmt(o['partition'])}; scripted: {summary['plan']['scripted']}.",
        "",
        f"Forming took {summary['seconds']['forming']} s, the whole run "
        f"{summary['seconds']['simulated']} simulated s in {summary['seconds']['wall']} s "
        "of wall time.",
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
        "| call | count | found | p50 | p95 | max |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary["dht_lookups"].items():
        cells = " | ".join(_fmt(s[k]) for k in ("p50", "p95", "max"))
        lines.append(f"| {name} | {s['count']} | {s['found']} | {cells} |")
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
    if summary["refusals"]:
        lines += ["", "## Envelopes refused by receivers", ""]
        lines += [f"- {name}: {count}" for name, count in summary["refusals"].items()]
    return "\n".join(lines) + "\n"


def write_report(outcome: Outcome, out: Path) -> tuple[dict[str, Any], list[str]]:
    """Write the report files into ``out``; returns the summary and notes for the user."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(outcome)
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(summary))
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
    return summary, _plots(outcome, out)


def _plots(outcome: Outcome, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["no plots: matplotlib is not installed (pip install 'p2pdm[sim]')"]
    records = outcome.recorder.messages.values()
    fig, ax = plt.subplots(figsize=(6, 4))
    for path in ("direct", "mailbox", None):
        values = sorted(
            r.latency_s
            for r in records
            if r.latency_s is not None and (path is None or r.path == path)
        )
        if values:
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, ys, where="post", label=path or "all")
    ax.set_xlabel("latency (s)")
    ax.set_ylabel("fraction delivered")
    ax.set_title("Delivery latency CDF")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency_cdf.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    sent = sorted(r.sent_s for r in records)
    delivered = sorted(t for t, _ in outcome.recorder.deliveries)
    ax.step(sent, range(1, len(sent) + 1), where="post", label="sent")
    ax.step(delivered, range(1, len(delivered) + 1), where="post", label="delivered")
    ax.set_xlabel("simulation time (s)")
    ax.set_ylabel("messages")
    ax.set_title("Messages over time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "deliveries.png")
    plt.close(fig)
    return []
