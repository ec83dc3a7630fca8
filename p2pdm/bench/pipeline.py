"""Benchmarks that report ratios against a baseline measured in the same run.

``scripts/bench`` (or ``python -m p2pdm.bench.pipeline``) runs them and rewrites its
section of ``docs/benchmarks.md``. Absolute figures on a shared machine drift;
the ratio to the baseline is the figure to compare across runs.

``pipeline``: one message through the real code on one core — sign, Double
Ratchet encrypt, seal, encode, commit to the sender's SQLite store (message,
session, outbox), then decode, open, decrypt, verify and commit at the
receiver (message, session, seen ids), and the sender marks it delivered.
Baseline: a PyNaCl ``Box`` encrypt + one SQLite insert + decrypt per message,
the floor any Python node pays. The pipeline also runs on encrypted stores
(SQLCipher, as with a passphrase) and reports their ratio to the plain ones.

``net``: two nodes in two processes (:mod:`p2pdm.bench.net`). ``mailbox``:
a recipient's restart to its inbox through a mailbox, and deposits per second
into one mailbox (:mod:`p2pdm.bench.mailbox`).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nacl.public

from p2pdm.bench.mailbox import RECIPIENTS, MailboxResult, Spread, bench_mailbox
from p2pdm.bench.net import NetResult, bench_net
from p2pdm.bench.startup import bench_startup, render_startup
from p2pdm.core.dm import DM_WINDOW, Ack
from p2pdm.core.identity import Identity
from p2pdm.node.messenger import Messenger
from p2pdm.services.dm.outbox import OutboxBook
from p2pdm.store.sqlite import SQLiteStore

_TEXT = "x" * 200  # a typical DM is well under 200 characters


@dataclass(frozen=True)
class Result:
    baseline_per_second: float
    #: messages/s through the pipeline, by SQLite durability level; an
    #: ``ENCRYPTED`` suffix marks the same run on an encrypted store.
    per_second: dict[str, float]
    #: CPU time of this process per message (the lowest of the runs), by the
    #: same keys, and the baseline's: steadier than wall time on a shared
    #: machine, since waiting for a core is not counted.
    cpu_us: dict[str, float]
    baseline_cpu_us: float
    #: SQLite statements a message (send, receive, ack with the sent mark),
    #: triggers' own not counted.
    statements: float
    #: The same by step (``STEPS``), one message at a time and in bursts.
    steps: dict[str, float]
    burst_steps: dict[str, float]


#: Suffix of the encrypted variants' keys in ``Result.per_second``.
ENCRYPTED = "+SQLCipher"
#: Messages committed together in the burst variant, as the node commits what
#: arrives together (a quarter of the dm window, DM_WINDOW).
BURST = 16
#: Suffix of the burst variants' keys in ``Result.per_second``.
BURSTS = f"x{BURST}"
_MODES = ("NORMAL", "FULL")
#: The steps of a message whose statements are counted apart.
STEPS = ("send", "receive", "ack")


def _best_rate(run: Callable[[int], None], n: int, repeats: int) -> tuple[float, float]:
    """The best messages/s of ``repeats`` runs, and the least CPU microseconds per message."""
    rates, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run(n)
        cpu.append((time.process_time() - start_cpu) / n * 1e6)
        rates.append(n / (time.perf_counter() - start))
    return max(rates), min(cpu)


def _baseline(tmp: Path) -> Callable[[int], None]:
    db = sqlite3.connect(tmp / "baseline.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, body BLOB)")
    a, b = nacl.public.PrivateKey.generate(), nacl.public.PrivateKey.generate()
    send, recv = nacl.public.Box(a, b.public_key), nacl.public.Box(b, a.public_key)
    payload = _TEXT.encode()

    def run(n: int) -> None:
        for _ in range(n):
            sealed = send.encrypt(payload)
            db.execute("BEGIN")
            db.execute("INSERT INTO m (body) VALUES (?)", (sealed,))
            db.execute("COMMIT")
            recv.decrypt(sealed)

    return run


def _pipeline(
    tmp: Path,
    synchronous: str,
    encrypted: bool = False,
    count: dict[str, int] | None = None,
    burst: int = 1,
) -> Callable[[int], None]:
    alice_id, bob_id = Identity(os.urandom(32)), Identity(os.urandom(32))
    tag = synchronous.lower() + ("-encrypted" if encrypted else "") + f"-{burst}"

    def store(name: str) -> SQLiteStore:
        key = os.urandom(32) if encrypted else None
        return SQLiteStore(tmp / f"{name}-{tag}.sqlite", synchronous=synchronous, key=key)

    # No request stamp work (docs/protocol.md §18.2): this measures the pipeline.
    stores = store("alice"), store("bob")
    alice = Messenger(alice_id, stores[0], request_stamp_bits=0)
    bob = Messenger(bob_id, stores[1], request_stamp_bits=0)
    alice.add_contact(bob_id.peer_id, "bob", bob.bundle())
    bob.add_contact(alice_id.peer_id, "alice", alice.bundle())

    # The sender applies the ack as the node does (services.dm.outbox).
    book = OutboxBook(alice, random.Random(0), DM_WINDOW)
    step = ["send"]  # what the statements counted now are for

    def run(n: int) -> None:
        if burst > 1:
            run_bursts(n)
            return
        for seq in range(n):
            step[0] = "send"
            out = alice.send_text(bob_id.peer_id, _TEXT)
            step[0] = "receive"
            bob.receive(out.outbox.envelope)
            # The "sent" mark rides with the ack's commit (services.dm.sender).
            step[0] = "ack"
            book.acked([(out.outbox, Ack(seq, "ok"))], [out.outbox])

    def run_bursts(n: int) -> None:
        """As the node commits messages that come together: sends from
        concurrent API calls in one group (``CommitBatcher``), the envelopes of
        one read from a dm stream in one group (``Receiver.accept_all``), their
        acks in one transaction (``OutboxBook.acked``)."""
        for start in range(0, n, burst):
            size = min(burst, n - start)
            step[0] = "send"
            with alice.store.group():
                outs = [alice.send_text(bob_id.peer_id, _TEXT) for _ in range(size)]
            step[0] = "receive"
            with bob.store.group():
                for out in outs:
                    bob.receive(out.outbox.envelope)
            step[0] = "ack"
            book.acked(
                [(out.outbox, Ack(start + i, "ok")) for i, out in enumerate(outs)],
                [out.outbox for out in outs],
            )

    if count is not None:
        for each in stores:
            _count_statements(each, count, step)
    return run


def _count_statements(store: SQLiteStore, count: dict[str, int], step: list[str]) -> None:
    """Count the statements p2pdm runs on ``store`` into ``count``, by the step
    ``step[0]`` names: a trigger's statements are not counted, nor the top
    statement SQLite reports again for each trigger it runs."""
    last = [""]

    def traced(sql: str) -> None:
        if sql.startswith("--") or sql == last[0]:
            return
        last[0] = sql
        count[step[0]] = count.get(step[0], 0) + 1

    store.trace(traced)


def statements_by_step(n: int = 100, burst: int = 1) -> dict[str, float]:
    """SQLite statements a message costs through the pipeline, by step (STEPS),
    sent ``burst`` at a time (``n`` a multiple of it)."""
    count: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as d:
        run = _pipeline(Path(d), "NORMAL", count=count, burst=burst)
        run(5 * burst)  # sessions set up, first conversation rows made
        count.clear()
        run(n)
    return {name: count.get(name, 0) / n for name in STEPS}


def statements_per_message(n: int = 100, burst: int = 1) -> float:
    """SQLite statements a message costs through the pipeline (send, receive, ack)."""
    return sum(statements_by_step(n, burst).values())


def bench_pipeline(n: int, repeats: int) -> Result:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        baseline, baseline_cpu = _best_rate(_baseline(tmp), n, repeats)
        rates, cpu = {}, {}
        for mode in _MODES:
            rates[mode], cpu[mode] = _best_rate(_pipeline(tmp, mode), n, repeats)
            key = mode + BURSTS
            rates[key], cpu[key] = _best_rate(_pipeline(tmp, mode, burst=BURST), n, repeats)
            key = mode + ENCRYPTED
            rates[key], cpu[key] = _best_rate(_pipeline(tmp, mode, True), n, repeats)
    steps, burst_steps = statements_by_step(), statements_by_step(BURST * 8, BURST)
    return Result(baseline, rates, cpu, baseline_cpu, sum(steps.values()), steps, burst_steps)


def _steps(steps: dict[str, float]) -> str:
    return ", ".join(f"{name} {steps[name]:.3g}" for name in STEPS)


def _label(key: str) -> str:
    if key.endswith(BURSTS):
        return f"bursts of {BURST}, `synchronous={key.removesuffix(BURSTS)}`"
    return f"`synchronous={key}`"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"


_BEGIN, _END = _markers("pipeline")


def render(result: Result, n: int, repeats: int) -> str:
    return "\n".join(
        [
            _BEGIN,
            "## Message pipeline on one core",
            "",
            "Sign → Double Ratchet encrypt → seal → CBOR → SQLite commit (sender) →"
            " decode → open → decrypt → verify → SQLite commit (receiver) → mark delivered.",
            "Baseline in the same run: PyNaCl `Box` encrypt + one SQLite insert + decrypt"
            " (WAL, `synchronous=NORMAL`). The pipeline commits three transactions per message"
            " (send, receive, ack: the ack as the node applies it, `OutboxBook.acked`, with the"
            ' sender\'s "sent" mark in the same transaction);'
            " the node's default is `synchronous=FULL` (an fsync per"
            " commit, so an acked message survives power loss).",
            "",
            "| what | messages/s | ratio to baseline | CPU µs a message | CPU ratio |",
            "|---|---:|---:|---:|---:|",
            f"| baseline (Box + insert) | {result.baseline_per_second:,.0f} | 1.00 |"
            f" {result.baseline_cpu_us:,.0f} | 1.00 |",
            *(
                f"| p2pdm pipeline, {_label(mode)} | {rate:,.0f} |"
                f" {rate / result.baseline_per_second:.3f} | {result.cpu_us[mode]:,.0f} |"
                f" {result.baseline_cpu_us / result.cpu_us[mode]:.3f} |"
                for mode, rate in result.per_second.items()
                if not mode.endswith(ENCRYPTED)
            ),
            "",
            "The same pipeline on encrypted stores (SQLCipher 4: AES-256 + HMAC-SHA512 per"
            " page, raw key, as a home with a passphrase uses), against the plain store in"
            " the same run:",
            "",
            "| what | messages/s | ratio to plain |",
            "|---|---:|---:|",
            *(
                f"| encrypted store, `synchronous={mode}` |"
                f" {result.per_second[mode + ENCRYPTED]:,.0f} |"
                f" {result.per_second[mode + ENCRYPTED] / result.per_second[mode]:.2f} |"
                for mode in _MODES
                if mode + ENCRYPTED in result.per_second
            ),
            "",
            f"Bursts of {BURST}: {BURST} messages sent in one commit, received in one, their"
            " acks applied in one, as the node commits what comes together (concurrent API"
            " sends, the envelopes of one read from a dm stream, the acks read with them).",
            "",
            f"SQLite statements a message (send, receive, ack with the sent mark; a trigger's"
            f" own not counted): {result.statements:.0f} ({_steps(result.steps)}); in bursts"
            f" of {BURST}: {sum(result.burst_steps.values()):.1f}"
            f" ({_steps(result.burst_steps)}).",
            "",
            "CPU: this process's CPU time per message (the least of the runs; a commit's"
            " fsync is the kernel's, not counted), steadier than messages/s when other jobs"
            " share the cores; its ratio is the baseline's CPU time over the pipeline's.",
            f"Best of {repeats} runs of {n} messages; Python {platform.python_version()},"
            f" {platform.machine()}, measured {time.strftime('%Y-%m-%d')}.",
            "Target: at least a third of the ~6,000 msgs/s ceiling measured for such a"
            " pipeline here, i.e. 2,000 msgs/s.",
            _END,
        ]
    )


def render_net(result: NetResult) -> str:
    begin, end = _markers("net")
    base = result.baseline_per_second
    rows = [
        (
            "raw py-libp2p request/response, one stream (baseline)",
            base,
            result.baseline_latency,
            "",
        ),
        (
            f"p2pdm, sustained, `POST /v1/messages` ({result.concurrency} keep-alive clients)",
            result.sustained_per_second,
            result.sustained_latency,
            "sustained",
        ),
        (
            f"p2pdm, sustained, `POST /v1/messages/batch` ({result.batch_size} a batch)",
            result.batch_per_second,
            result.batch_latency,
            "batch",
        ),
        (
            f"p2pdm, paced at {result.paced_rate:g} msgs/s",
            None,
            result.paced_latency,
            "paced",
        ),
        (
            "the same paced messages, to the receiver's `message.received` read from its"
            " event stream (SSE)",
            None,
            result.paced_event_latency,
            "",
        ),
    ]

    def cpu(phase: str) -> str:
        found = result.cpu_ms.get(phase)
        return " | " if found is None else f"{found[0]:.2f} | {found[1]:.2f}"

    return "\n".join(
        [
            begin,
            "## Two nodes, two processes, loopback",
            "",
            "From `POST /v1/messages` at the sender's local API to the message committed in the"
            " receiver's store (real nodes: `p2pdm run` and `run_node`; SQLite"
            " `synchronous=FULL`). Baseline in the same run: an envelope-sized frame echoed"
            " over one py-libp2p stream between two processes, no crypto, no store.",
            "",
            "| what | messages/s | ratio to baseline | p50 ms | p99 ms | sender CPU ms a message"
            " | receiver CPU ms a message |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {name} | {'' if rate is None else f'{rate:,.0f}'} |"
                f" {'' if rate is None else f'{rate / base:.2f}'} |"
                f" {lat.p50_ms:.1f} | {lat.p99_ms:.1f} | {cpu(phase)} |"
                for name, rate, lat, phase in rows
            ),
            "",
            "CPU: each node process's CPU time (user + system) over the phase, divided by its"
            " messages: steadier than the rates when other jobs share the cores. While the"
            " paced messages are sent, the benchmark follows the receiver's event stream"
            " (`GET /v1/events`, `types=message.received`) as a bot would; its CPU is in the"
            " receiver's paced figure.",
            "",
            f"{result.n} messages sustained; Python {platform.python_version()},"
            f" {platform.machine()}, {os.cpu_count()} cores, measured {time.strftime('%Y-%m-%d')}.",
            "Goals: sustained at least the raw rate (ratio ≥ 1.0); paced p50 ≤ 3 ms, p99 ≤ 15 ms.",
            end,
        ]
    )


def render_mailbox(result: MailboxResult) -> str:
    begin, end = _markers("mailbox")
    r, d = result.restart, result.deposits
    start = r.started.p50_ms

    def row(name: str, spread: Spread) -> str:
        return (
            f"| {name} | {spread.p50_ms:,.0f} | {spread.p95_ms:,.0f} | {spread.max_ms:,.0f} |"
            f" {spread.p95_ms / start:.1f} |"
        )

    return "\n".join(
        [
            begin,
            "## Store-and-forward through a mailbox",
            "",
            "Real nodes (`run_node`: libp2p, DHT, SQLite `synchronous=FULL`) on loopback, all"
            " in one process and one trio loop, so they share one core. A mailbox node M, a"
            f" sender A and a recipient C. While C is stopped, A sends {r.k} messages, waits"
            " until all are `deposited` at M, and stops (nothing reaches C but through M);"
            " then C is started again. Times run from the call of `run_node` for C to each"
            " message committed in C's store (seen by a second SQLite connection polling every"
            f" 5 ms); {r.rounds} restarts.",
            "",
            "| from C's restart to … (ms) | p50 | p95 | max | p95 / start-up p50 |",
            "|---|---:|---:|---:|---:|",
            row("C serving (baseline: start-up cost)", r.started),
            row(f"each message in C's store ({r.k * r.rounds} messages)", r.to_inbox),
            row(f"the last of the {r.k} messages (per restart)", r.to_last),
            "",
            f"For scale, in the same run: the same {r.k} messages sent by A to C while both are"
            f" online (first send to last commit, A's encryption and commits included):"
            f" {r.direct_last_ms:,.0f} ms. Aim: p95 ≤ 2 s after reconnect.",
            "",
            f"Deposits into one mailbox: real sealed envelopes ({d.envelope_bytes} B frames,"
            f" {RECIPIENTS} recipients) through `MailboxClient` into `MailboxService` over a"
            " real libp2p stream; each deposit is checked and committed (quota in the same"
            " transaction) before its reply. Baseline in the same run: raw py-libp2p"
            " request/response of a frame of the same size on one stream, in this process.",
            "",
            "| what | deposits/s | ratio to baseline |",
            "|---|---:|---:|",
            f"| raw py-libp2p request/response (baseline) | {d.baseline_per_second:,.0f} | 1.00 |",
            f"| one client, one stream | {d.sequential_per_second:,.0f} |"
            f" {d.sequential_per_second / d.baseline_per_second:.2f} |",
            f"| {d.clients} clients at once, a stream each | {d.concurrent_per_second:,.0f} |"
            f" {d.concurrent_per_second / d.baseline_per_second:.2f} |",
            "",
            f"{d.n} timed deposits per client, within a mailbox's per-peer burst (500); past it"
            " one peer is held to 50 deposits/s by design (`MAILBOX_RATE_PER_PEER`)."
            f" Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores,"
            f" measured {time.strftime('%Y-%m-%d')}.",
            end,
        ]
    )


def write_section(path: Path, section: str, name: str = "pipeline") -> None:
    begin, end = _markers(name)
    text = path.read_text() if path.exists() else "# Benchmarks\n\nRun `scripts/bench`.\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text + "\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="messages per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--suite",
        choices=("all", "pipeline", "net", "mailbox", "startup", "blobs", "files"),
        default="all",
    )
    parser.add_argument("--blob-mib", type=int, default=64, help="file size (blobs)")
    parser.add_argument("--file-mib", type=int, default=100, help="file size (files)")
    parser.add_argument("--concurrency", type=int, default=8, help="API clients (net)")
    parser.add_argument("--paced-rate", type=float, default=20.0, help="msgs/s (net, paced)")
    parser.add_argument("--mailbox-messages", type=int, default=200, help="per restart")
    parser.add_argument("--mailbox-rounds", type=int, default=10, help="restarts (mailbox)")
    args = parser.parse_args(argv)
    if args.suite in ("all", "pipeline"):
        result = bench_pipeline(args.n, args.repeats)
        section = render(result, args.n, args.repeats)
        print(section)
        print(f"statements a message: {result.statements:.1f}")
        for mode, rate in result.per_second.items():
            print(
                f"{mode}: {rate:,.0f} msgs/s, ratio {rate / result.baseline_per_second:.3f};"
                f" CPU {result.cpu_us[mode]:,.0f} us a message,"
                f" ratio {result.baseline_cpu_us / result.cpu_us[mode]:.4f}"
            )
        if not args.no_write:
            write_section(args.out, section)
    if args.suite in ("all", "net"):
        net = bench_net(args.n, args.concurrency, args.paced_rate, max(100, args.n // 10))
        section = render_net(net)
        print(section)
        if not args.no_write:
            write_section(args.out, section, "net")
    if args.suite in ("all", "startup"):
        section = render_startup(bench_startup(args.repeats))
        print(section)
        if not args.no_write:
            write_section(args.out, section, "startup")
    if args.suite in ("all", "mailbox"):
        mailbox = bench_mailbox(args.mailbox_messages, args.mailbox_rounds)
        section = render_mailbox(mailbox)
        print(section)
        if not args.no_write:
            write_section(args.out, section, "mailbox")
    if args.suite in ("all", "blobs"):
        from p2pdm.bench.blobs import bench_blobs, render_blobs  # imports the node's services

        section = render_blobs(bench_blobs(args.blob_mib << 20))
        print(section)
        if not args.no_write:
            write_section(args.out, section, "blobs")
    if args.suite in ("all", "files"):
        from p2pdm.bench.files import bench_files, render_files

        section = render_files(bench_files(args.file_mib << 20, args.repeats))
        print(section)
        if not args.no_write:
            write_section(args.out, section, "files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
