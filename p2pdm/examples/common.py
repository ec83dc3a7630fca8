"""What the example bots share: options, the node client, a saved state file, the start line.

The state (the event cursor and whatever the bot remembers) is written
atomically after each event, so a bot stopped at any point resumes after
the last event it finished; a reply it had sent before a crash is not sent
again, because its idempotency key is made from the event id.

A bot's first start (no state file yet) begins at *now*: the node's newest
event (``event_cursor`` of ``GET /v1/node``), so it does not answer the
whole history; ``--from-start`` begins at the oldest event the node keeps
instead. Later starts resume from the saved cursor. Either way the bot says
in one line which node it serves, with which token (its name, never the
secret) and where its cursor is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from p2pdm.client import AsyncClient
from p2pdm.daemon.home import Home

__all__ = ["BotState", "add_common_arguments", "connect", "start"]

#: A state file is a few hundred bytes; more means it is not ours.
MAX_STATE_BYTES: Final = 1 << 20
#: The name the API gives the owner's token (``<home>/api_token``).
OWNER_TOKEN_NAME: Final = "owner"


@dataclass
class BotState:
    """The cursor and the bot's own notes, kept in a JSON file."""

    path: Path
    cursor: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    #: Whether the file exists (loaded or saved): False on a bot's first start.
    saved: bool = False

    @classmethod
    def load(cls, path: Path) -> BotState:
        try:
            raw = path.read_bytes()[:MAX_STATE_BYTES]
        except FileNotFoundError:
            return cls(path)
        data = json.loads(raw)
        return cls(path, int(data.get("cursor", 0)), dict(data.get("notes", {})), saved=True)

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"cursor": self.cursor, "notes": self.notes}))
        os.replace(tmp, self.path)
        self.saved = True


def add_common_arguments(parser: argparse.ArgumentParser, default_state: str) -> None:
    parser.add_argument("--home", help="the node home (default: $P2PDM_HOME or the data dir)")
    parser.add_argument("--token", help="an API token (default: the owner's, from the home)")
    parser.add_argument(
        "--state", default=default_state, help=f"where the bot keeps its cursor ({default_state})"
    )
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="begin at the oldest event the node keeps, answering old messages too "
        "(default: a first start begins now, later ones where the last stopped)",
    )


def connect(args: argparse.Namespace) -> AsyncClient:
    return AsyncClient.for_home(Home(args.home), token=args.token)


async def start(
    bot: str,
    node: AsyncClient,
    state: BotState,
    *,
    from_start: bool = False,
    out: TextIO | None = None,
) -> None:
    """Set where ``state``'s cursor begins (see the module's docstring), save it, and
    print the bot's one start line to ``out`` (standard output)."""
    info = await node.node()
    if from_start:
        state.cursor = 0
        where = "from the oldest event kept (--from-start)"
    elif not state.saved:
        state.cursor = info["event_cursor"]
        where = f"first start: from now, after event {state.cursor}"
    else:
        where = f"resuming after event {state.cursor}"
    state.save()
    token = info["token"]
    if token["name"] == OWNER_TOKEN_NAME:
        used = "the owner's token"
    else:
        used = f"token {token['name']!r} (scope {token['scope']})"
    name = info["name"] or "(no name)"
    print(
        f"{bot}: node {name} {info['peer_id']} at {node.address}, {used}; "
        f"cursor in {state.path} ({where})",
        file=out or sys.stdout,
        flush=True,
    )
