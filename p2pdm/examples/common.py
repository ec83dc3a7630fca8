"""What the example bots share: options, the node client, and a saved state file.

The state (the event cursor and whatever the bot remembers) is written
atomically after each event, so a bot stopped at any point resumes after
the last event it finished; a reply it had sent before a crash is not sent
again, because its idempotency key is made from the event id.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from p2pdm.client import AsyncClient
from p2pdm.daemon.home import Home

__all__ = ["BotState", "add_common_arguments", "connect"]

#: A state file is a few hundred bytes; more means it is not ours.
MAX_STATE_BYTES: Final = 1 << 20


@dataclass
class BotState:
    """The cursor and the bot's own notes, kept in a JSON file."""

    path: Path
    cursor: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> BotState:
        try:
            raw = path.read_bytes()[:MAX_STATE_BYTES]
        except FileNotFoundError:
            return cls(path)
        data = json.loads(raw)
        return cls(path, int(data.get("cursor", 0)), dict(data.get("notes", {})))

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"cursor": self.cursor, "notes": self.notes}))
        os.replace(tmp, self.path)


def add_common_arguments(parser: argparse.ArgumentParser, default_state: str) -> None:
    parser.add_argument("--home", help="the node home (default: $P2PDM_HOME or the data dir)")
    parser.add_argument("--token", help="an API token (default: the owner's, from the home)")
    parser.add_argument(
        "--state", default=default_state, help=f"where the bot keeps its cursor ({default_state})"
    )


def connect(args: argparse.Namespace) -> AsyncClient:
    return AsyncClient.for_home(Home(args.home), token=args.token)
