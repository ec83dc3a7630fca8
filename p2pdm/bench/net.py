"""Two nodes in two processes on loopback: the local API to the receiver's store.

``python -m p2pdm.bench.pipeline --suite net`` (part of ``scripts/bench``) starts a
receiver node (the real :func:`p2pdm.daemon.runner.run_node`, in this module's
``_receiver`` mode, which notes when each message is committed) and a sender
node (``p2pdm run``) in their own processes, then drives the sender's local
API from this process:

- **sustained**: ``n`` messages posted by ``concurrency`` clients as fast as
  the sender accepts them; messages per second from the first POST to the
  last commit at the receiver, and latency from POST to commit;
- **paced**: messages at a fixed rate well below capacity, for latency
  without queueing.

Times are ``time.monotonic_ns()``, one clock for every process on the
machine (Linux ``CLOCK_MONOTONIC``). Baseline, in the same run: raw py-libp2p
request/response of an envelope-sized frame on one stream between two
processes (through :class:`p2pdm.net.Stream`, no crypto, no store).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import trio

from p2pdm.client import Client
from p2pdm.core.identity import PeerId
from p2pdm.daemon.home import Home
from p2pdm.daemon.runner import Running, RunOptions, run_node
from p2pdm.net import Stream, open_host
from p2pdm.net.testing import host_seed

__all__ = ["NetResult", "bench_net", "start_child", "start_node", "stop_process"]

LOOPBACK: Final = ("/ip4/127.0.0.1/tcp/0",)
ECHO_PROTOCOL: Final = "/p2pdm-bench/echo/1.0.0"
#: About the size of an envelope carrying a short text.
PAYLOAD_BYTES: Final = 600
TEXT: Final = "x" * 200
#: How long any one phase may take before the benchmark gives up.
PHASE_DEADLINE_S: Final = 300.0
START_DEADLINE_S: Final = 60.0
WARMUP_MESSAGES: Final = 50


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Latency:
        cuts = statistics.quantiles(samples_ns, n=100, method="inclusive")
        return cls(cuts[49] / 1e6, cuts[98] / 1e6)


@dataclass(frozen=True)
class NetResult:
    baseline_per_second: float
    baseline_latency: Latency
    sustained_per_second: float
    sustained_latency: Latency
    paced_rate: float
    paced_latency: Latency
    #: The paced messages from POST to a follower of the receiver's event
    #: stream (``GET /v1/events``, SSE) reading their ``message.received``.
    paced_event_latency: Latency
    n: int
    concurrency: int
    #: The same sustained load sent through ``POST /v1/messages/batch``.
    batch_per_second: float
    batch_latency: Latency
    batch_size: int
    #: CPU milliseconds a message of the sender's and of the receiver's
    #: process (user + system, from /proc), by phase: steadier than rates
    #: when other jobs share the cores. Empty where /proc is not there.
    cpu_ms: dict[str, tuple[float, float]] = field(default_factory=dict)


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used; None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count from its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU a message of two processes over the phases of a run."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.per_message: dict[str, tuple[float, float]] = {}
        self._start: list[float | None] = []

    def start(self) -> None:
        self._start = [process_cpu_s(pid) for pid in self.pids]

    def stop(self, phase: str, messages: int) -> None:
        now = [process_cpu_s(pid) for pid in self.pids]
        if None in now or None in self._start:
            return
        sender, receiver = (
            (after - before) * 1000 / messages  # type: ignore[operator]
            for before, after in zip(self._start, now, strict=True)
        )
        self.per_message[phase] = (sender, receiver)


# --- child processes ---------------------------------------------------------


async def _receiver(home_path: str, out_path: str) -> None:
    """Run a real node; note each committed message; dump the notes on SIGTERM."""
    home = Home(home_path, env={})
    committed: dict[str, int] = {}
    options = RunOptions(listen=LOOPBACK, api=("127.0.0.1", 0))
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(run_node, home, options)

            def note(received: Any) -> None:
                if received.message is not None:
                    committed[received.message.id.hex()] = time.monotonic_ns()

            running.node.on_received = note
            ready = {"addr": running.node.addrs[0], "invite": running.node.invite()}
            print(json.dumps(ready), flush=True)
            async for _ in signals:
                break
            await trio.Path(out_path).write_text(json.dumps(committed))
            nursery.cancel_scope.cancel()


async def _echo() -> None:
    async def echo(stream: Stream) -> None:
        async with stream:
            while (frame := await stream.read_frame(1 << 16, 60)) is not None:
                await stream.write_frame(frame, 10)

    async with open_host(host_seed(900), LOOPBACK) as host:
        host.set_handler(ECHO_PROTOCOL, echo)
        print(json.dumps({"addr": host.listen_addrs()[0]}), flush=True)
        await trio.sleep_forever()


def start_child(
    *args: str, module: str = "p2pdm.bench.net"
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start ``python -m MODULE ARGS`` and read its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"benchmark child {args[0]} did not start")
    return proc, json.loads(line)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# --- the baseline --------------------------------------------------------------


async def _baseline(addr: str, rounds: int) -> tuple[float, Latency]:
    peer = PeerId.parse(addr.rsplit("/p2p/", 1)[1])
    payload = os.urandom(PAYLOAD_BYTES)
    samples: list[int] = []
    async with (
        open_host(host_seed(901), LOOPBACK) as host,
        await host.open_stream(peer, ECHO_PROTOCOL, [addr]) as stream,
    ):
        for _ in range(WARMUP_MESSAGES):
            await stream.write_frame(payload, 10)
            await stream.read_frame(1 << 16, 10)
        start = time.perf_counter()
        for _ in range(rounds):
            t0 = time.monotonic_ns()
            await stream.write_frame(payload, 10)
            await stream.read_frame(1 << 16, 10)
            samples.append(time.monotonic_ns() - t0)
        elapsed = time.perf_counter() - start
    return rounds / elapsed, Latency.of(samples)


# --- the two nodes -------------------------------------------------------------


async def _post_all(
    api: httpx.AsyncClient, count: int, concurrency: int, posted: dict[str, int]
) -> None:
    """POST ``count`` messages from ``concurrency`` clients; note when each POST began."""
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            t0 = time.monotonic_ns()
            response = await api.post("/v1/messages", json={"to": "receiver", "text": TEXT})
            response.raise_for_status()
            posted[response.json()["id"]] = t0

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)


async def _post_batches(
    api: httpx.AsyncClient, count: int, size: int, posted: dict[str, int]
) -> None:
    """POST ``count`` messages in batches of ``size`` from one client."""
    for start in range(0, count, size):
        t0 = time.monotonic_ns()
        batch = [{"to": "receiver", "text": TEXT}] * min(size, count - start)
        response = await api.post("/v1/messages/batch", json={"messages": batch})
        response.raise_for_status()
        for result in response.json()["results"]:
            posted[result["id"]] = t0  # a refused one (no "id") fails the benchmark


async def _post_paced(
    api: httpx.AsyncClient, count: int, rate: float, posted: dict[str, int]
) -> None:
    start = trio.current_time()
    for i in range(count):
        await trio.sleep_until(start + i / rate)
        t0 = time.monotonic_ns()
        response = await api.post("/v1/messages", json={"to": "receiver", "text": TEXT})
        response.raise_for_status()
        posted[response.json()["id"]] = t0


async def _follow_received(
    api: httpx.AsyncClient,
    since: int,
    seen: dict[str, int],
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow the receiver's event stream, as a bot would; note when each
    ``message.received`` event after ``since`` is read."""
    async with api.stream(
        "GET",
        "/v1/events",
        params={"since": since, "types": "message.received"},
        headers={"Accept": "text/event-stream"},
        timeout=httpx.Timeout(30, read=None),
    ) as response:
        response.raise_for_status()
        task_status.started()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                message_id = json.loads(line[5:]).get("message_id")
                if message_id is not None:
                    seen.setdefault(message_id, time.monotonic_ns())


