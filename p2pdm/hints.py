"""How to type a p2pdm command for a given home, for the hints errors print.

A hint must work when pasted: a node home chosen with ``--home`` (or
``P2PDM_HOME``) is named in it, the default home is not. Light on purpose:
the SDK imports it, so it must not load libp2p, the session libraries or
SQLite.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

__all__ = ["command", "default_home"]

APP_NAME = "p2pdm"


def default_home() -> Path:
    """The home used when neither ``--home`` nor ``P2PDM_HOME`` names one."""
    # platformdirs (0.4 MiB) loads only to find this path, which a node whose
    # home is named never needs (see `command`).
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)).expanduser().absolute()


def command(home: str | os.PathLike[str] | None, *args: str) -> str:
    """``p2pdm [--home HOME] ARGS…`` as a user should type it for ``home``."""
    words = ["p2pdm"]
    if home is not None and not _is_default_home(home):
        words += ["--home", shlex.quote(os.fspath(home))]
    words += args
    return " ".join(words)


def _is_default_home(home: str | os.PathLike[str]) -> bool:
    path = Path(home).expanduser().absolute()
    # The default home's last part is always APP_NAME (platformdirs appends the
    # app's name on every system), so a home named otherwise is not it, and
    # platformdirs need not be loaded to tell (lower(): Windows paths compare so).
    return path.name.lower() == APP_NAME and path == default_home()
