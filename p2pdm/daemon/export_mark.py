"""The mark an export leaves on the exported home, and ``p2pdm run``'s check of it.

Apart from :mod:`p2pdm.daemon.archive` (which writes the mark, and re-exports
these names) so that ``p2pdm run``, which only reads it, does not load the
archive code and the store snapshot with it.
"""

from __future__ import annotations

import json
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from p2pdm import hints
from p2pdm.daemon.home import Home
from p2pdm.errors import HomeError
from p2pdm.homefiles import write_private_file

__all__ = ["EXPORT_MARK_FILE", "MAX_EXPORT_MARK_BYTES", "ExportMark", "check_not_exported"]

#: The file in the exported home that makes ``p2pdm run`` refuse there.
EXPORT_MARK_FILE: Final = "exported.json"
#: The mark holds a time and a path (at most PATH_MAX, 4096 bytes, escaped).
MAX_EXPORT_MARK_BYTES: Final = 32 << 10


@dataclass(frozen=True, slots=True)
class ExportMark:
    """The record that a home was exported: when, and to which file (None if unreadable)."""

    exported_at_ms: int | None
    archive: str | None

    @staticmethod
    def path(home: Home) -> Path:
        return home.path / EXPORT_MARK_FILE

    @classmethod
    def read(cls, home: Home) -> ExportMark | None:
        """The home's mark, or None if it was never exported (or ``run --force`` cleared it).

        A damaged mark still counts as a mark: it says the home was exported.
        """
        try:
            with open(cls.path(home), "rb") as file:
                raw = file.read(MAX_EXPORT_MARK_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError:
            return cls(None, None)
        try:
            data = json.loads(raw) if len(raw) <= MAX_EXPORT_MARK_BYTES else None
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            return cls(None, None)
        at, archive = data.get("exported_at_ms"), data.get("archive")
        return cls(
            at if isinstance(at, int) and not isinstance(at, bool) else None,
            archive if isinstance(archive, str) else None,
        )

    def write(self, home: Home) -> None:
        text = json.dumps({"exported_at_ms": self.exported_at_ms, "archive": self.archive})
        write_private_file(self.path(home), (text + "\n").encode("utf-8"), replace=True)

    @classmethod
    def clear(cls, home: Home) -> None:
        with suppress(FileNotFoundError):
            cls.path(home).unlink()

    def describe(self) -> str:
        """``to FILE at TIME``, with what is known."""
        words = []
        if self.archive is not None:
            words.append(f"to {self.archive}")
        if self.exported_at_ms is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.exported_at_ms / 1000))
            words.append(f"at {stamp}")
        return " ".join(words)


def check_not_exported(home: Home, *, force: bool) -> ExportMark | None:
    """Refuse to run an exported home unless ``force``; with it, clear the mark.

    Returns the mark that ``force`` cleared (None if there was none). Raises
    :class:`HomeError` for an exported home without ``force``.
    """
    mark = ExportMark.read(home)
    if mark is None:
        return None
    if not force:
        where = mark.describe()
        raise HomeError(
            f"this home was exported{' ' + where if where else ''}; if the imported copy runs "
            "too, both advance the same encrypted sessions and your contacts' messages "
            "fail to decrypt on one of them. Run the node where you imported it, or "
            f"`{hints.command(home.path, 'run', '--force')}` if this copy stays the one in use"
        )
    ExportMark.clear(home)
    return mark
