"""Store-and-forward through a mailbox (issue 4), on real nodes on loopback.

``python -m p2pdm.bench.pipeline --suite mailbox`` (part of ``scripts/bench``) runs
two measurements, all in this one process (one trio loop, so the nodes share
one core: a conservative setting):

- **restart to inbox**: a mailbox node M, a sender A and a recipient C, each
  the real :func:`p2pdm.daemon.runner.run_node` with real libp2p and SQLite. While C
  is stopped, A sends ``k`` messages and they are deposited at M; A stops
  (so nothing reaches C but through M); then C is started again and each
  message's time is taken from the call of ``run_node`` to the moment the
  message is committed in C's store (seen by a reader connection polling the
  SQLite file). Repeated for ``rounds`` restarts. Baselines in the same run:
  the time from calling ``run_node`` to the node serving (start-up cost,
  unavoidable), and the same ``k`` messages delivered directly to an online C.
- **deposits per second into one mailbox**: :class:`MailboxClient` deposits
  real sealed envelopes (for several recipients) into a
  :class:`MailboxService` over a real libp2p stream, first one client with
  one stream, then several clients at once. Baseline: raw py-libp2p
  request/response of a frame of the same size on one stream.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from p2pdm.bench.net import LOOPBACK, TEXT
from p2pdm.core import mailbox as mb
from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus
from p2pdm.daemon.home import Home
from p2pdm.daemon.runner import Running, RunOptions, run_node
from p2pdm.net import Host, open_host
from p2pdm.net.testing import ECHO_PROTOCOL, echo, host_seed
from p2pdm.node.messenger import Messenger, wall_ms
from p2pdm.node.node import Node
from p2pdm.services.mailbox_client import MailboxClient
from p2pdm.services.mailbox_server import MailboxService
from p2pdm.store.base import Store
from p2pdm.store.memory import MemoryStore
from p2pdm.store.sqlite import SQLiteStore

__all__ = ["DepositResult", "MailboxResult", "RestartResult", "Spread", "bench_mailbox"]

#: How often C's store is read for newly committed messages.
POLL_SECONDS: Final = 0.005
#: Longest any one phase (deposits, a restart, settling) may take.
PHASE_DEADLINE_S: Final = 60.0
#: Deposits before the timed ones (connection, store, code paths warm).
WARMUP_DEPOSITS: Final = 20
#: Recipients the deposited envelopes are addressed to, round robin.
RECIPIENTS: Final = 4
#: Timed deposits per client: with the warm-up, within the mailbox's
#: per-depositor deposit burst (MAILBOX_DEPOSIT_BURST_PER_PEER, 300); beyond
#: it a depositor is held to 5/s. Spread over RECIPIENTS, each stays within a
#: depositor's share and below the fill level that asks for stamps.
DEPOSITS_PER_CLIENT: Final = 260
#: Clients (peers, one stream each) depositing at once in the concurrent run.
DEPOSIT_CLIENTS: Final = 4


@dataclass(frozen=True)
class Spread:
    p50_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_s: Sequence[float]) -> Spread:
        if len(samples_s) < 2:
            return cls(*(max(samples_s) * 1e3,) * 3)
        cuts = statistics.quantiles(samples_s, n=100, method="inclusive")
        return cls(cuts[49] * 1e3, cuts[94] * 1e3, max(samples_s) * 1e3)


@dataclass(frozen=True)
class RestartResult:
    k: int
    rounds: int
    #: ``run_node`` called → serving, once per restart.
    started: Spread
    #: ``run_node`` called → message committed, every message of every round.
    to_inbox: Spread
    #: ``run_node`` called → the round's last message committed, per round.
    to_last: Spread
    #: The same ``k`` messages to an online C: first send → last commit.
    direct_last_ms: float


@dataclass(frozen=True)
class DepositResult:
    n: int
    clients: int
    envelope_bytes: int
    baseline_per_second: float
    sequential_per_second: float
    concurrent_per_second: float


@dataclass(frozen=True)
class MailboxResult:
    restart: RestartResult
    deposits: DepositResult


# --- nodes that stop and start ---------------------------------------------------


def _free_port() -> int:
    """A free loopback port, so a node keeps its address across restarts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class _Node:
    """A node of ``home`` that the benchmark stops and starts in ``nursery``."""

    def __init__(
        self, nursery: trio.Nursery, home: Home, bootstrap: Sequence[str], mailbox: bool = False
    ) -> None:
        self.nursery = nursery
        self.home = home
        self.options = RunOptions(
            listen=(f"/ip4/127.0.0.1/tcp/{_free_port()}",),
            api=("127.0.0.1", 0),
            bootstrap=tuple(bootstrap),
            mailbox=mailbox,
        )
        self.running: Running | None = None
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    async def start(self) -> Running:
        self._scope, self._stopped = trio.CancelScope(), trio.Event()
        running: Running = await self.nursery.start(self._run)
        self.running = running
        return running

    async def _run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                await run_node(self.home, self.options, task_status=task_status)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        self._scope.cancel()
        with trio.fail_after(PHASE_DEADLINE_S):
            await self._stopped.wait()
        self.running = None

    @property
    def node(self) -> Node:
        assert self.running is not None, "the node is stopped"
        return self.running.node


