"""``p2pdm status``: what the running node is, has and holds, in a few lines.

A client of ``GET /v1/node``, like the chat commands: PeerID and name,
addresses, how long it has run, contacts, messages still to be delivered,
unread messages and requests, what its DHT node holds for other peers
and refused, and the mailboxes it uses and offers (``GET /v1/mailboxes``)
(``--json``: the API's own record, without the invite, with the mailboxes'
under ``mailboxes``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from typing import Any, Final, TextIO

from p2pdm.cli.chat import safe_text
from p2pdm.client import Client, DhtStats, NodeInfo, ReachabilityInfo
from p2pdm.daemon.home import Home

__all__ = ["describe", "status", "status_arguments"]

EXIT_OK: Final = 0
#: Width of the labels in the left column.
_LABEL: Final = 10


def status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def status(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        info = node.node()
        mailboxes = node.mailboxes()
    if args.json:
        shown = {key: value for key, value in info.items() if key != "invite"}
        shown["mailboxes"] = mailboxes
        print(json.dumps(shown, ensure_ascii=False, indent=2), file=out)
        return EXIT_OK
    lines = describe(info, now_ms=int(time.time() * 1000), mailboxes=mailboxes)
    for label, value in lines:
        print(f"{label:<{_LABEL}}{value}".rstrip(), file=out)
    return EXIT_OK


def describe(
    info: NodeInfo, *, now_ms: int, mailboxes: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """The lines of ``p2pdm status``: (label, text); a label is empty on continuation lines.

    ``mailboxes``: the answer of ``GET /v1/mailboxes`` (no Mailbox line without it)."""
    counts = info["counts"]
    name = safe_text(info["name"]) or "(no name)"
    lines = [("Node", f"{name} ({info['peer_id']})"), ("Version", info["version"])]
    lines.append(("Up", _duration(now_ms - info["started_at_ms"])))
    addrs = info["addrs"] or ["(not listening)"]
    lines += [("Address" if i == 0 else "", safe_text(a)) for i, a in enumerate(addrs)]
    lines.append(("Contacts", str(counts.get("contacts", 0))))
    queued = _plural(counts.get("outbox", 0), "message") + " to deliver"
    waiting = counts.get("waiting_for_keys", 0)
    if waiting:
        queued += f"; {waiting} waiting for their recipients' keys"
    lines.append(("Queued", queued))
    unread, requests = counts.get("unread", 0), counts.get("requests", 0)
    lines.append(("Unread", f"{unread}; {_plural(requests, 'message request')}"))
    lines.append(("DHT", _dht(info["dht"])))
    reach = info["reachability"]
    lines.append(("Reach", _reach(reach)))
    if reach is not None:
        relayed = reach["relayed_addrs"]
        lines += [("Relayed" if i == 0 else "", safe_text(a)) for i, a in enumerate(relayed)]
        punch = reach["hole_punch"]
        if any(punch.values()):
            lines.append(
                (
                    "Punch",
                    f"{punch['successes']} hole punches succeeded, {punch['failures']} failed; "
                    f"{punch['direct_dials']} relayed peers dialed directly",
                )
            )
        if reach["relay"] is not None:
            lines.append(("Relay", _relay(reach["relay"])))
    if mailboxes is not None:
        lines.append(("Mailbox", _mailboxes(mailboxes)))
    return lines


def _mailboxes(answer: Mapping[str, Any]) -> str:
    if not answer["networked"]:
        return "not on the network"
    used = answer["used"]
    named = sum(1 for m in used if m["named"])
    text = f"uses {len(used)} ({named} named in our record)"
    pending = answer.get("withdrawals", {}).get("pending", 0)
    if pending:
        text += f"; {_plural(pending, 'deposit')} of unsent messages to take back"
    offered = answer["offered"]
    if offered is None:
        return f"{text}; offers none"
    return (
        f"{text}; offers one holding {_plural(offered['envelopes'], 'envelope')} "
        f"({_size(offered['bytes'])}) for {_plural(offered['recipients'], 'recipient')} "
        f"of {offered['max_envelopes']} "
        f"({_size(offered['max_bytes'])})"
    )


def _relay(stats: Mapping[str, object]) -> str:
    refused = stats.get("refused")
    refusals = _refusals(refused if isinstance(refused, dict) else {})
    return (
        f"serving {stats.get('reservations', 0)} reservations, "
        f"{stats.get('circuits_open', 0)} circuits open "
        f"({stats.get('circuits_total', 0)} in all, "
        f"{stats.get('circuits_cut', 0)} cut at a limit); "
        f"{refusals.replace('write', 'request')}"
    )


_REACH_MEANING: Final = {
    "public": "other nodes can dial this one",
    "private": "behind a router or firewall: other nodes cannot dial this one",
    "unknown": "not known yet (too few peers have answered)",
    "local": "listening on loopback only: only nodes on this computer can dial this one",
}


def _reach(reach: ReachabilityInfo | None) -> str:
    if reach is None:
        return "not on the network"
    status = reach["status"]
    meaning = _REACH_MEANING.get(status, "")
    return f"{status}: {meaning}; DHT {reach['dht_mode']} mode".replace(": ;", ";")


def _dht(stats: DhtStats | None) -> str:
    if stats is None:
        return "not on the network"
    held = (
        f"holds {_plural(stats['records'], 'record')} ({_size(stats['record_bytes'])}) "
        f"and {_plural(stats['providers'], 'provider record')}"
    )
    return f"{held}; {_refusals(stats['refused'])}; {stats['evicted']} evicted"


def _refusals(refused: Mapping[str, int]) -> str:
    total = sum(refused.values())
    if not total:
        return "refused none"
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(refused.items()))
    return f"refused {_plural(total, 'write')} ({reasons})"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


def _duration(ms: int) -> str:
    minutes = max(0, ms) // 60_000
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "less than a minute"
