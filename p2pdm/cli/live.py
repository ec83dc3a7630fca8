"""Live location on the command line: ``send CONTACT --live-location LAT,LON
--for 15m`` (one update) and ``stop-live CONTACT``; CONTACT may be a group's
name or id (the share goes to each member online)."""

from __future__ import annotations

import argparse
import json
import shlex
import time
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final, TextIO

from p2pdm import hints
from p2pdm.cli.media import parse_location
from p2pdm.client import Client
from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError

__all__ = [
    "PERIODS",
    "live_lines",
    "parse_period",
    "share_live",
    "stop_live",
    "stop_live_arguments",
]

EXIT_OK = 0
#: What ``--for`` takes, in seconds (the node's LIVE_LOCATION_PERIODS_S).
PERIODS: Final = {"15m": 900, "1h": 3600, "8h": 28_800}


def parse_period(text: str) -> int:
    """``15m``, ``1h`` or ``8h`` in seconds; raises ConfigError for anything else."""
    seconds = PERIODS.get(text.strip().lower())
    if seconds is None:
        raise ConfigError(f"--for takes {', '.join(PERIODS)}, not {text!r}")
    return seconds


def _conversation(node: Client, who: str) -> str:
    """The conversation a live location with ``who`` is in: a group's, when
    ``who`` is the id or the name of exactly one group, else ``who`` itself
    (a contact's name or PeerID, or a conversation id: the node resolves it)."""
    typed = who.strip()
    key = unicodedata.normalize("NFKC", typed).casefold()
    groups = [
        g
        for g in node.groups()
        if typed in (g["id"], g["conversation"])
        or unicodedata.normalize("NFKC", g["name"]).casefold() == key
    ]
    return str(groups[0]["conversation"]) if len(groups) == 1 else who


def share_live(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    """One live-location update (starting the share when ``--for`` is given)."""
    if args.text or args.caption:
        raise ConfigError("--live-location takes no text or caption")
    lat, lon = parse_location(args.live_location, "--live-location")
    duration_s = None if args.live_for is None else parse_period(args.live_for)
    with Client.for_home(home) as node:
        where = _conversation(node, args.contact)
        answer = node.share_live_location(where, lat, lon, duration_s=duration_s)
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True), file=out)
        return EXIT_OK
    until = time.strftime("%H:%M", time.localtime(answer["live_location"]["until_ms"] / 1000))
    went = "sent" if answer["sent"] else f"not sent now ({answer['reason']})"
    print(f"Sharing your live location with {args.contact} until {until}: {went}.", file=out)
    return EXIT_OK


def stop_live_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "contact", metavar="CONTACT", help="name or PeerID, or a group's name or id"
    )


def stop_live(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    """Stop sharing the live location with a contact."""
    with Client.for_home(home) as node:
        stopped = node.stop_live_location(_conversation(node, args.contact))["stopped"]
    print(
        f"Stopped sharing your live location with {args.contact}."
        if stopped
        else f"You were not sharing your live location with {args.contact}.",
        file=out,
    )
    return EXIT_OK


def _clock(ms: int) -> str:
    return time.strftime("%H:%M", time.localtime(ms / 1000))


def live_lines(
    live: Sequence[Mapping[str, Any]],
    name: str,
    contact: str,
    home: Home,
    authors: Mapping[str, str] | None = None,
) -> list[str]:
    """What ``read`` shows after a conversation for the live locations running
    in it (``name`` and ``contact`` already made safe to print; ``authors``:
    a group's members' names by PeerID, safe too)."""
    lines = []
    for share in live:
        place = f"{share['lat']:.5f},{share['lon']:.5f}"
        until = _clock(share["until_ms"])
        if share["mine"]:
            stop = hints.command(home.path, "stop-live", shlex.quote(contact))
            lines.append(
                f"[live] you share your location until {until}: {place} (`{stop}` stops it)"
            )
        else:
            updated = _clock(share["updated_at_ms"])
            who = (authors or {}).get(share["peer"]) or (
                name if not authors else "~" + share["peer"][-8:]
            )
            lines.append(f"[live] {who} shares a location until {until}: {place} (at {updated})")
    return lines
