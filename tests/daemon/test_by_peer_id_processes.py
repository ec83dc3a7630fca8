"""Two ``p2pdm run`` processes, the second joining through the first, write to
each other knowing only the PeerID: each finds the other's bundle in the DHT."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from p2pdm.bench.net import start_node, stop_process
from p2pdm.client import Client
from p2pdm.daemon.home import Home

pytestmark = [pytest.mark.net, pytest.mark.slow]

#: Bound on each step on a busy 2-core machine: Bob's record reaching Alice,
#: a send, a delivery.
STEP_S = 20.0
#: Pause between polls of a node's API.
POLL_S = 0.2


@contextmanager
def _node(path: Path, name: str, *extra: str) -> Iterator[Client]:
    home = Home(path, env={})
    home.create_identity(name)
    proc = start_node(home, "--no-mdns", "--no-demo", *extra)
    try:
        with Client.for_home(home, timeout_s=STEP_S * 3) as client:
            yield client
    finally:
        stop_process(proc)


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STEP_S
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {STEP_S:g} s"
        time.sleep(POLL_S)


def test_two_processes_write_to_each_other_knowing_only_the_peer_id(tmp_path: Path) -> None:
    """``p2pdm run`` joining through another node is a DHT client until AutoNAT
    finds it reachable: its bundle is found only where its put stored it, at
    Alice. (A put through p2pdm's own lookup once stored it nowhere: Alice,
    knowing no one but Bob, answered with neither record nor closer peer, and
    the lookup took that answer for a failure.)"""
    with ExitStack() as stack:
        alice = stack.enter_context(_node(tmp_path / "alice", "alice"))
        alice_info = alice.node()
        bob = stack.enter_context(
            _node(tmp_path / "bob", "bob", "--bootstrap", alice_info["addrs"][0])
        )
        bob_info = bob.node()

        # Alice holds her own record, then Bob's (published as he starts).
        def alice_records() -> int:
            dht = alice.node()["dht"]
            return 0 if dht is None else dht["records"]

        _wait("Bob's record at Alice", lambda: alice_records() >= 2)
        sent = []
        for client, other in ((alice, bob_info), (bob, alice_info)):
            client.add_contact(other["peer_id"], "friend")
            sent.append((client, client.send("friend", "found you by your PeerID")))
        for client, message in sent:
            _wait(
                "delivery",
                lambda: client.message(message["id"])["status"] == "delivered",  # noqa: B023
            )
