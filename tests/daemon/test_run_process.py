"""`p2pdm run` as real processes: start-up, signals, and a receiver killed mid-burst."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from p2pdm.client import Client, api_addr_path
from p2pdm.daemon.home import Home
from p2pdm.errors import NodeNotRunning
from tests.conftest import free_port

pytestmark = [pytest.mark.net, pytest.mark.slow]

#: Longest a node may take to start (imports, DHT join) on a busy 2-core machine.
START_DEADLINE_S = 60.0


def init(home: Path, name: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "p2pdm", "--home", str(home), "init", "--name", name],
        check=True,
        capture_output=True,
        env=_env(),
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("P2PDM_PASSPHRASE", None)
    return env


class Proc:
    def __init__(self, home: Path, args: list[str], log: Path) -> None:
        self.home = home
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "p2pdm", "--home", str(home), "run", "--no-mdns", *args],
                stdout=out,
                stderr=out,
                env=_env(),
            )
        deadline = time.monotonic() + START_DEADLINE_S
        while not self._answers():  # a killed node leaves a stale api_addr behind
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"node did not start:\n{log.read_text()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            client = Client.for_home(Home(self.home))
        except NodeNotRunning:
            return False
        try:
            client.node()
        except NodeNotRunning:
            client.close()
            return False
        self.client = client
        return True

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if hasattr(self, "client"):
            self.client.close()
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(timeout=5)


@contextmanager
def running(home: Path, *args: str) -> Iterator[Proc]:
    proc = Proc(
        home,
        ["--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", *args],
        home.with_suffix(".log"),
    )
    try:
        yield proc
    finally:
        proc.stop()


def test_run_starts_logs_one_line_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    init(home, "alice")
    proc = Proc(
        home, ["--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0"], tmp_path / "alice.log"
    )
    info = proc.client.node()
    assert info["addrs"] and info["addrs"][0].startswith("/ip4/127.0.0.1/tcp/")
    shown = subprocess.run(
        [sys.executable, "-m", "p2pdm", "--home", str(home), "id", "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=True,
    )
    assert json.loads(shown.stdout)["addrs"] == info["addrs"]  # the invite says where to dial
    assert proc.stop(signal.SIGTERM) == 0
    log = (tmp_path / "alice.log").read_text()
    [line] = [line for line in log.splitlines() if "listening on" in line]
    assert info["peer_id"] in line and info["addrs"][0] in line and "http://127.0.0.1:" in line
    # Then where a person clicks: a one-time sign-in link to the web app.
    [line] = [line for line in log.splitlines() if "open the web app" in line]
    assert re.search(r"http://127\.0\.0\.1:\d+/login\?code=[\w-]{43} ", line), line
    assert f"`p2pdm --home {home} ui` makes another" in line  # where this node lives
    assert "Traceback" not in log
    assert not api_addr_path(Home(home)).exists()


def test_run_refuses_a_second_node_and_init_force_while_running(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    init(home, "alice")
    with running(home) as first:
        second = subprocess.run(
            [sys.executable, "-m", "p2pdm", "--home", str(home), "run", "--api", "127.0.0.1:0"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=30,
        )
        assert second.returncode == 1
        assert second.stderr.startswith("p2pdm: error: a node is running from")
        assert len(second.stderr.splitlines()) == 1
        again = subprocess.run(
            [sys.executable, "-m", "p2pdm", "--home", str(home), "init", "--force"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=30,
        )
        assert again.returncode == 1 and "a node is running" in again.stderr
        assert first.client.node()["peer_id"]


def statuses(client: Client, who: str) -> dict[str, str]:
    """Message id → status of every message in the conversation with ``who``."""
    found: dict[str, str] = {}
    before: Any = None
    while True:
        page = client.messages(who, limit=200, before=before)
        found.update({m["id"]: m["status"] for m in page["messages"]})
        before = page.get("next_before")
        if before is None:
            return found


def test_receiver_killed_during_a_burst_gets_everything_exactly_once(tmp_path: Path) -> None:
    burst = 300
    for name in ("bob", "alice", "carol"):
        init(tmp_path / name, name)
    carol_port = free_port()
    carol_args = ["--listen", f"/ip4/127.0.0.1/tcp/{carol_port}", "--api", "127.0.0.1:0"]
    with running(tmp_path / "bob") as bob:
        boot = ["--bootstrap", bob.client.node()["addrs"][0]]
        with running(tmp_path / "alice", *boot) as alice:
            carol = Proc(tmp_path / "carol", carol_args + boot, tmp_path / "carol.log")
            carol_id = carol.client.node()["peer_id"]
            alice.client.add_contact(carol_id, "carol")
            # Contacts both ways: to a node that does not know her, Alice is a
            # stranger, whose messages are held to the requests' rate and caps.
            carol.client.add_contact(alice.client.node()["peer_id"], "alice")
            sent = [alice.client.send("carol", f"message {i}")["id"] for i in range(burst // 3)]
            carol.stop(signal.SIGKILL)  # mid-burst: some queued, some in flight
            sent += [
                alice.client.send("carol", f"message {i}")["id"] for i in range(burst // 3, burst)
            ]
            time.sleep(1.0)
            carol = Proc(tmp_path / "carol", carol_args + boot, tmp_path / "carol.log")
            try:
                deadline = time.monotonic() + 150  # retries back off up to ~25 s meanwhile
                while True:
                    status = statuses(alice.client, "carol")
                    if all(status.get(i) == "delivered" for i in sent):
                        break
                    assert time.monotonic() < deadline, (
                        f"undelivered: {sorted(set(status.values()))}"
                    )
                    time.sleep(0.5)
                received = statuses(carol.client, alice.client.node()["peer_id"])
                page_texts: list[str] = []
                before: Any = None
                while True:
                    page = carol.client.messages(alice.client.node()["peer_id"], 200, before)
                    page_texts += [m["text"] for m in page["messages"] if m["text"] is not None]
                    before = page.get("next_before")
                    if before is None:
                        break
                assert len(received) == burst
                assert sorted(page_texts) == sorted(f"message {i}" for i in range(burst))
            finally:
                carol.stop()


def test_serve_runs_a_dht_server_relay_and_mailbox(tmp_path: Path) -> None:
    home = tmp_path / "helper"
    init(home, "helper")
    with running(home, "--serve") as proc:
        reach = proc.client.node()["reachability"]
        assert reach is not None and reach["dht_mode"] == "server"
        assert reach["relay"] == {
            "reservations": 0,
            "circuits_open": 0,
            "circuits_total": 0,
            "circuits_cut": 0,
            "refused": {},
        }
    assert "LAN discovery" not in (tmp_path / "helper.log").read_text()


def test_a_live_share_of_a_node_killed_with_sigkill_is_stopped_when_it_runs_again(
    tmp_path: Path,
) -> None:
    """Alice shares her live location with Bob; her node is killed (SIGKILL, no
    shutdown of any kind): Bob still sees the share, as a share standing still
    sends nothing; when her node runs again, it tells Bob the share stopped."""
    for name in ("alice", "bob"):
        init(tmp_path / name, name)
    alice_port = free_port()
    alice_args = ["--listen", f"/ip4/127.0.0.1/tcp/{alice_port}", "--api", "127.0.0.1:0"]
    alice = Proc(tmp_path / "alice", alice_args, tmp_path / "alice.log")
    try:
        with running(tmp_path / "bob", "--bootstrap", alice.client.node()["addrs"][0]) as bob:
            alice_id = alice.client.node()["peer_id"]
            # From invites: a bundle looked up by PeerID may not be published
            # yet this soon after Bob's start.
            alice.client.add_contact(bob.client.node()["invite"], "bob")
            bob.client.add_contact(alice.client.node()["invite"], "alice")
            first = alice.client.send("bob", "on my way")["id"]
            _until(lambda: statuses(alice.client, "bob").get(first) == "delivered", 60)
            shared = alice.client.share_live_location("bob", 52.52, 13.40, duration_s=900)
            assert shared["sent"], shared
            _until(lambda: len(bob.client.live_locations("alice")) == 1, 30)
            alice.stop(signal.SIGKILL)
            time.sleep(2.0)
            [shown] = bob.client.live_locations("alice")  # nothing told Bob yet
            assert shown["peer"] == alice_id and not shown["mine"]
            boot = ["--bootstrap", bob.client.node()["addrs"][0]]
            alice = Proc(tmp_path / "alice", alice_args + boot, tmp_path / "alice.log")
            _until(lambda: bob.client.live_locations("alice") == [], 60)
            assert alice.client.live_locations("bob") == []
            stops = bob.client.poll_events(types=["location.stopped"])["events"]
            assert [e["peer"] for e in stops] == [alice_id]
    finally:
        alice.stop()


def _until(check: Any, seconds: float) -> None:
    """Wait, polling, until ``check()`` is true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time given"
        time.sleep(0.25)
