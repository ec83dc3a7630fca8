"""A file between two ``p2pdm run`` processes on loopback, with their memory.

``python -m p2pdm.bench.pipeline --suite files`` (part of ``scripts/bench``)
measures, in one run:

- **baseline**: ``size`` bytes written as 256 KiB frames on one py-libp2p
  stream (through :class:`p2pdm.net.Stream`) from this process to a child
  process that reads and drops them and answers once it has them all: what
  one stream carries between two processes with no crypto, no checks, no
  files. After a first text (the session set up), it runs just before and
  just after each file (``--repeats`` files between the same two nodes), and
  each file is compared with the mean of the two, so a shared machine's
  drifting load weighs on both alike;
- **the file**: two real nodes (``p2pdm run``, separate homes, contacts of
  each other). Alice uploads a file of ``size`` bytes (``POST /v1/media``,
  streamed) and sends it (``POST /v1/messages`` with ``media``) through the
  SDK; Bob fetches it on its own (his ``media_auto_download_bytes`` is raised
  to the file's size) and the time runs to his ``media.ready`` event. The
  per-peer rate cap (``BLOB_BYTES_PER_SECOND_PER_PEER``) stays on: these
  are the nodes as people run them.

Both nodes' resident memory is sampled every :data:`RSS_SAMPLE_S` from
before the upload to the end of the transfer; the figure is each one's peak
over its RSS just before the upload. ``tests/daemon/test_file_processes.py``
runs the same transfer and checks the bytes and that bound.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import trio

from p2pdm.bench.net import start_child, start_node, stop_process
from p2pdm.bench.pipeline import _markers
from p2pdm.client import APIError, Client
from p2pdm.core.identity import PeerId
from p2pdm.daemon.home import Home
from p2pdm.net import Stream, open_host
from p2pdm.net.testing import host_seed

__all__ = [
    "FilesResult",
    "FilesRound",
    "NodeProcess",
    "RssSampler",
    "Transfer",
    "bench_files",
    "converse",
    "node_pair",
    "render_files",
    "send_file",
    "write_random_file",
]

LOOPBACK: Final = "/ip4/127.0.0.1/tcp/0"
SINK_PROTOCOL: Final = "/p2pdm-bench/sink/1.0.0"
#: Frames of the baseline: the size of a file's plaintext chunk.
FRAME_BYTES: Final = 256 << 10
#: How often both nodes' RSS is read during a transfer.
RSS_SAMPLE_S: Final = 0.1
#: Longest the baseline or one transfer may take before the benchmark gives up.
TRANSFER_DEADLINE_S: Final = 600.0
#: Seconds one long poll for ``media.ready`` waits on the node.
POLL_S: Final = 20
#: Tries of the first text: on a loaded machine its answer (the session set
#: up first) may come after the client's timeout.
SEND_ATTEMPTS: Final = 6


# --- memory --------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (psutil if installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for process {pid}") from None
    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (psutil if installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass
class RssSampler:
    """Reads the RSS of ``pids`` every RSS_SAMPLE_S in a thread while in ``with``;
    ``idle`` is each one's RSS at the start, ``peak`` the most seen."""

    pids: tuple[int, ...]
    idle: dict[int, int] = field(default_factory=dict)
    peak: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def growth(self, pid: int) -> int:
        return self.peak[pid] - self.idle[pid]

    def _sample(self) -> None:
        for pid in self.pids:
            self.peak[pid] = max(self.peak.get(pid, 0), rss_bytes(pid))

    def _loop(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            self._sample()

    def __enter__(self) -> RssSampler:
        self.idle = {pid: rss_bytes(pid) for pid in self.pids}
        self.peak = dict(self.idle)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()


# --- the two nodes ---------------------------------------------------------------


@dataclass
class NodeProcess:
    """A running ``p2pdm run`` and a client of its API."""

    home: Home
    pid: int
    client: Client
    peer_id: str
    addr: str


@contextmanager
def _node(path: Path, name: str, *extra: str) -> Iterator[NodeProcess]:
    home = Home(path, env={})
    home.create_identity(name)
    proc = start_node(home, "--no-mdns", "--no-demo", *extra)
    try:
        with Client.for_home(home) as client:
            info = client.node()
            yield NodeProcess(home, proc.pid, client, info["peer_id"], info["addrs"][0])
    finally:
        stop_process(proc)


@contextmanager
def node_pair(tmp: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Alice's and Bob's nodes in their own processes, contacts of each other;
    Bob fetches files of up to the largest size a file may have on his own."""
    with ExitStack() as stack:
        alice = stack.enter_context(_node(tmp / "alice", "alice"))
        bob = stack.enter_context(_node(tmp / "bob", "bob", "--bootstrap", alice.addr))
        # From invites: Bob's bundle may not be in the DHT yet this soon after his start.
        alice.client.add_contact(bob.client.node()["invite"], "bob")
        bob.client.add_contact(alice.client.node()["invite"], "alice")
        bob.client.update_settings({"media_auto_download_bytes": 1 << 30})
        yield alice, bob


def write_random_file(path: Path, size: int) -> str:
    """``size`` random bytes at ``path``, written a MiB at a time; their SHA-256 (hex)."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for at in range(0, size, 1 << 20):
            piece = os.urandom(min(1 << 20, size - at))
            digest.update(piece)
            out.write(piece)
    return digest.hexdigest()


@dataclass(frozen=True)
class Transfer:
    blob_id: str
    size: int
    #: ``POST /v1/media`` (the file streamed to Alice's node and sealed).
    upload_s: float
    #: From ``POST /v1/messages`` to Bob's ``media.ready``.
    transfer_s: float
    alice_growth: int
    bob_growth: int
    alice_idle: int
    bob_idle: int
    #: CPU seconds each node spent from the send to ``media.ready``.
    alice_cpu_s: float
    bob_cpu_s: float


def _wait_ready(bob: NodeProcess, blob_id: str, deadline: float) -> None:
    cursor = 0
    while time.monotonic() < deadline:
        page = bob.client.poll_events(cursor, POLL_S, types=["media.ready", "media.failed"])
        for event in page["events"]:
            if event["detail"].startswith(blob_id):
                if event["type"] != "media.ready":
                    raise RuntimeError(f"the file failed: {event['detail']}")
                return
        cursor = page["cursor"]
    raise RuntimeError(f"file {blob_id} did not arrive in {TRANSFER_DEADLINE_S:g} s")


def send_file(alice: NodeProcess, bob: NodeProcess, path: Path) -> Transfer:
    """Alice uploads and sends ``path`` to Bob; returns once Bob has it whole."""
    with RssSampler((alice.pid, bob.pid)) as rss:
        start = time.perf_counter()
        uploaded = alice.client.upload_file(path, "application/octet-stream")
        cpu = {pid: cpu_seconds(pid) for pid in (alice.pid, bob.pid)}
        sent = time.perf_counter()
        alice.client.send_media("bob", [uploaded["id"]])
        _wait_ready(bob, uploaded["id"], time.monotonic() + TRANSFER_DEADLINE_S)
        ready = time.perf_counter()
        cpu = {pid: cpu_seconds(pid) - before for pid, before in cpu.items()}
    return Transfer(
        blob_id=uploaded["id"],
        size=path.stat().st_size,
        upload_s=sent - start,
        transfer_s=ready - sent,
        alice_growth=rss.growth(alice.pid),
        bob_growth=rss.growth(bob.pid),
        alice_idle=rss.idle[alice.pid],
        bob_idle=rss.idle[bob.pid],
        alice_cpu_s=cpu[alice.pid],
        bob_cpu_s=cpu[bob.pid],
    )


# --- the baseline ----------------------------------------------------------------


async def _sink(size: int) -> None:
    """Child process: read ``size`` bytes of frames on each stream, then answer."""

    async def sink(stream: Stream) -> None:
        async with stream:
            got = 0
            while got < size:
                frame = await stream.read_frame(FRAME_BYTES, 60)
                if frame is None:
                    return
                got += len(frame)
            await stream.write_frame(b"done", 10)

    async with open_host(host_seed(910), (LOOPBACK,)) as host:
        host.set_handler(SINK_PROTOCOL, sink)
        print(json.dumps({"addr": host.listen_addrs()[0]}), flush=True)
        await trio.sleep_forever()


async def _raw(addr: str, size: int) -> float:
    peer = PeerId.parse(addr.rsplit("/p2p/", 1)[1])
    frame = os.urandom(FRAME_BYTES)
    with trio.fail_after(TRANSFER_DEADLINE_S):
        async with (
            open_host(host_seed(911), (LOOPBACK,)) as host,
            await host.open_stream(peer, SINK_PROTOCOL, [addr]) as stream,
        ):
            start = time.perf_counter()
            for _ in range(size // FRAME_BYTES):
                await stream.write_frame(frame, 30)
            answer = await stream.read_frame(16, 60)
            elapsed = time.perf_counter() - start
    if answer != b"done":
        raise RuntimeError("the baseline's sink did not take every frame")
    return size / elapsed / 1e6


def raw_between_processes(size: int) -> float:
    """MB/s of ``size`` bytes (a multiple of 256 KiB) on one stream to a child process."""
    sink, ready = start_child("_sink", str(size), module="p2pdm.bench.files")
    try:
        return trio.run(_raw, ready["addr"], size)
    finally:
        stop_process(sink)


# --- the suite -------------------------------------------------------------------


def converse(alice: NodeProcess, bob: NodeProcess) -> None:
    """A text from Alice to Bob, once it arrived: the session (and the first
    message's request stamp) is set up before any file is timed."""
    for attempt in range(SEND_ATTEMPTS):
        try:  # the same key: a retry after a timeout does not send twice
            alice.client.send("bob", "hello", idempotency_key="bench-files-hello")
            break
        except APIError:
            if attempt == SEND_ATTEMPTS - 1:
                raise
    deadline = time.monotonic() + TRANSFER_DEADLINE_S
    cursor = 0
    while time.monotonic() < deadline:
        page = bob.client.poll_events(cursor, POLL_S, types=["message.received"])
        if page["events"]:
            return
        cursor = page["cursor"]
    raise RuntimeError("Alice's first text did not reach Bob")


@dataclass(frozen=True)
class FilesRound:
    """One file's transfer and the baseline measured just before and just after it."""

    raw_before_mb_s: float
    raw_after_mb_s: float
    transfer: Transfer

    @property
    def raw_mb_s(self) -> float:
        """The baseline of this round: the mean of the runs on either side of the
        transfer (the load of a shared machine drifts within seconds)."""
        return (self.raw_before_mb_s + self.raw_after_mb_s) / 2

    @property
    def file_mb_s(self) -> float:
        return self.transfer.size / self.transfer.transfer_s / 1e6

    @property
    def end_to_end_mb_s(self) -> float:
        return self.transfer.size / (self.transfer.upload_s + self.transfer.transfer_s) / 1e6

    @property
    def ratio(self) -> float:
        return self.file_mb_s / self.raw_mb_s


@dataclass(frozen=True)
class FilesResult:
    rounds: tuple[FilesRound, ...]

    @property
    def median(self) -> FilesRound:
        """The round with the median ratio (the lower one of an even count)."""
        ordered = sorted(self.rounds, key=lambda r: r.ratio)
        return ordered[(len(ordered) - 1) // 2]


def bench_files(size: int, rounds: int = 3) -> FilesResult:
    """``rounds`` files of ``size`` bytes between one pair of nodes, each between
    two runs of the baseline (raw, file, raw, file, ..., raw), with both nodes'
    memory."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        path = tmp / "bench.bin"
        done: list[FilesRound] = []
        with node_pair(tmp) as (alice, bob):
            converse(alice, bob)
            raw = raw_between_processes(size)
            for _ in range(rounds):
                write_random_file(path, size)  # a new file: a blob already held is not fetched
                transfer = send_file(alice, bob, path)
                after = raw_between_processes(size)
                done.append(FilesRound(raw, after, transfer))
                raw = after
    return FilesResult(tuple(done))


def render_files(result: FilesResult) -> str:
    begin, end = _markers("files")
    mid = result.median
    t = mid.transfer
    mib = 1 << 20
    ratios = sorted(r.ratio for r in result.rounds)
    spread = ", ".join(f"{r:.2f}" for r in ratios)
    growth_a = max(r.transfer.alice_growth for r in result.rounds)
    growth_b = max(r.transfer.bob_growth for r in result.rounds)
    return "\n".join(
        [
            begin,
            "## Files between two processes on loopback",
            "",
            "Two real nodes (`p2pdm run`, contacts of each other, the per-peer rate cap on):"
            " Alice uploads a file (`POST /v1/media`, streamed) and sends it (`POST"
            " /v1/messages` with `media`) through the SDK; Bob fetches it on his own. The"
            " transfer runs from the send to Bob's `media.ready`. Baseline in the same run: the"
            " same bytes as 256 KiB frames on one py-libp2p stream to another process, no"
            " crypto, no files, measured just before and just after each file (their mean is"
            " that file's baseline).",
            "",
            "| what (the round with the median ratio) | MB/s | ratio to baseline |",
            "|---|---:|---:|",
            f"| raw py-libp2p, one stream, two processes (baseline) | {mid.raw_mb_s:,.1f} | 1.00 |",
            f"| the file, send to `media.ready` | {mid.file_mb_s:,.1f} | {mid.ratio:.2f} |",
            f"| the file, upload + send to `media.ready` | {mid.end_to_end_mb_s:,.1f} |"
            f" {mid.end_to_end_mb_s / mid.raw_mb_s:.2f} |",
            "",
            f"{len(result.rounds)} files of {t.size >> 20} MiB; ratio of each: {spread}."
            f" The median one: upload {t.upload_s:.1f} s, transfer {t.transfer_s:.1f} s;"
            f" CPU during the transfer: Alice {t.alice_cpu_s:.1f} s, Bob {t.bob_cpu_s:.1f} s."
            f" Largest peak RSS over the RSS before an upload, sampled every"
            f" {RSS_SAMPLE_S * 1000:.0f} ms: Alice +{growth_a / mib:,.1f} MiB (idle"
            f" {t.alice_idle / mib:,.0f} MiB), Bob +{growth_b / mib:,.1f} MiB (idle"
            f" {t.bob_idle / mib:,.0f} MiB)."
            f" Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores,"
            f" load average {os.getloadavg()[0]:.1f}, measured {time.strftime('%Y-%m-%d')}.",
            "Aims: at least 0.6 of the baseline; memory flat whatever the file's size.",
            end,
        ]
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_sink":
        trio.run(_sink, int(sys.argv[2]))  # runs until the benchmark's SIGTERM ends it
    else:
        raise SystemExit("run `python -m p2pdm.bench.pipeline --suite files`")


if __name__ == "__main__":
    main()
