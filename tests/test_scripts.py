"""The scripts a newcomer runs first: what ``scripts/run`` tells them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Longest the script may take with .venv already set up (two CLI calls and `run --help`).
RUN_TIMEOUT_S = 120


@pytest.mark.slow
def test_run_names_the_home_for_the_other_terminal(tmp_path: Path) -> None:
    home = tmp_path / "my home"
    env = {k: v for k, v in os.environ.items() if k != "P2PDM_PASSPHRASE"}
    env["P2PDM_HOME"] = str(home)
    shown = subprocess.run(
        [str(ROOT / "scripts" / "run"), "--help"],  # stops after the hints
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT_S,
        check=True,
    )
    assert "usage: p2pdm run" in shown.stdout
    assert f"source {ROOT}/.venv/bin/activate" in shown.stderr
    # The other terminal must reach this node: the home is named, quoted for a shell.
    assert f"export P2PDM_HOME={str(home).replace(' ', chr(92) + ' ')}\n" in shown.stderr
    assert (home / "identity.cbor").exists()  # made on first use
