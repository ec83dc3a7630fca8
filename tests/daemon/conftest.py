"""Shared by the daemon tests: homes with the fast KDF and a fixed clock."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from p2pdm.daemon.home import ENV_PASSPHRASE, Home
from tests.conftest import FAST_KDF


def fast_home(tmp_path: Path, name: str = "home", passphrase: str | None = None) -> Home:
    """``tmp_path / name``, a home (not created yet) with the fast KDF and a fixed clock."""
    env = {ENV_PASSPHRASE: passphrase} if passphrase is not None else {}
    return Home(tmp_path / name, env=env, kdf_limits=FAST_KDF, clock=lambda: 1_700_000_000.0)


@pytest.fixture
def make_home(tmp_path: Path) -> Callable[..., Home]:
    """``make_home(passphrase=None)``: :func:`fast_home` named "home" in ``tmp_path``."""
    return functools.partial(fast_home, tmp_path, "home")
