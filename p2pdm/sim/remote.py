"""Real-clock simulation nodes spread over worker processes (``p2pdm sim --workers N``).

How this works: :func:`open_worker_network` starts N ``python -m
p2pdm.sim.worker`` processes and sends each its config (:mod:`p2pdm.sim.pipe`).
Node ``i`` runs in worker ``i % N``; this process (the coordinator) keeps
the plan, the :class:`~p2pdm.sim.metrics.Recorder` and the report, exactly
as with the nodes in process, through :class:`RemoteNodes` (a
:class:`~p2pdm.sim.nodes.Nodes`). Forming keeps the in-process order where
it matters: the bootstrap nodes start one after another, then every worker
starts its other nodes one after another, the workers side by side; then the
contacts, from the same seeded draw as in process. Workers stream their
nodes' commits, refusals and DHT lookups as events, timed with the
system-wide monotonic clock.

Failures are one line: a worker that exits, breaks its pipe, or does not
answer within its bound raises :class:`~p2pdm.errors.SimWorkerError` (with
its last stderr line), and leaving :func:`open_worker_network` — normally,
on error or on Ctrl-C — closes every worker's stdin, waits a bounded time
for it to stop its nodes, then kills it (by its own process handle).
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from p2pdm.errors import SimWorkerError, WireError
from p2pdm.net import LinkFaults, MemoryNetwork
from p2pdm.sim.layout import bootstrap_count, bootstrap_of, contact_pairs, fixed_count
from p2pdm.sim.metrics import Recorder
from p2pdm.sim.network import (
    NODE_START_TIMEOUT_SECONDS,
    NODE_STOP_TIMEOUT_SECONDS,
    PUBLISH_RETRY_WAIT_SECONDS,
    WAIT_TIMEOUT_SECONDS,
    publish_window,
    real_start_window,
)
from p2pdm.sim.nodes import changed_links, first_error, link_args, rss_mb
from p2pdm.sim.pipe import (
    PIPE_BATCH,
    REPLIES,
    Event,
    PipeDecoder,
    Reply,
    encode_config,
    encode_request,
    read_args,
)
from p2pdm.sim.simnode import Collected, make_sim_nodes
from p2pdm.sim.timeline import LinkChange

__all__ = ["RemoteNodes", "open_worker_network"]

#: Longest a request may wait for its answer (start and stop have their
#: node bounds on top): far above a loaded machine's pipe round trip.
WORKER_REPLY_TIMEOUT_SECONDS: Final = 60.0
#: How often each worker is asked whether it still answers, and how long
#: it has to answer: a hung worker is found even while nothing else is asked.
WORKER_PING_SECONDS: Final = 5.0
#: After stdin closes, a worker stops all its nodes at once (each bounded by
#: NODE_STOP_TIMEOUT_SECONDS); then it is killed.
WORKER_STOP_TIMEOUT_SECONDS: Final = NODE_STOP_TIMEOUT_SECONDS + 10.0
#: How long a worker whose pipe closed gets to exit, for its status in the error.
WORKER_EXIT_WAIT_SECONDS: Final = 5.0
#: Last bytes of a worker's stderr kept for the error line.
STDERR_TAIL_BYTES: Final = 4096
#: Contact exchanges (invite, then add) in flight at once while forming.
CONTACTS_IN_FLIGHT: Final = 16
#: Bytes read from a worker's pipe at a time.
READ_BYTES: Final = 1 << 16

log = logging.getLogger("p2pdm.sim")


@dataclass
class _Pending:
    op: str
    done: trio.Event = field(default_factory=trio.Event)
    reply: Reply | None = None


class _Worker:
    """One worker process and the requests waiting for its answers."""

    def __init__(self, number: int, process: trio.Process) -> None:
        self.number = number
        self.process = process
        self.pending: dict[int, _Pending] = {}
        self.next_id = 0
        self.failed: SimWorkerError | None = None
        self.stopping = False
        self.stderr_tail = b""
        self.stderr_done = trio.Event()
        self.ping_scope = trio.CancelScope()
        self._write_lock = trio.Lock()

    @property
    def name(self) -> str:
        return f"sim worker {self.number} (pid {self.process.pid})"

    def fail(self, why: str) -> SimWorkerError:
        if self.failed is None:
            self.failed = SimWorkerError(f"{self.name} {why}")
            for pending in self.pending.values():
                pending.done.set()
        return self.failed

    async def write(self, frame: bytes) -> None:
        assert self.process.stdin is not None
        try:
            async with self._write_lock:
                await self.process.stdin.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise await self.died() from None

    async def request(
        self,
        op: str,
        args: dict[str, Any],
        timeout: float = WORKER_REPLY_TIMEOUT_SECONDS,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Ask the worker; its answer's fields. Raises SimWorkerError (one line)."""
        if self.failed is not None:
            raise self.failed
        self.next_id += 1
        request_id = self.next_id
        pending = self.pending[request_id] = _Pending(op)
        try:
            await self.write(encode_request(request_id, op, args))
            with trio.move_on_after(timeout):
                await pending.done.wait()
        finally:
            del self.pending[request_id]
        if self.failed is not None:
            raise self.failed
        reply = pending.reply
        if reply is None:
            raise self.fail(f"did not answer {op!r} within {timeout:g} s (hung or overloaded)")
        if reply.error is not None:
            raise SimWorkerError(f"{self.name}: {op} failed: {reply.error}")
        try:
            return read_args(reply.ok, REPLIES[op], f"reply to {op}")
        except WireError as exc:
            raise self.fail(f"answered {op!r} wrongly: {exc}") from None

    async def read(self, on_event: Callable[[Event], None]) -> None:
        """Dispatch answers and events until the worker's stdout closes."""
        assert self.process.stdout is not None
        decoder = PipeDecoder("coordinator")
        while True:
            try:
                data = await self.process.stdout.receive_some(READ_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                break
            try:
                messages = decoder.feed(data)
            except WireError as exc:
                raise self.fail(f"sent a bad frame: {exc}") from None
            for message in messages:
                if isinstance(message, Event):
                    on_event(message)
                    continue
                pending = self.pending.get(message.re)
                if pending is not None:
                    pending.reply = message
                    pending.done.set()
        if not self.stopping:
            raise await self.died()

    async def died(self) -> SimWorkerError:
        """The error for a worker whose pipe closed: its exit status and last stderr line."""
        with trio.move_on_after(WORKER_EXIT_WAIT_SECONDS):
            await self.process.wait()
            await self.stderr_done.wait()
        return self.fail(f"stopped unexpectedly ({self._exit()}){self._last_words()}")

    def _exit(self) -> str:
        code = self.process.returncode
        if code is None:
            return "still running, its stdout closed"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def _last_words(self) -> str:
        lines = [line for line in self.stderr_tail.decode(errors="replace").splitlines() if line]
        return f": {lines[-1].strip()}" if lines else ""

    async def forward_stderr(self) -> None:
        """Copy the worker's stderr to ours (its logs), keeping the tail for errors."""
        assert self.process.stderr is not None
        try:
            while data := await self.process.stderr.receive_some(READ_BYTES):
                self.stderr_tail = (self.stderr_tail + data)[-STDERR_TAIL_BYTES:]
                sys.stderr.write(data.decode(errors="replace"))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.stderr_done.set()

    async def ping(self) -> None:
        with self.ping_scope:
            while True:
                await trio.sleep(WORKER_PING_SECONDS)
                await self.request("ping", {})

    async def stop(self) -> None:
        """Close stdin, wait (bounded) for the worker to stop its nodes, else kill it."""
        self.stopping = True
        self.ping_scope.cancel()
        if self.process.stdin is not None:
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.process.stdin.aclose()
        with trio.move_on_after(WORKER_STOP_TIMEOUT_SECONDS):
            await self.process.wait()
        if self.process.returncode is None:
            log.warning(
                "%s did not stop within %g s: killed", self.name, WORKER_STOP_TIMEOUT_SECONDS
            )
            self.process.kill()
            await self.process.wait()


class _Steps:
    """Notes into ``steps`` the seconds since the last step, by name."""

    def __init__(self, steps: dict[str, float]) -> None:
        self.steps = steps
        self.last = trio.current_time()

    def __call__(self, name: str) -> None:
        now = trio.current_time()
        self.steps[name] = round(now - self.last, 3)
        self.last = now


class RemoteNodes:
    """:class:`~p2pdm.sim.nodes.Nodes` run by worker processes; node i in worker i % N."""

    def __init__(
        self, workers: list[_Worker], count: int, recorder: Recorder, zero_ns: int
    ) -> None:
        self.workers = workers
        self.count = count
        self.recorder = recorder
        self.zero_ns = zero_ns
        self.contacts: dict[int, list[int]] = {i: [] for i in range(count)}
        #: Workers run TCP nodes only: no memory network.
        self.network: MemoryNetwork | None = None
        #: Latency and loss every worker's TCP has (None: plain TCP).
        self.faults: LinkFaults | None = None
        self.baseline_rss_mb: float | None = None
        self.addrs: dict[int, list[str]] = {}
        self.external: tuple[str, ...] = ()
        self._online: set[int] = set()
        self._partitioned = False
        #: Seconds each step of forming took (started, joined, contacts, published).
        self.forming_steps: dict[str, float] = {}
        #: Not measured across processes: the workers' CPU is theirs.
        self.forming_cpu: dict[str, float] = {}

    def worker(self, index: int) -> _Worker:
        return self.workers[index % len(self.workers)]

    def __len__(self) -> int:
        return self.count

    def online(self, index: int) -> bool:
        return index in self._online

    def online_count(self) -> int:
        return len(self._online)

    @property
    def partitioned(self) -> bool:
        return self._partitioned

    def join_addrs(self) -> list[str]:
        return list(self.addrs.get(0, []))

    def _seconds(self, at_ns: int) -> float:
        return (at_ns - self.zero_ns) / 1e9

    def on_event(self, event: Event) -> None:
        args = event.args
        if event.name == "stored":
            path = args["path"]
            if path not in ("direct", "mailbox"):
                raise SimWorkerError(f"a sim worker reported an unknown path {path[:20]!r}")
            self.recorder.stored(args["node"], args["id"], path, at=self._seconds(args["at_ns"]))
        elif event.name == "refused":
            self.recorder.refused(args["error"])
        else:
            self.recorder.looked_up(args["call"], args["us"] / 1e6, args["found"], args["why"])

    async def start(self, index: int) -> None:
        if index in self._online:
            return
        if index == 0:
            bootstrap = list(self.external)
        else:
            bootstrap = self.addrs[bootstrap_of(index, bootstrap_count(self.count))][:1]
        reply = await self.worker(index).request(
            "start",
            {"node": index, "bootstrap": bootstrap},
            NODE_START_TIMEOUT_SECONDS + WORKER_REPLY_TIMEOUT_SECONDS,
        )
        self.addrs[index] = reply["addrs"]
        self._online.add(index)

    async def stop(self, index: int) -> None:
        self._online.discard(index)
        await self.worker(index).request(
            "stop", {"node": index}, NODE_STOP_TIMEOUT_SECONDS + WORKER_REPLY_TIMEOUT_SECONDS
        )

    async def send(self, sender: int, recipient: int, text: str) -> tuple[bytes, float | None]:
        args = {"sender": sender, "recipient": recipient, "text": text}
        reply = await self.worker(sender).request("send", args)
        return reply["id"], self._seconds(reply["at_ns"])

    async def _everywhere(
        self,
        op: str,
        args: dict[str, Any],
        timeout: float = WORKER_REPLY_TIMEOUT_SECONDS,  # noqa: ASYNC109
    ) -> None:
        """Ask every worker at once; raises the first SimWorkerError."""
        try:
            async with trio.open_nursery() as nursery:
                for worker in self.workers:
                    nursery.start_soon(worker.request, op, args, timeout)
        except BaseExceptionGroup as group:
            raise first_error(group, SimWorkerError) from None

    async def partition(self, groups: Sequence[Collection[int]]) -> None:
        await self._everywhere("partition", {"groups": [sorted(g) for g in groups]})
        self._partitioned = True

    async def heal(self) -> None:
        await self._everywhere("heal", {})
        self._partitioned = False

    async def collect(self, undelivered: list[tuple[bytes, int, int]], now_ms: int) -> Collected:
        collected = Collected()
        for number, worker in enumerate(self.workers):
            mine = [u for u in undelivered if u[1] % len(self.workers) == number]
            batches = [mine[i : i + PIPE_BATCH] for i in range(0, len(mine), PIPE_BATCH)] or [[]]
            for i, batch in enumerate(batches):
                args = {"undelivered": [list(u) for u in batch], "now_ms": now_ms}
                reply = await worker.request("collect", {**args, "mailboxes": i == 0})
                collected.add(
                    Collected(
                        Counter(reply["reasons"]),
                        reply["held"],
                        reply["expired"],
                        reply["starts"],
                    )
                )
        return collected

    async def rss_mb(self) -> float:
        total = rss_mb()
        for worker in self.workers:
            total += (await worker.request("rss", {}))["kb"] / 1000
        return total

    async def change_links(self, link: LinkChange) -> None:
        assert self.faults is not None  # simulate() gives TCP faults to a run with link changes
        faults = changed_links(self.faults, link)
        await self._everywhere("link", link_args(faults))
        self.faults = faults

    async def link_stats(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        if self.faults is not None:
            for worker in self.workers:
                total.update((await worker.request("stats", {}))["stats"])
        return dict(total)

    async def outside_peers(self) -> dict[str, int]:
        seen: dict[str, set[str]] = {"in_routing_tables": set(), "mailbox_providers": set()}
        for worker in self.workers:
            reply = await worker.request("outside", {})
            for kind, peers in seen.items():
                peers.update(reply[kind])
        return {kind: len(peers) for kind, peers in seen.items()}

    async def form(
        self, rng: random.Random, per_node: int, *, mailboxes: int, planned: bool = False
    ) -> None:
        """Start every node (bootstrap nodes first, in order), then make the contacts.

        ``planned`` (routing tables from the plan): the workers hold their
        nodes' joins; once every node listens, every worker learns every
        address and the joins come over a window; after the contacts the
        nodes publish their records over the publish window.
        """
        step = _Steps(self.forming_steps)
        first = fixed_count(self.count, mailboxes) if planned else bootstrap_count(self.count)
        for index in range(first):
            await self.start(index)
        if planned:  # the mailboxes, for the nodes to remember as they start
            await self._book(range(first))
        async with trio.open_nursery() as nursery:
            for number in range(len(self.workers)):
                share = [i for i in range(first, self.count) if i % len(self.workers) == number]
                nursery.start_soon(self._start_each, share)
        step("started")
        if planned:
            await self._book(range(first, self.count))
            window = real_start_window(self.count)
            await self._everywhere(
                "join",
                {"window_ms": round(window * 1000)},
                window + NODE_START_TIMEOUT_SECONDS + WORKER_REPLY_TIMEOUT_SECONDS,
            )
            step("joined")
        pairs = contact_pairs(rng, self.count, per_node)
        for a, b in pairs:
            self.contacts[a].append(b)
            self.contacts[b].append(a)
        limiter = trio.CapacityLimiter(CONTACTS_IN_FLIGHT)
        async with trio.open_nursery() as nursery:
            for a, b in pairs:
                nursery.start_soon(self._befriend, limiter, a, b)
        step("contacts")
        if planned:
            window = publish_window(self.count, real_planned=True)
            # A worker waits the window, each first publication's end, then
            # the retries of those no peer took (SimNetwork.publish_formed).
            bound = window + WAIT_TIMEOUT_SECONDS + PUBLISH_RETRY_WAIT_SECONDS
            await self._everywhere("publish", {}, bound + WORKER_REPLY_TIMEOUT_SECONDS)
            step("published")

    async def _book(self, indices: Iterable[int]) -> None:
        """Tell every worker where these nodes listen (tables from the plan)."""
        pairs = [(i, addr) for i in indices for addr in self.addrs[i]]
        for at in range(0, len(pairs), PIPE_BATCH):
            batch = pairs[at : at + PIPE_BATCH]
            args = {"nodes": [i for i, _ in batch], "addrs": [a for _, a in batch]}
            await self._everywhere("book", args)

    async def _start_each(self, indices: Sequence[int]) -> None:
        for index in indices:
            await self.start(index)

    async def _befriend(self, limiter: trio.CapacityLimiter, a: int, b: int) -> None:
        async with limiter:
            for one, other in ((a, b), (b, a)):
                invite = (await self.worker(other).request("invite", {"node": other}))["invite"]
                args = {"node": one, "invite": invite, "name": f"n{other}"}
                await self.worker(one).request("add_contact", args)


@asynccontextmanager
async def open_worker_network(
    *,
    nodes: int,
    workers: int,
    seed: int,
    mailboxes: int,
    contacts: int,
    store_dir: Path | None,
    external: Sequence[str],
    listen: str | None,
    faults: LinkFaults | None,
    recorder: Recorder,
    zero_ns: int,
    planned_tables: bool = False,
) -> AsyncIterator[RemoteNodes]:
    """``nodes`` running nodes with contacts in ``workers`` processes; leaving stops them.

    ``listen``, ``faults`` (latency and loss on TCP) and ``planned_tables``
    (routing tables from the plan) as for
    :func:`~p2pdm.sim.network.open_sim_network`, in every worker.

    Raises SimWorkerError (one line) when a worker fails.
    """
    rng = random.Random(seed)
    make_sim_nodes(nodes, rng, store_dir=None, mailboxes=mailboxes, local=lambda i: False)
    config = {
        "nodes": nodes,
        "seed": seed,
        "workers": workers,
        "mailboxes": mailboxes,
        "store_dir": "" if store_dir is None else str(store_dir),
        "external": list(external),
        "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower(),
        "listen": listen or "",
        "faults": faults is not None,
        **link_args(faults or LinkFaults()),
        "planned": planned_tables,
    }
    started: list[_Worker] = []
    error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                for number in range(workers):
                    process = await trio.lowlevel.open_process(
                        [sys.executable, "-m", "p2pdm.sim.worker"],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    )
                    worker = _Worker(number, process)
                    started.append(worker)
                    nursery.start_soon(worker.forward_stderr)
                    await worker.write(encode_config({**config, "worker": number}))
                remote = RemoteNodes(started, nodes, recorder, zero_ns)
                remote.external = tuple(external)
                remote.faults = faults
                for worker in started:
                    nursery.start_soon(worker.read, remote.on_event)
                    nursery.start_soon(worker.ping)
                remote.baseline_rss_mb = await remote.rss_mb()
                await remote.form(rng, contacts, mailboxes=mailboxes, planned=planned_tables)
                yield remote
            except (trio.Cancelled, GeneratorExit):
                raise
            except BaseException as exc:  # raised below, not wrapped in an ExceptionGroup
                error = exc
            finally:
                with trio.CancelScope(shield=True):
                    async with trio.open_nursery() as stopping:
                        for worker in started:
                            stopping.start_soon(worker.stop)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise first_error(group, SimWorkerError) from None
    if error is not None:
        raise error
