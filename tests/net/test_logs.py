"""py-libp2p's log noise stays out of the application's logs and off stderr."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pdm.net import configure_libp2p_logging


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_records() -> Iterator[list[logging.LogRecord]]:
    recorder = Recorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    try:
        yield recorder.records
    finally:
        root.removeHandler(recorder)


def test_only_critical_libp2p_records_reach_the_application(
    root_records: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIBP2P_DEBUG", raising=False)
    configure_libp2p_logging()
    configure_libp2p_logging()  # idempotent
    pinned = logging.getLogger("libp2p.test.pinned")
    pinned.setLevel(logging.INFO)  # as libp2p.network.auto_connector does
    pinned.info("auto-connector chatter")
    logging.getLogger("libp2p.network.swarm").error("peer went away (a normal disconnect)")
    logging.getLogger("libp2p.network.swarm").critical("really broken")
    assert [r.getMessage() for r in root_records] == ["really broken"]


DISCONNECTS = textwrap.dedent(
    """
    import trio
    from p2pdm.net import open_host
    from p2pdm.net.testing import ECHO_PROTOCOL, echo, host_seed

    async def main():
        async with open_host(host_seed(1)) as b:
            b.set_handler(ECHO_PROTOCOL, echo)
            for _ in range(3):  # a connects, streams, and goes away mid-conversation
                async with open_host(host_seed(2)) as a:
                    stream = await a.open_stream(b.peer_id, ECHO_PROTOCOL, b.listen_addrs())
                    await stream.write_frame(b"x", 5)
                    await stream.read_frame(1024, 5)
                await trio.sleep(0.2)

    trio.run(main)
    """
)


@pytest.mark.net
def test_ordinary_disconnects_print_nothing_on_stderr() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LIBP2P_DEBUG"}
    done = subprocess.run(
        [sys.executable, "-c", DISCONNECTS],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Without configure_libp2p_logging, py-libp2p prints e.g.
    # "Failed to read DHT message from stream:" here.
    assert done.stderr == ""
