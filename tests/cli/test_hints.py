"""Hints name the home they were made for, so they work when pasted."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from p2pdm import hints


def test_the_default_home_is_not_named() -> None:
    assert hints.command(hints.default_home(), "id") == "p2pdm id"
    assert hints.command(None, "run") == "p2pdm run"


def test_another_home_is_named_and_quoted(tmp_path: Path) -> None:
    home = tmp_path / "my node"
    hint = hints.command(home, "init", "--force")
    assert shlex.split(hint) == ["p2pdm", "--home", str(home), "init", "--force"]


def test_the_hint_module_stays_light() -> None:
    code = (
        "import sys, p2pdm.hints; "
        "heavy = {'libp2p', 'sqlite3', 'nacl', 'doubleratchet', 'x3dh', 'trio'}; "
        "heavy &= set(sys.modules); "
        "print(sorted(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_default_home_ends_in_the_apps_name() -> None:
    """What lets `command` tell a home named otherwise from the default one
    without loading platformdirs."""
    assert hints.default_home().name == hints.APP_NAME


def test_a_home_named_like_the_default_elsewhere_is_named(tmp_path: Path) -> None:
    home = tmp_path / hints.APP_NAME
    assert hints.command(home, "ui") == f"p2pdm --home {shlex.quote(str(home))} ui"


def test_a_hint_for_a_named_home_does_not_load_platformdirs(tmp_path: Path) -> None:
    """A node run with --home (or P2PDM_HOME) names its home in every hint and
    never needs the default one: platformdirs (0.4 MiB) stays unloaded."""
    code = (
        "import sys, p2pdm.hints; "
        f"hint = p2pdm.hints.command({str(tmp_path / 'node')!r}, 'ui'); "
        "print('platformdirs' in sys.modules, hint)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded, hint = done.stdout.strip().split(" ", 1)
    assert loaded == "False"
    assert shlex.split(hint) == ["p2pdm", "--home", str(tmp_path / "node"), "ui"]
