"""A ``p2pdm sim`` worker process: its share of the nodes, driven over stdin/stdout.

How this works: ``p2pdm sim --workers N`` starts N of these
(``python -m p2pdm.sim.worker``). The first frame on stdin
(:mod:`p2pdm.sim.pipe`) is the config. The worker draws every node's
identity from the seed, in the order :func:`~p2pdm.sim.network.open_sim_network`
does, but keeps a store for, and runs, only the nodes with
``index % workers == worker``, through a
:class:`~p2pdm.sim.network.SimNetwork` of its own (``serve_node``, as
``p2pdm run``). Each request runs in its own task and is answered when
done; a :class:`~p2pdm.sim.metrics.Tap` streams what the nodes do (commits,
refusals, DHT lookups) as events. stdin closing — the coordinator finished,
failed or died — stops every node and ends the process. SIGINT is ignored:
Ctrl-C reaches the coordinator, which stops its workers.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import signal
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from p2pdm.errors import P2PDMError, SimWorkerError, WireError
from p2pdm.net import TcpFaults
from p2pdm.sim.metrics import Path as DeliveryPath
from p2pdm.sim.metrics import Tap
from p2pdm.sim.network import REAL_SIM_UPKEEP, SIM_GC_THRESHOLDS, SimNetwork, serve_sim_nodes
from p2pdm.sim.nodes import first_error, link_faults, rss_mb
from p2pdm.sim.pipe import PIPE_BATCH, PipeDecoder, Request, encode_event, encode_reply
from p2pdm.sim.simnode import make_sim_nodes

__all__ = ["main"]

log = logging.getLogger("p2pdm.sim.worker")

#: Events waiting to be written to stdout. The coordinator reads all the
#: time; a full queue means it stopped, and the worker gives up.
EVENT_QUEUE: Final = 100_000
#: Bytes read from stdin at a time.
READ_BYTES: Final = 1 << 16


class _Events:
    """A :class:`~p2pdm.sim.metrics.Sink` that queues events for the coordinator."""

    def __init__(self, send: trio.MemorySendChannel[bytes], overflow: trio.CancelScope) -> None:
        self._send = send
        self._overflow = overflow
        self.overflowed = False

    def _put(self, name: str, args: dict[str, Any]) -> None:
        try:
            self._send.send_nowait(encode_event(name, args))
        except trio.WouldBlock:
            self.overflowed = True
            self._overflow.cancel()

    def stored(self, index: int, message_id: bytes, path: DeliveryPath) -> None:
        self._put(
            "stored", {"node": index, "id": message_id, "path": path, "at_ns": time.monotonic_ns()}
        )

    def refused(self, error: str) -> None:
        self._put("refused", {"error": error})

    def looked_up(self, call: str, seconds: float, found: bool, why: str = "") -> None:
        self._put("lookup", {"call": call, "us": round(seconds * 1e6), "found": found, "why": why})


class _Worker:
    """Answers the coordinator's requests against this worker's nodes."""

    def __init__(self, sim: SimNetwork, out: trio.abc.SendStream) -> None:
        self.sim = sim
        self._out = out
        self._lock = trio.Lock()

    async def write(self, frame: bytes) -> None:
        async with self._lock:
            await self._out.send_all(frame)

    async def handle(self, request: Request) -> None:
        try:
            ok = await getattr(self, f"_op_{request.op}")(**request.args)
        except Exception as exc:  # answered: the coordinator stops the run with it
            if not isinstance(exc, P2PDMError | RuntimeError | ValueError | trio.TooSlowError):
                log.exception("sim worker: %s failed", request.op)
            await self.write(encode_reply(request.id, None, f"{type(exc).__name__}: {exc}"))
        else:
            await self.write(encode_reply(request.id, ok))

    async def pump(self, events: trio.MemoryReceiveChannel[bytes]) -> None:
        async for frame in events:
            await self.write(frame)

    # --- requests (REQUESTS in p2pdm.sim.pipe) --------------------------------

    async def _op_ping(self) -> dict[str, Any]:
        return {}

    async def _op_start(self, node: int, bootstrap: list[str]) -> dict[str, Any]:
        serving = await self.sim.start(self.sim[node], tuple(bootstrap))
        return {"addrs": serving.host.listen_addrs()}

    async def _op_stop(self, node: int) -> dict[str, Any]:
        await self.sim.stop(self.sim[node])
        return {}

    async def _op_invite(self, node: int) -> dict[str, Any]:
        return {"invite": self.sim[node].running.node.invite()}

    async def _op_add_contact(self, node: int, invite: str, name: str) -> dict[str, Any]:
        self.sim[node].running.node.add_contact_from_invite(invite, name=name)
        return {}

    async def _op_send(self, sender: int, recipient: int, text: str) -> dict[str, Any]:
        at_ns = time.monotonic_ns()
        node = self.sim[sender].running.node
        message = node.send_text(self.sim[recipient].peer_id, text)
        return {"id": message.id, "at_ns": at_ns}

    async def _op_partition(self, groups: list[list[int]]) -> dict[str, Any]:
        self.sim.partition(groups)
        return {}

    async def _op_heal(self) -> dict[str, Any]:
        self.sim.heal()
        return {}

    async def _op_collect(
        self, undelivered: list[tuple[bytes, int, int]], now_ms: int, mailboxes: bool
    ) -> dict[str, Any]:
        got = self.sim.collect(undelivered, now_ms, mailboxes=mailboxes)
        return {
            "reasons": dict(got.undelivered),
            "held": got.held_in_mailboxes,
            "expired": got.expired_in_mailboxes,
            "starts": got.restarts,
        }

    async def _op_rss(self) -> dict[str, Any]:
        return {"kb": round(rss_mb() * 1000)}

    async def _op_link(self, latency_us: int, jitter_us: int, loss_ppm: int) -> dict[str, Any]:
        if self.sim.faults is None:
            raise SimWorkerError("a link change, but this worker's TCP has no fault layer")
        args = {"latency_us": latency_us, "jitter_us": jitter_us, "loss_ppm": loss_ppm}
        self.sim.faults.faults = link_faults(args)
        return {}

    async def _op_outside(self) -> dict[str, Any]:
        return {
            kind: sorted(peers)[:PIPE_BATCH] for kind, peers in self.sim.outside_peer_ids().items()
        }

    async def _op_stats(self) -> dict[str, Any]:
        return {"stats": {} if self.sim.faults is None else dict(self.sim.faults.stats)}

    async def _op_book(self, nodes: list[int], addrs: list[str]) -> dict[str, Any]:
        if len(nodes) != len(addrs) or not all(i < len(self.sim) for i in nodes):
            raise ValueError("a book pairs each address with a node of this run")
        book: dict[int, list[str]] = {}
        for index, addr in zip(nodes, addrs, strict=True):
            book.setdefault(index, []).append(addr)
        self.sim.learn_addrs(book)
        return {}

    async def _op_join(self, window_ms: int) -> dict[str, Any]:
        await self.sim.release_joins(window_ms / 1000)
        return {}

    async def _op_publish(self) -> dict[str, Any]:
        await self.sim.publish_formed()
        return {}


async def _serve(in_fd: int, out_fd: int) -> None:
    stdin = trio.lowlevel.FdStream(in_fd)
    stdout = trio.lowlevel.FdStream(out_fd)
    decoder = PipeDecoder("worker")
    config: dict[str, Any] | None = None
    pending: list[Any] = []
    while config is None:
        data = await stdin.receive_some(READ_BYTES)
        if not data:
            return  # the coordinator went away before configuring us
        pending = decoder.feed(data)
        if pending:
            config = pending.pop(0)
    logging.basicConfig(level=config["log_level"].upper(), stream=sys.stderr)
    workers, worker = config["workers"], config["worker"]
    if not 0 <= worker < workers:
        raise WireError(f"worker {worker} of {workers} does not exist")
    store_dir = Path(config["store_dir"]) if config["store_dir"] else None
    nodes = make_sim_nodes(
        config["nodes"],
        random.Random(config["seed"]),
        store_dir=store_dir,
        mailboxes=config["mailboxes"],
        local=lambda index: index % workers == worker,
    )
    faults = None
    if config["faults"]:
        # Each worker's own loss draws: real-time runs do not replay anyway.
        faults = TcpFaults(link_faults(config), seed=config["seed"] * workers + worker)
    send, receive = trio.open_memory_channel[bytes](EVENT_QUEUE)
    with trio.CancelScope() as scope:
        events = _Events(send, scope)
        tap = Tap(events, time.monotonic, sees_every_node=False)
        async with serve_sim_nodes(
            nodes,
            probe=tap,
            external=config["external"],
            listen=config["listen"] or None,
            faults=faults,
            upkeep=REAL_SIM_UPKEEP,
            publish_after_forming=config["planned"],
        ) as sim:
            if config["planned"]:
                sim.planned_tables = True
                sim.hold_joins()
            worker_ = _Worker(sim, stdout)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(worker_.pump, receive)
                for request in pending:
                    nursery.start_soon(worker_.handle, request)
                while data := await stdin.receive_some(READ_BYTES):
                    for request in decoder.feed(data):
                        nursery.start_soon(worker_.handle, request)
                nursery.cancel_scope.cancel()  # stdin closed: stop every node
    if events.overflowed:
        raise SimWorkerError(
            f"more than {EVENT_QUEUE} events unsent: the coordinator stopped reading"
        )


def main() -> int:
    """Run one worker on stdin/stdout; the exit status says how it ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # stdout carries frames only: anything printed by mistake goes to stderr.
    out_fd, in_fd = os.dup(1), os.dup(0)
    os.dup2(2, 1)
    # As in one process (p2pdm.sim.scenario): rarer full collections.
    gc.set_threshold(*SIM_GC_THRESHOLDS)
    try:
        trio.run(partial(_serve, in_fd, out_fd))
    except BaseExceptionGroup as group:
        error = first_error(group, (WireError, SimWorkerError, trio.BrokenResourceError))
        if error is group:
            raise
        return _ended(error)
    except (WireError, SimWorkerError, trio.BrokenResourceError) as exc:
        return _ended(exc)
    return 0


def _ended(exc: BaseException) -> int:
    if isinstance(exc, trio.BrokenResourceError):
        return 1  # the coordinator went away: nobody to tell
    print(f"p2pdm sim worker: {exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
