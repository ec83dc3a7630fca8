"""Two simulations on two "machines": network namespaces joined by a veth pair.

Each namespace has loopback and one end of the veth pair (10.77.0.1/24 and
10.77.0.2/24) and no other route, so the only way between them is the
10.77.0.0/24 link, as between two machines on a LAN. Namespace A runs
``p2pdm sim --clock real --listen /ip4/0.0.0.0/tcp/4001``; namespace B runs
``p2pdm sim --bootstrap <A's join address>``. Both must deliver everything,
and each must see the other's nodes in its routing tables (one DHT).

The namespaces belong to ``unshare``-started holder processes: a namespace
(and the veth end in it) vanishes when the last process in it exits, so
killing the holders and the simulations (by PID) cleans up everything, even
after a failed assertion. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN),
``unshare``, ``nsenter`` and ``ip``; without them the test is skipped,
saying which step failed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
#: The private link between the two "machines".
ADDR_A: Final = "10.77.0.1"
ADDR_B: Final = "10.77.0.2"
PREFIX: Final = 24
#: A's nodes listen on ports 4001 to 4004 (``--listen …/tcp/4001``, as for a
#: firewall): nothing else listens in a fresh namespace, so they are free.
FIRST_PORT: Final = 4001
#: Nodes in each simulation.
NODES: Final = 4
#: A holder outlives the test even if nothing kills it, then exits by itself.
HOLDER_SECONDS: Final = 900
#: Longest a setup command (unshare, nsenter, ip) may take.
COMMAND_TIMEOUT_SECONDS: Final = 20.0
#: Longest simulation A may take to form and print its join address.
JOIN_LINE_TIMEOUT_SECONDS: Final = 180.0
#: Longest either simulation may take in all (forming, traffic, drain, report).
SIM_TIMEOUT_SECONDS: Final = 600.0
JOIN_LINE: Final = re.compile(r"join this simulation with: p2pdm sim --bootstrap (\S+)")

pytestmark = [pytest.mark.netns, pytest.mark.net, pytest.mark.slow]


class Namespace:
    """A network namespace held by one ``unshare``-started process."""

    def __init__(self, holder: subprocess.Popen[str]) -> None:
        self.holder = holder
        self.pid = holder.pid

    def run(self, *argv: str) -> None:
        """Run a command in this namespace; raises CalledProcessError."""
        subprocess.run(
            ["nsenter", "-t", str(self.pid), "-n", "--", *argv],
            check=True,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )

    def popen(self, argv: list[str], stderr_path: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` in this namespace (nsenter execs it: the PID is its own)."""
        with stderr_path.open("wb") as err, stderr_path.with_suffix(".stdout").open("wb") as out:
            return subprocess.Popen(
                ["nsenter", "-t", str(self.pid), "-n", "--", *argv],
                cwd=ROOT,
                stdout=out,
                stderr=err,
                env={**os.environ, "COLUMNS": "200"},
            )


def _skip(step: str, exc: BaseException) -> None:
    detail = getattr(exc, "stderr", None) or str(exc)
    pytest.skip(f"cannot make network namespaces ({step}): {str(detail).strip()[:200]}")


def _holder() -> Namespace:
    """A process in a new network namespace; returns once the namespace exists."""
    holder = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", f"echo ready; exec sleep {HOLDER_SECONDS}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline()  # sh runs only after unshare made the namespace
    if line.strip() != "ready":
        holder.kill()
        _, err = holder.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
        raise subprocess.CalledProcessError(1, "unshare --net", stderr=err)
    ours = os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{holder.pid}/ns/net") != ours, "not a new namespace"
    return Namespace(holder)


def _stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Kill one process we started, by PID, and reap it."""
    if process.poll() is None:
        process.kill()
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=COMMAND_TIMEOUT_SECONDS)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


@contextmanager
def two_machines() -> Iterator[tuple[Namespace, Namespace]]:
    """Namespaces A and B joined by a veth pair, A at 10.77.0.1, B at 10.77.0.2."""
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"cannot make network namespaces: {tool} is not installed")
    made: list[Namespace] = []
    try:
        try:
            made.append(_holder())
            made.append(_holder())
        except (OSError, subprocess.SubprocessError) as exc:
            _skip("unshare --net", exc)
        a, b = made
        try:
            # Made inside A with its peer end straight in B: it never exists
            # in the test's own namespace, and goes when they go.
            veth = ["ip", "link", "add", "sim0", "type", "veth", "peer", "name", "sim0"]
            a.run(*veth, "netns", str(b.pid))
        except (OSError, subprocess.SubprocessError) as exc:
            _skip("ip link add type veth", exc)
        for ns, addr in ((a, ADDR_A), (b, ADDR_B)):
            ns.run("ip", "link", "set", "lo", "up")
            ns.run("ip", "addr", "add", f"{addr}/{PREFIX}", "dev", "sim0")
            ns.run("ip", "link", "set", "sim0", "up")
        yield a, b
    finally:
        for ns in made:
            _stop(ns.holder)


def _sim(ns: Namespace, out: Path, *options: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "p2pdm", "sim", "--clock", "real", "--nodes", str(NODES)]
    argv += ["--mailboxes", "1", "--rate", "1", "--drain", "120", "--store", "memory"]
    return ns.popen([*argv, *options, "--out", str(out)], out.with_suffix(".stderr"))


def _join_addr(stderr_path: Path, process: subprocess.Popen[bytes]) -> str:
    """A's join address, from its stderr, once it has formed (bounded)."""
    deadline = JOIN_LINE_TIMEOUT_SECONDS
    waited = 0.0
    while waited < deadline:
        found = JOIN_LINE.search(stderr_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)
        waited += 0.5
    raise AssertionError(f"no join address from A: {stderr_path.read_text()[-2000:]}")


def _report(out: Path, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    try:
        process.wait(timeout=SIM_TIMEOUT_SECONDS)
    finally:
        _stop(process)
    stderr = out.with_suffix(".stderr").read_text(errors="replace")
    assert process.returncode == 0, stderr[-2000:]
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


def test_two_simulations_on_two_machines_form_one_dht(tmp_path: Path) -> None:
    """A sends for 60 s: long enough that A still runs while B forms, sends
    for 10 s and drains (if A ended first, B would still deliver among its
    own nodes, and its routing tables would still hold A's peers)."""
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    with two_machines() as (a, b):
        listen = f"/ip4/0.0.0.0/tcp/{FIRST_PORT}"
        sim_a = _sim(a, out_a, "--listen", listen, "--seed", "1", "--duration", "60")
        sim_b = None
        try:
            join = _join_addr(out_a.with_suffix(".stderr"), sim_a)
            # B could not dial A's loopback: the join address is A's link address.
            assert join.startswith(f"/ip4/{ADDR_A}/tcp/{FIRST_PORT}/p2p/"), join
            sim_b = _sim(b, out_b, "--bootstrap", join, "--seed", "2", "--duration", "10")
            report_b = _report(out_b, sim_b)
            report_a = _report(out_a, sim_a)
        finally:
            for process in (sim_a, sim_b):
                if process is not None:
                    _stop(process)
    for report in (report_a, report_b):
        assert report["sent"] and report["delivery_rate"] == 1.0, report
        assert report["duplicates"] == 0
    # One DHT: each simulation's routing tables hold the other's nodes (and
    # nothing else exists outside either of them).
    for report in (report_a, report_b):
        assert 1 <= report["outside_peers"]["in_routing_tables"] <= NODES
    assert any(f"/ip4/{ADDR_B}/" in addr for addr in report_b["join_addrs"])