async def _cursor(api: httpx.AsyncClient) -> int:
    """The receiver's newest event id (where a follower starting now begins)."""
    page = (await api.get("/v1/events/poll", params={"since": 0, "limit": 1})).json()
    newest = page["cursor"]
    while True:  # walk to the end a page at a time
        page = (await api.get("/v1/events/poll", params={"since": newest, "limit": 500})).json()
        if page["cursor"] == newest:
            return int(newest)
        newest = page["cursor"]


async def _wait_received(client: httpx.AsyncClient, total: int) -> None:
    with trio.fail_after(PHASE_DEADLINE_S):
        while await _messages(client) < total:  # noqa: ASYNC110
            await trio.sleep(0.05)


async def _messages(client: httpx.AsyncClient) -> int:
    """The node's message count. A keep-alive connection idle through a phase
    may have been closed by the server as it is reused: asked again, once."""
    try:
        response = await client.get("/v1/node")
    except httpx.TransportError:
        response = await client.get("/v1/node")
    return int(response.json()["counts"]["messages"])


def _api(home: Home) -> httpx.AsyncClient:
    with Client.for_home(home) as client:
        address = client.address
    return httpx.AsyncClient(
        base_url=f"http://{address}",
        headers={"Authorization": f"Bearer {home.api_token()}"},
        timeout=30,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


def _start_sender(home: Home, bootstrap: str) -> subprocess.Popen[bytes]:
    return start_node(home, "--bootstrap", bootstrap)


def start_node(home: Home, *extra: str) -> subprocess.Popen[bytes]:
    """``p2pdm run`` on loopback for ``home`` (with ``extra`` arguments), once its API answers."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "p2pdm",
            "--home",
            str(home.path),
            "run",
            "--listen",
            LOOPBACK[0],
            "--api",
            "127.0.0.1:0",
            "--log-level",
            "warning",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            with Client.for_home(home) as client:
                client.node()
            return proc
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the node of {home.path} did not start")


def bench_net(
    n: int, concurrency: int, paced_rate: float, paced_n: int, batch_size: int = 100
) -> NetResult:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        echo, ready = start_child("_echo")
        try:
            base_rate, base_latency = trio.run(_baseline, ready["addr"], n)
        finally:
            stop_process(echo)

        sender_home, receiver_home = Home(tmp / "sender", env={}), Home(tmp / "receiver", env={})
        sender_home.create_identity("sender")
        receiver_home.create_identity("receiver")
        notes = tmp / "committed.json"
        receiver, ready = start_child("_receiver", str(receiver_home.path), str(notes))
        sender = None
        try:
            sender = _start_sender(sender_home, ready["addr"])
            with Client.for_home(sender_home) as client:
                client.add_contact(ready["invite"], "receiver")
            # Contacts both ways, as people who chat are: to a node that does
            # not know it, the sender is a stranger held to the requests' rate.
            with Client.for_home(receiver_home) as client:
                client.add_contact(str(sender_home.load_identity().peer_id), "sender")
            sustained: dict[str, int] = {}
            paced: dict[str, int] = {}
            batched: dict[str, int] = {}
            events: dict[str, int] = {}

            meter = CpuMeter(sender.pid, receiver.pid)

            async def drive() -> None:
                async with _api(sender_home) as api, _api(receiver_home) as receiver_api:
                    await _post_all(api, WARMUP_MESSAGES, 1, {})
                    await _wait_received(receiver_api, WARMUP_MESSAGES)
                    meter.start()
                    await _post_all(api, n, concurrency, sustained)
                    await _wait_received(receiver_api, WARMUP_MESSAGES + n)
                    meter.stop("sustained", n)
                    since = await _cursor(receiver_api)
                    async with trio.open_nursery() as follower:
                        await follower.start(_follow_received, receiver_api, since, events)
                        meter.start()
                        await _post_paced(api, paced_n, paced_rate, paced)
                        await _wait_received(receiver_api, WARMUP_MESSAGES + n + paced_n)
                        meter.stop("paced", paced_n)
                        with trio.fail_after(PHASE_DEADLINE_S):
                            while not paced.keys() <= events.keys():  # noqa: ASYNC110
                                await trio.sleep(0.05)
                        follower.cancel_scope.cancel()
                    meter.start()
                    await _post_batches(api, n, batch_size, batched)
                    await _wait_received(receiver_api, WARMUP_MESSAGES + 2 * n + paced_n)
                    meter.stop("batch", n)

            trio.run(drive)
        finally:
            stop_process(receiver)
            if sender is not None:
                stop_process(sender)
        committed: dict[str, int] = json.loads(notes.read_text())

    first_post = min(sustained.values())
    last_commit = max(committed[i] for i in sustained)
    first_batch = min(batched.values())
    last_batch_commit = max(committed[i] for i in batched)
    return NetResult(
        baseline_per_second=base_rate,
        baseline_latency=base_latency,
        sustained_per_second=n / ((last_commit - first_post) / 1e9),
        sustained_latency=Latency.of([committed[i] - t for i, t in sustained.items()]),
        paced_rate=paced_rate,
        paced_latency=Latency.of([committed[i] - t for i, t in paced.items()]),
        paced_event_latency=Latency.of([events[i] - t for i, t in paced.items()]),
        n=n,
        concurrency=concurrency,
        batch_per_second=n / ((last_batch_commit - first_batch) / 1e9),
        batch_latency=Latency.of([committed[i] - t for i, t in batched.items()]),
        batch_size=batch_size,
        cpu_ms=meter.per_message,
    )


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "_receiver":
        trio.run(_receiver, sys.argv[2], sys.argv[3])
    elif mode == "_echo":
        trio.run(_echo)  # runs until the benchmark's SIGTERM ends the process
    else:
        raise SystemExit("run `python -m p2pdm.bench.pipeline --suite net`")


if __name__ == "__main__":
    main()
