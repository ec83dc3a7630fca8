"""Nodes behind NAT routers, in network namespaces: reachability, relays, hole punching.

The topology (each box a network namespace held by an ``unshare`` process,
as in ``tests/sim/test_netns.py``; links are veth pairs)::

    home_a: Alice 192.168.1.2
      └─ router_a: 192.168.1.1 | 100.64.1.2, MASQUERADE
           └─ internet: 100.64.1.1 and 100.64.2.1, relay R and public node P
           ┌─ (forwards between its two links)
      ┌─ router_c: 192.168.2.1 | 100.64.2.2, MASQUERADE
    home_c: Carol 192.168.2.2

Each router masquerades its home behind its internet address and lets
nothing in that is not part of a connection from inside, dropping the rest
silently (iptables and conntrack, as a home router does). The internet has no route to either
home. Nodes run as ``p2pdm run`` processes; the test talks to their local
APIs with ``curl`` inside their namespaces. Needs root, ``unshare``,
``nsenter``, ``ip``, ``iptables`` and ``curl``; skipped naming the step
that failed otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest

from p2pdm.daemon.home import Home
from tests.conftest import home_with_identity
from tests.sim.test_netns import Namespace, _holder, _skip, _stop, two_machines

pytestmark = [pytest.mark.netns, pytest.mark.net, pytest.mark.slow]

API_PORT: Final = 4780
P2P_PORT: Final = 4001
#: Longest wait for one condition (a verdict, a reservation, a delivery).
WAIT_SECONDS: Final = 60.0
COMMAND_TIMEOUT_SECONDS: Final = 20.0
TOOLS: Final = ("unshare", "nsenter", "ip", "iptables", "curl")


def _setup(step: str, action: Callable[[], None]) -> None:
    try:
        action()
    except (OSError, subprocess.SubprocessError) as exc:
        _skip(step, exc)


def _veth(a: Namespace, name_a: str, b: Namespace, name_b: str) -> None:
    a.run("ip", "link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", str(b.pid))


def _addr(ns: Namespace, dev: str, cidr: str) -> None:
    ns.run("ip", "addr", "add", cidr, "dev", dev)
    ns.run("ip", "link", "set", dev, "up")


@dataclass
class World:
    internet: Namespace
    router_a: Namespace
    router_c: Namespace
    home_a: Namespace
    home_c: Namespace


@contextmanager
def nat_world() -> Iterator[World]:
    for tool in TOOLS:
        if shutil.which(tool) is None:
            pytest.skip(f"cannot build the NAT topology: {tool} is not installed")
    made: list[Namespace] = []
    try:
        _setup("unshare --net", lambda: made.extend(_holder() for _ in range(5)))
        world = World(*made)
        inet, ra, rc, ha, hc = made
        for ns in made:
            ns.run("ip", "link", "set", "lo", "up")
        _setup("ip link add type veth", lambda: _veth(inet, "wa", ra, "wan"))
        _veth(inet, "wc", rc, "wan")
        _veth(ra, "lan", ha, "eth0")
        _veth(rc, "lan", hc, "eth0")
        _addr(inet, "wa", "100.64.1.1/24")
        _addr(inet, "wc", "100.64.2.1/24")
        for router, home, n in ((ra, ha, 1), (rc, hc, 2)):
            _addr(router, "wan", f"100.64.{n}.2/24")
            _addr(router, "lan", f"192.168.{n}.1/24")
            router.run("ip", "route", "add", "default", "via", f"100.64.{n}.1")
            _addr(home, "eth0", f"192.168.{n}.2/24")
            home.run("ip", "route", "add", "default", "via", f"192.168.{n}.1")
        for ns in (inet, ra, rc):
            ns.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for router in (ra, rc):
            masquerade = ["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
            _setup("iptables MASQUERADE", partial(router.run, "iptables", *masquerade))
            # A home router: replies get in, nothing else (not even a reset
            # for a closed port: unsolicited packets are dropped silently).
            for chain in ("FORWARD", "INPUT"):
                replies = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]
                router.run("iptables", "-A", chain, "-i", "wan", *replies)
                router.run("iptables", "-A", chain, "-i", "wan", "-j", "DROP")
        yield world
    finally:
        for ns in made:
            _stop(ns.holder)


@dataclass
class NodeProc:
    ns: Namespace
    home: Home
    process: subprocess.Popen[bytes]
    api_port: int
    log: Path

    @property
    def peer_id(self) -> str:
        return str(self.home.load_identity().peer_id)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        argv = ["curl", "-s", "-m", "10", "-X", method]
        argv += ["-H", f"Authorization: Bearer {self.home.api_token()}"]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        argv.append(f"http://127.0.0.1:{self.api_port}{path}")
        done = subprocess.run(
            ["nsenter", "-t", str(self.ns.pid), "-n", "--", *argv],
            capture_output=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0 or not done.stdout:
            return None
        return json.loads(done.stdout)

    def reach(self) -> dict[str, Any]:
        info = self.call("GET", "/v1/node") or {}
        return info.get("reachability") or {}


def start(
    stack: ExitStack, ns: Namespace, tmp: Path, name: str, *options: str, port: int = P2P_PORT
) -> NodeProc:
    home = home_with_identity(tmp / name, name)
    api_port = API_PORT + port - P2P_PORT
    argv = [sys.executable, "-m", "p2pdm", "--home", str(home.path), "run"]
    argv += ["--listen", f"/ip4/0.0.0.0/tcp/{port}", "--api", f"127.0.0.1:{api_port}"]
    log = tmp / f"{name}-{len(list(tmp.glob(f'{name}*.log')))}.log"
    process = ns.popen([*argv, *options, "--log-level", "info"], log)
    stack.callback(_stop, process)
    return NodeProc(ns, home, process, api_port, log)


def wait_for(what: str, check: Callable[[], Any], nodes: list[NodeProc]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        for node in nodes:
            assert node.process.poll() is None, node.log.read_text()[-3000:]
        time.sleep(0.5)
    logs = "\n\n".join(f"--- {n.home.path.name}\n{n.log.read_text()[-2500:]}" for n in nodes)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def texts(node: NodeProc, peer: str) -> list[str]:
    page = node.call("GET", f"/v1/conversations/{peer}/messages") or {}
    return [m["text"] for m in page.get("messages", [])]


def status_is(node: NodeProc, status: str) -> Callable[[], bool]:
    return lambda: node.reach().get("status") == status


def relayed_of(node: NodeProc) -> Callable[[], list[str]]:
    return lambda: list(node.reach().get("relayed_addrs") or [])


def punches(*nodes: NodeProc) -> dict[str, dict[str, int]]:
    """Each node's hole-punch counters, once any node has a result; else {}."""
    counts = {n.home.path.name: n.reach().get("hole_punch") or {} for n in nodes}
    return counts if any(sum(c.values()) for c in counts.values()) else {}


