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
