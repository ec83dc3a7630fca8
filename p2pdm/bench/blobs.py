"""File throughput: ``/p2pdm/blob/1.0.0`` against raw py-libp2p, same run.

``python -m p2pdm.bench.pipeline --suite blobs`` (part of ``scripts/bench``)
runs two libp2p hosts on loopback in this process, one core's worth of
Python for both ends as in the rest of the suite:

- **baseline**: ``size`` bytes written as 256 KiB frames on one py-libp2p
  stream (through :class:`p2pdm.net.Stream`), read and dropped at the other
  end: what one stream carries with no crypto, no checks, no files;
- **blob fetch**: a recipient pulls a file of ``size`` bytes from its sender
  with :class:`~p2pdm.services.blob.BlobService` (windows of 16 chunks,
  every chunk authenticated before it is written, the sealed blob hashed and
  the plaintext digest checked at the end), files in memory. The per-peer
  rate cap (``BLOB_BYTES_PER_SECOND_PER_PEER``) is lifted here, to measure
  the protocol rather than the cap.

Peak resident memory is read before and after the fetch, to show that a
transfer holds a bounded number of chunks, whatever the file's size.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass, replace
from typing import Final

import trio

from p2pdm.bench.pipeline import _markers
from p2pdm.core import cbor
from p2pdm.core.blob import CHUNK_BYTES, MAC_BYTES
from p2pdm.core.identity import Identity
from p2pdm.core.kinds import encode_body
from p2pdm.core.model import DeliveryStatus, Direction, StoredMessage, direct_conversation_id
from p2pdm.net import Stream, open_host
from p2pdm.net.testing import host_seed
from p2pdm.node.node import Node
from p2pdm.services.blob import BlobService
from p2pdm.store.blobs import BlobRecord
from p2pdm.store.memory import MemoryStore

__all__ = ["BlobResult", "bench_blobs", "render_blobs"]

LOOPBACK: Final = ("/ip4/127.0.0.1/tcp/0",)
RAW_PROTOCOL: Final = "/p2pdm-bench/sink/1.0.0"
DEADLINE_S: Final = 600.0


@dataclass(frozen=True)
class BlobResult:
    size: int
    raw_mb_s: float
    blob_mb_s: float
    rss_before_mb: float
    rss_after_mb: float


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _raw(size: int) -> float:
    done = trio.Event()

    async def sink(stream: Stream) -> None:
        got = 0
        while got < size:
            frame = await stream.read_frame(CHUNK_BYTES + MAC_BYTES, 30)
            if frame is None:
                break
            got += len(frame)
        done.set()
        await stream.close()

    async with (
        open_host(host_seed(1), LOOPBACK) as a,
        open_host(host_seed(2), LOOPBACK) as b,
    ):
        b.set_handler(RAW_PROTOCOL, sink)
        stream = await a.open_stream(b.peer_id, RAW_PROTOCOL, b.listen_addrs())
        frame = os.urandom(CHUNK_BYTES)
        start = time.perf_counter()
        async with stream:
            for _ in range(size // CHUNK_BYTES):
                await stream.write_frame(frame, 30)
            await done.wait()
        return size / (time.perf_counter() - start) / 1e6


def _node(seed: int) -> Node:
    return Node(Identity(host_seed(seed)), MemoryStore())


def _share(alice: Node, bob: Node, record: BlobRecord) -> BlobRecord:
    """Alice's message carrying the file to Bob; Bob's record of it, wanted."""
    body = alice.media.body_for([record.blob_id], None)
    message = StoredMessage(
        id=os.urandom(16),
        conversation_id=direct_conversation_id(alice.peer_id, bob.peer_id),
        peer=bob.peer_id,
        direction=Direction.OUT,
        kind="media",
        body=cbor.encode(encode_body(body)),
        sent_at_ms=1,
        stored_at_ms=1,
        status=DeliveryStatus.SENT,
    )
    alice.media.attach(alice.store.add_message(message))
    wanted = replace(record, source=alice.peer_id, state="fetching", have=0)
    bob.store.put_blob(wanted)
    return wanted


async def _fetch(size: int) -> tuple[float, float, float]:
    alice, bob = _node(3), _node(4)
    record = alice.media.add_file(os.urandom(size), "application/octet-stream", "bench.bin")
    wanted = _share(alice, bob, record)
    async with (
        open_host(alice.identity.seed, LOOPBACK) as a,
        open_host(bob.identity.seed, LOOPBACK) as b,
    ):
        BlobService(alice, a, bytes_per_second=float(1 << 40))  # the cap lifted: see above
        fetcher = BlobService(bob, b)
        await b.connect(alice.peer_id, a.listen_addrs())
        before = _rss_mb()
        start = time.perf_counter()
        got = await fetcher.fetch(wanted)
        elapsed = time.perf_counter() - start
        assert got.state == "ready", got
        return size / elapsed / 1e6, before, _rss_mb()


def bench_blobs(size: int) -> BlobResult:
    """Both figures for a file of ``size`` bytes (a multiple of 256 KiB)."""

    async def run() -> BlobResult:
        with trio.fail_after(DEADLINE_S):
            raw = await _raw(size)
            blob, before, after = await _fetch(size)
        return BlobResult(size, raw, blob, before, after)

    return trio.run(run)


def render_blobs(result: BlobResult) -> str:
    begin, end = _markers("blobs")
    ratio = result.blob_mb_s / result.raw_mb_s
    return "\n".join(
        [
            begin,
            "## Files: `/p2pdm/blob/1.0.0` on loopback",
            "",
            "A file pulled by its recipient (windows of 16 chunks of 256 KiB, each chunk "
            "authenticated before it is written, id and digest checked at the end; files in "
            "memory), against raw py-libp2p: the same bytes as 256 KiB frames on one stream, "
            "no crypto. Both ends in one process, as in the same run.",
            "",
            "| what | MB/s | ratio to baseline |",
            "|---|---:|---:|",
            f"| raw py-libp2p, one stream (baseline) | {result.raw_mb_s:,.1f} | 1.00 |",
            f"| blob fetch | {result.blob_mb_s:,.1f} | {ratio:.2f} |",
            "",
            f"{result.size >> 20} MiB file; peak RSS {result.rss_before_mb:,.0f} MB before the "
            f"fetch, {result.rss_after_mb:,.0f} MB after (the file itself is in memory on both "
            f"sides in this benchmark); Python {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} cores, measured {time.strftime('%Y-%m-%d')}.",
            "Aim: at least 0.6 of the baseline.",
            end,
        ]
    )