def circuits_open(relay: NodeProc) -> int:
    stats = relay.reach().get("relay") or {}
    return int(stats.get("circuits_open", -1))


def punch_failures(*nodes: NodeProc) -> int:
    return sum((n.reach().get("hole_punch") or {}).get("failures", 0) for n in nodes)


def make_symmetric(router: Namespace) -> None:
    """The router now maps each new connection to a random port (a symmetric
    NAT, as some carriers run): the port a peer learns through the relay is
    not the one a hole punch would need, so punches cannot meet."""
    rule = ["-t", "nat", "-R", "POSTROUTING", "1", "-o", "wan", "-j", "MASQUERADE"]
    router.run("iptables", *rule, "--random-fully")


def test_two_nodes_behind_nat_chat_through_a_relay(tmp_path: Path) -> None:
    with nat_world() as w, ExitStack() as stack:
        relay = start(stack, w.internet, tmp_path, "relay", "--relay")
        relay_addr = f"/ip4/100.64.1.1/tcp/{P2P_PORT}/p2p/{relay.peer_id}"
        public = start(
            stack, w.internet, tmp_path, "public", "--bootstrap", relay_addr, port=P2P_PORT + 1
        )
        public_addr = f"/ip4/100.64.2.1/tcp/{P2P_PORT + 1}/p2p/{public.peer_id}"
        everyone = [relay, public]
        wait_for("the relay's API", lambda: relay.call("GET", "/v1/node"), everyone)
        alice = start(stack, w.home_a, tmp_path, "alice", "--bootstrap", relay_addr,
                      "--bootstrap", public_addr)  # fmt: skip
        carol = start(stack, w.home_c, tmp_path, "carol", "--bootstrap", relay_addr,
                      "--bootstrap", public_addr)  # fmt: skip
        everyone += [alice, carol]

        # Reachability: the NATed nodes are private, the relay public.
        for node in (alice, carol):
            wait_for(f"{node.home.path.name} private", status_is(node, "private"), everyone)
        wait_for("the relay public", status_is(relay, "public"), everyone)
        assert alice.reach()["dht_mode"] == "client" and relay.reach()["dht_mode"] == "server"

        # Each finds the relay in the DHT and publishes its relayed addresses.
        for node in (alice, carol):
            relayed = wait_for(f"{node.home.path.name}'s reservation", relayed_of(node), everyone)
            circuit = f"/p2p/{relay.peer_id}/p2p-circuit/p2p/{node.peer_id}"
            assert all(circuit in addr for addr in relayed)
        assert relay.reach()["relay"]["reservations"] >= 2

        # By PeerID only: the record gives the bundle and the relayed addresses.
        assert alice.call("POST", "/v1/contacts", {"peer_id": carol.peer_id})
        assert carol.call("POST", "/v1/contacts", {"peer_id": alice.peer_id})
        sent = alice.call("POST", "/v1/messages", {"to": carol.peer_id, "text": "hi Carol"})
        assert sent and sent.get("status") == "queued", sent
        wait_for("Carol to receive", lambda: "hi Carol" in texts(carol, alice.peer_id), everyone)
        assert relay.reach()["relay"]["circuits_total"] >= 1

        # Then both try to punch a hole; whatever the outcome, it is counted.
        punched = wait_for("a hole punch result", lambda: punches(alice, carol), everyone)
        print(f"hole punching between two MASQUERADE routers: {punched}")
        if any(counts["successes"] for counts in punched.values()):
            # Direct now: the relayed connection is closed, the relay carries nothing.
            wait_for("the circuit to close", lambda: circuits_open(relay) == 0, everyone)
        assert carol.call("POST", "/v1/messages", {"to": alice.peer_id, "text": "after the punch"})
        wait_for(
            "Alice to receive", lambda: "after the punch" in texts(alice, carol.peer_id), everyone
        )

        # Carol's router turns symmetric; Carol comes back (every connection
        # to her gone): the punch fails, and the relay carries the chat on.
        make_symmetric(w.router_c)
        _stop(carol.process)
        carol = start(
            stack,
            w.home_c,
            tmp_path,
            "carol",
            "--bootstrap",
            relay_addr,
            "--bootstrap",
            public_addr,
        )
        everyone[-1] = carol
        wait_for("Carol's new reservation", relayed_of(carol), everyone)
        failures = alice.reach()["hole_punch"]["failures"]
        alice.call("POST", "/v1/messages", {"to": carol.peer_id, "text": "still here"})
        wait_for(
            "Carol to receive again", lambda: "still here" in texts(carol, alice.peer_id), everyone
        )
        wait_for("the punch to fail", lambda: punch_failures(alice, carol) > failures, everyone)
        assert relay.reach()["relay"]["circuits_total"] >= 2


