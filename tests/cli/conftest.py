"""Shared by the command-line tests: a clean environment, the one-line error check, the
command line run in-process, and a node serving its API for commands to talk to."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from p2pdm.api import serve_api
from p2pdm.cli.main import main
from p2pdm.client import write_api_addr
from p2pdm.daemon.home import ENV_HOME, ENV_PASSPHRASE, Home
from p2pdm.node.node import Node
from tests.conftest import home_with_identity

P2PDM_BIN = Path(sys.executable).parent / "p2pdm"
#: Bound on every wait: a command or server that hangs fails the test (longer than
#: tests.conftest.WAIT_S: a command runs in a worker thread, imports and all).
WAIT_S = 10.0


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


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def init(capsys: pytest.CaptureFixture[str], home: Path, *extra: str) -> str:
    code, out, err = run(capsys, "--home", str(home), "init", "--name", "alice", *extra)
    assert (code, err) == (0, ""), err
    return out


@dataclass
class Running:
    home: Home
    node: Node
    port: int


@asynccontextmanager
async def running_node(path: Path, name: str, token: str | None = None) -> AsyncIterator[Running]:
    home = home_with_identity(path, name)
    with closing(home.open_store()) as store:
        node = Node(home.load_identity(), store)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(WAIT_S):
                host, port = await nursery.start(
                    serve_api, node, token or home.api_token(), "127.0.0.1", 0
                )
            write_api_addr(home, host, port)
            yield Running(home, node, port)
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_pair(tmp_path: Path) -> AsyncIterator[tuple[Running, Running]]:
    """Alice's and Bob's nodes serving their APIs, homes in ``tmp_path``; no contacts yet."""
    async with (
        running_node(tmp_path / "alice", "alice") as alice,
        running_node(tmp_path / "bob", "bob") as bob,
    ):
        yield alice, bob


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command line in a thread while the node keeps serving in this loop."""
    with trio.fail_after(WAIT_S):
        # mypy (1.x) refuses keywords after *args: Unpack[Ts]; trio takes them.
        code = await trio.to_thread.run_sync(main, list(argv), abandon_on_cancel=True)  # type: ignore[call-arg]
    out, err = capsys.readouterr()
    return code, out, err