class _Inbox:
    """Reads C's SQLite file from a second connection: when each message became visible."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)

    def close(self) -> None:
        self.db.close()

    async def committed(self, ids: set[bytes], since: float, out: list[float]) -> None:
        """Append, for each of ``ids``, seconds from ``since`` to its commit (±POLL_SECONDS)."""
        waiting = set(ids)
        with trio.fail_after(PHASE_DEADLINE_S):
            while waiting:
                rows = self.db.execute(
                    f"SELECT id FROM messages WHERE direction = 'in' AND id IN"
                    f" ({','.join('?' * len(waiting))})",
                    list(waiting),
                ).fetchall()
                now = time.perf_counter()
                for (mid,) in rows:
                    waiting.discard(mid)
                    out.append(now - since)
                await trio.sleep(POLL_SECONDS)


async def _until(check: Callable[[], bool], what: str) -> None:
    try:
        with trio.fail_after(PHASE_DEADLINE_S):
            while not check():  # noqa: ASYNC110 - state lives in the nodes' stores
                await trio.sleep(0.05)
    except trio.TooSlowError:
        raise RuntimeError(f"benchmark: {what} took over {PHASE_DEADLINE_S:g} s") from None


def _all_deposited(store: Store, ids: list[bytes]) -> bool:
    settled = (DeliveryStatus.DEPOSITED, DeliveryStatus.DELIVERED)
    return all((m := store.get_message(i)) is not None and m.status in settled for i in ids)


async def _restart_to_inbox(tmp: Path, k: int, rounds: int) -> RestartResult:
    homes = {}
    for name in ("mailbox", "alice", "carol"):
        homes[name] = Home(tmp / name, env={})
        homes[name].create_identity(name)
    started: list[float] = []
    to_inbox: list[float] = []
    to_last: list[float] = []
    async with trio.open_nursery() as nursery:
        m = _Node(nursery, homes["mailbox"], (), mailbox=True)
        boot = (await m.start()).node.addrs
        a = _Node(nursery, homes["alice"], boot)
        c = _Node(nursery, homes["carol"], boot)
        await a.start()
        await c.start()
        # Contacts both ways and a session each way, as between people who talk.
        carol = a.node.add_contact_from_invite(c.node.invite(), "carol").contact.peer_id
        alice = c.node.add_contact_from_invite(a.node.invite(), "alice").contact.peer_id
        inbox = _Inbox(homes["carol"].store_path)
        try:
            hello = a.node.send_text(carol, "hello").id
            await inbox.committed({hello}, time.perf_counter(), [])
            c.node.send_text(alice, "hi")
            await _until(lambda: c.node.store.outbox_count() == 0, "carol's reply")
            await _until(lambda: a.node.store.outbox_count() == 0, "alice's queue")

            for _ in range(rounds):
                await c.stop()
                ids = [a.node.send_text(carol, TEXT).id for _ in range(k)]
                store = a.node.store
                await _until(partial(_all_deposited, store, ids), "deposits")
                await a.stop()  # from now on C can only get them from M
                samples: list[float] = []
                async with trio.open_nursery() as watch:
                    t0 = time.perf_counter()
                    watch.start_soon(inbox.committed, set(ids), t0, samples)
                    await c.start()
                    started.append(time.perf_counter() - t0)
                to_inbox.extend(samples)
                to_last.append(max(samples))
                # A comes back; receipts and retries settle before the next round.
                await a.start()
                await _until(lambda: a.node.store.outbox_count() == 0, "alice's queue")
                await _until(lambda: c.node.store.outbox_count() == 0, "carol's receipts")

            # Baseline: the same k messages to an online C.
            direct: list[float] = []
            t0 = time.perf_counter()
            ids = [a.node.send_text(carol, TEXT).id for _ in range(k)]
            await inbox.committed(set(ids), t0, direct)
        finally:
            inbox.close()
        nursery.cancel_scope.cancel()
    return RestartResult(
        k=k,
        rounds=rounds,
        started=Spread.of(started),
        to_inbox=Spread.of(to_inbox),
        to_last=Spread.of(to_last),
        direct_last_ms=max(direct) * 1e3,
    )


# --- deposits per second -------------------------------------------------------------


def _envelopes(tmp: Path, count: int) -> list[bytes]:
    """``count`` real sealed envelopes from one sender, for RECIPIENTS recipients."""
    with closing(SQLiteStore(tmp / "sender.sqlite", synchronous="NORMAL")) as store:
        # No request stamp work: these envelopes measure deposits.
        sender = Messenger(Identity(os.urandom(32)), store, request_stamp_bits=0)
        recipients = []
        for i in range(RECIPIENTS):
            who = Messenger(Identity(os.urandom(32)), MemoryStore())
            sender.add_contact(who.peer_id, f"r{i}", who.bundle())
            recipients.append(who.peer_id)
        return [
            sender.send_text(recipients[i % RECIPIENTS], TEXT).outbox.envelope for i in range(count)
        ]


async def _echo_rate(mailbox: Host, frame_bytes: int, n: int) -> float:
    payload = os.urandom(frame_bytes)
    async with (
        open_host(host_seed(961), LOOPBACK) as host,
        await host.open_stream(mailbox.peer_id, ECHO_PROTOCOL, mailbox.listen_addrs()) as stream,
    ):
        for i in range(WARMUP_DEPOSITS + n):
            if i == WARMUP_DEPOSITS:
                start = time.perf_counter()
            await stream.write_frame(payload, 10)
            await stream.read_frame(1 << 16, 10)
        return n / (time.perf_counter() - start)


async def _client(
    seed: int,
    mailbox: Host,
    warmup: list[bytes],
    batch: list[bytes],
    go: trio.Event,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """A client host: deposits ``warmup``, reports ready, deposits ``batch`` on ``go``."""
    async with open_host(host_seed(seed), LOOPBACK) as host:
        client = MailboxClient(Identity(host_seed(seed)), host)
        for envelopes in (warmup, batch):
            if envelopes is batch:
                task_status.started()
                await go.wait()
            with trio.fail_after(PHASE_DEADLINE_S):
                results = await client.deposit(mailbox.peer_id, mailbox.listen_addrs(), envelopes)
            if not all(r.ok and r.detail == "" for r in results):
                raise RuntimeError(f"the mailbox did not take every deposit: {results[0]}")


async def _deposit_rate(mailbox: Host, seed: int, batches: list[list[bytes]]) -> float:
    """Deposits per second, each batch from its own client (peer, stream) at once."""
    go = trio.Event()
    async with trio.open_nursery() as nursery:
        for i, batch in enumerate(batches):
            warmup, timed = batch[:WARMUP_DEPOSITS], batch[WARMUP_DEPOSITS:]
            await nursery.start(partial(_client, seed + i, mailbox, warmup, timed, go))
        start = time.perf_counter()
        go.set()
    return sum(len(b) - WARMUP_DEPOSITS for b in batches) / (time.perf_counter() - start)


async def _deposits(tmp: Path, n: int, clients: int) -> DepositResult:
    per_client = WARMUP_DEPOSITS + n  # within the mailbox's per-peer burst
    envelopes = _envelopes(tmp, per_client * (1 + clients))
    batches = [envelopes[i : i + per_client] for i in range(0, len(envelopes), per_client)]
    frame_bytes = round(statistics.mean(len(mb.Deposit(e).encode()) for e in envelopes))
    store = SQLiteStore(tmp / "mailbox.sqlite")  # the node's default, synchronous=FULL
    try:
        async with open_host(host_seed(960), LOOPBACK) as host:
            host.set_handler(ECHO_PROTOCOL, echo)
            MailboxService(store, host.peer_id, host, now_ms=wall_ms)
            baseline = await _echo_rate(host, frame_bytes, n)
            sequential = await _deposit_rate(host, 962, batches[:1])
            concurrent = await _deposit_rate(host, 970, batches[1:])
    finally:
        store.close()
    return DepositResult(n, clients, frame_bytes, baseline, sequential, concurrent)


def bench_mailbox(k: int, rounds: int) -> MailboxResult:
    """Run both measurements; ``k`` messages per restart, ``rounds`` restarts."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        restart = trio.run(_restart_to_inbox, tmp, k, rounds)
        deposits = trio.run(_deposits, tmp, DEPOSITS_PER_CLIENT, DEPOSIT_CLIENTS)
    return MailboxResult(restart, deposits)