def test_two_nodes_on_one_lan_find_each_other_by_mdns(tmp_path: Path) -> None:
    """No bootstrap address at all: mDNS finds the other node, the DHT of the
    two gives Bob's record (his keys), and Ann's message reaches him directly."""
    with two_machines() as (a, b), ExitStack() as stack:
        for ns in (a, b):  # zeroconf picks its interface by the default route
            ns.run("ip", "route", "add", "default", "dev", "sim0")
        ann = start(stack, a, tmp_path, "ann")
        bob = start(stack, b, tmp_path, "bob")
        both = [ann, bob]
        for node in both:
            wait_for(f"{node.home.path.name} to find a LAN peer", lan_peer_found(node), both)
        assert ann.call("POST", "/v1/contacts", {"peer_id": bob.peer_id})
        assert bob.call("POST", "/v1/contacts", {"peer_id": ann.peer_id})
        message = {"to": bob.peer_id, "text": "hello, neighbour", "idempotency_key": "hello"}
        wait_for("Bob's keys", lambda: ann.call("POST", "/v1/messages", message).get("id"), both)
        wait_for("Bob to receive", lambda: "hello, neighbour" in texts(bob, ann.peer_id), both)
        assert ann.reach()["relayed_addrs"] == []


def lan_peer_found(node: NodeProc) -> Callable[[], bool]:
    return lambda: bool(node.reach().get("lan_peers"))
