"""Start-up and memory: the CLI, and a node from its command to serving.

Each figure is one process run by this benchmark, timed from its start to
its exit (or, for a node, to its API's first answer), with the process's own
peak RSS (``wait4``'s rusage, or ``VmRSS`` of a node that keeps running).
Baselines in the same run: ``python -c pass`` for the CLI, and ``python -c
'import libp2p'`` for a node (py-libp2p's package import alone).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from p2pdm.client import Client
from p2pdm.daemon.home import Home

__all__ = ["Startup", "StartupResult", "bench_startup", "render_startup"]

#: A node idle this long after its first answer has finished starting up
#: (its first DHT and maintenance rounds); its RSS is read then.
IDLE_SETTLE_S: Final = 3.0
#: A node that does not answer within this is broken, not slow.
START_DEADLINE_S: Final = 60.0
#: How often the benchmark asks a starting node whether it serves.
POLL_S: Final = 0.01


_P2PDM: Final = (sys.executable, "-m", "p2pdm")
_RUN_OPTIONS: Final = ("--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
_RUN_QUIET: Final = ("--log-level", "warning")


@dataclass(frozen=True)
class Startup:
    """Median wall time and peak RSS of one command over the runs."""

    seconds: float
    rss_mib: float


@dataclass(frozen=True)
class StartupResult:
    python_pass: Startup
    import_libp2p: Startup
    version: Startup
    client_command: Startup
    #: From `p2pdm run` to its API's first answer; RSS after IDLE_SETTLE_S.
    node: Startup
    runs: int


#: Runs a command and prints its wall time and peak RSS. A small process of its
#: own starts the command: a child forked from this (large) benchmark process
#: would report this process's peak RSS as its own (Linux keeps the peak
#: across fork and exec).
_MEASURE: Final = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
elapsed = time.perf_counter() - start
rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps([code, elapsed, rss_kib]))
"""


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=START_DEADLINE_S,
    ).stdout
    code, elapsed, rss_kib = json.loads(out)
    if code != 0:
        raise RuntimeError(f"{argv} exited with {code}")
    return elapsed, rss_kib / 1024


def _median(argv: list[str], runs: int, env: dict[str, str]) -> Startup:
    samples = [_timed(argv, env) for _ in range(runs)]
    return Startup(
        statistics.median(s for s, _ in samples), statistics.median(r for _, r in samples)
    )


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _node(home: Home, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Startup]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*_P2PDM, "--home", str(home.path), "run", *_RUN_OPTIONS, *_RUN_QUIET],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = start + START_DEADLINE_S
    while time.perf_counter() < deadline:
        try:
            with Client.for_home(home.path) as client:
                client.node()
            break
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError("the node exited while starting") from None
            time.sleep(POLL_S)
    else:
        proc.kill()
        raise RuntimeError("the node did not start")
    serving = time.perf_counter() - start
    time.sleep(IDLE_SETTLE_S)
    return proc, Startup(serving, _rss_mib(proc.pid))


def _compile_bytecode() -> None:
    """Compile p2pdm's modules as an install does, so that no run pays for it
    (libp2p, the baseline, comes compiled; a run under
    ``PYTHONDONTWRITEBYTECODE`` would otherwise compile p2pdm on every start)."""
    package = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def bench_startup(runs: int) -> StartupResult:
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2PDM_")}
    python = sys.executable
    _compile_bytecode()
    with tempfile.TemporaryDirectory() as d:
        home = Home(Path(d) / "node", env={})
        home.create_identity("bench")
        proc, node = _node(home, env)
        try:
            client = _median([*_P2PDM, "--home", str(home.path), "status", "--json"], runs, env)
        finally:
            proc.terminate()
            proc.wait(timeout=START_DEADLINE_S)
    return StartupResult(
        python_pass=_median([python, "-c", "pass"], runs, env),
        import_libp2p=_median([python, "-c", "import libp2p"], runs, env),
        version=_median([*_P2PDM, "--version"], runs, env),
        client_command=client,
        node=node,
        runs=runs,
    )


def render_startup(result: StartupResult) -> str:
    base, lib = result.python_pass, result.import_libp2p

    def row(name: str, s: Startup, against: Startup) -> str:
        return (
            f"| {name} | {s.seconds * 1000:,.0f} | {s.seconds / against.seconds:.1f} |"
            f" {s.rss_mib:.1f} | {s.rss_mib / against.rss_mib:.2f} |"
        )

    return "\n".join(
        [
            "<!-- bench:startup:begin -->",
            "## Start-up and memory",
            "",
            "Each command in a fresh process, from its start to its exit (a node: to its"
            " API's first answer), with that process's peak RSS; a node's RSS is read"
            f" {IDLE_SETTLE_S:g} s after it first answered (idle after start-up). A client"
            " command is `p2pdm status --json` against a running node. p2pdm's bytecode is"
            " compiled first, as an install does.",
            "",
            "| what | ms | time ratio to baseline | RSS MiB | RSS ratio to baseline |",
            "|---|---:|---:|---:|---:|",
            row("`python -c pass` (baseline for the CLI)", base, base),
            row("`p2pdm --version`", result.version, base),
            row("a client command (`p2pdm status --json`)", result.client_command, base),
            row("`python -c 'import libp2p'` (baseline for a node)", lib, lib),
            row("`p2pdm run`: start to serving; idle RSS", result.node, lib),
            "",
            f"Median of {result.runs} runs (the node: one start). Goals: `--version` ≤ 150 ms,"
            " a client command ≤ 250 ms, both ≤ 35 MiB; a node serving in ≤ 1 s and idle"
            " at ≤ 1.1 times the RSS of importing libp2p.",
            "<!-- bench:startup:end -->",
        ]
    )
