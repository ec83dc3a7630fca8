"""Shared by the command-line tests: a clean environment, and the one-line error check."""

from __future__ import annotations

import pytest

from p2pdm.daemon.home import ENV_HOME, ENV_PASSPHRASE


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No home or passphrase from the environment of whoever runs the tests."""
    monkeypatch.delenv(ENV_HOME, raising=False)
    monkeypatch.delenv(ENV_PASSPHRASE, raising=False)


def assert_one_error_line(err: str, *needles: str) -> None:
    """``err`` is one ``p2pdm: error: …`` line, no traceback, holding every needle."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("p2pdm: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
