"""``/p2pdm/blob/1.0.0``: serving our files to the peers we sent them to, and
fetching the files sent to us (docs/protocol.md §17.5).

How this works: :class:`BlobService` serves inbound streams behind the
shared :class:`~p2pdm.services.inbound.InboundGuard` (streams per peer and
in total, requests per second) and paces what it sends each peer to
BLOB_BYTES_PER_SECOND_PER_PEER over all its transfers. A request for a
blob is answered with chunks only if a message of ours carried that blob to
the asking peer (the stream's PeerID is authenticated by Noise); every other
request — no such blob, a blob we only received, one sent to someone else —
gets the same bare refusal.

:meth:`BlobService.run_fetcher` fetches the blobs the store marks
``fetching``, at most MAX_CONCURRENT_BLOB_FETCHES at once, each from its
sender: from the first chunk not yet verified (so a broken connection or a
restart resumes there), a window of chunks per request, every chunk checked
before it is written (:meth:`~p2pdm.node.media.MediaLibrary.accept_chunk`).
A chunk that fails its check ends the stream and is asked for again, up to
MAX_CHUNK_RETRIES times. A sender that cannot be reached leaves the
transfer waiting (its detail says so) until the sender connects again or
BLOB_RETRY_SECONDS pass. Progress, completion and failure are events.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import trio

from p2pdm.core.blob import chunk_count
from p2pdm.core.blobwire import (
    BLOB_PROTOCOL,
    MAX_BLOB_CONTROL_BYTES,
    MAX_CHUNK_FRAME_BYTES,
    MAX_CHUNKS_PER_REQUEST,
    BlobReply,
    BlobRequest,
)
from p2pdm.core.identity import PeerId
from p2pdm.core.model import EventType
from p2pdm.core.ratelimit import FailureLog, TokenBucket
from p2pdm.errors import ChunkRejected, P2PDMError, PeerUnreachable, ProtocolViolation
from p2pdm.net.stream import Stream
from p2pdm.node.node import Node
from p2pdm.services.inbound import InboundGuard, InboundLimits
from p2pdm.services.limits import (
    BLOB_BURST_SECONDS,
    BLOB_BYTES_PER_SECOND_PER_PEER,
    BLOB_DIAL_TIMEOUT,
    BLOB_READ_TIMEOUT,
    BLOB_REQUEST_BURST,
    BLOB_REQUESTS_PER_SECOND,
    BLOB_RETRY_SECONDS,
    BLOB_SWEEP_SECONDS,
    MAX_BLOB_STREAMS,
    MAX_BLOB_STREAMS_PER_PEER,
    MAX_CHUNK_RETRIES,
    MAX_CHUNKS_AHEAD,
    MAX_CHUNKS_PER_WRITE,
    MAX_CONCURRENT_BLOB_FETCHES,
    WRITE_TIMEOUT,
)
from p2pdm.services.ports import Network
from p2pdm.store.blobs import BlobRecord

__all__ = ["INBOUND_LIMITS", "BlobService"]

log = logging.getLogger("p2pdm.services.blob")

INBOUND_LIMITS = InboundLimits(
    streams_per_peer=MAX_BLOB_STREAMS_PER_PEER,
    rate=BLOB_REQUESTS_PER_SECOND,
    burst=BLOB_REQUEST_BURST,
    max_buckets=MAX_BLOB_STREAMS,
    streams=MAX_BLOB_STREAMS,
)


class _Pacer:
    """Bytes per second per peer, over all its streams; keeps at most one
    entry per peer with a transfer under way."""

    def __init__(self, rate: float, burst_seconds: float) -> None:
        self.rate = rate
        self.burst = burst_seconds
        self._free_at: dict[PeerId, float] = {}

    async def spend(self, peer: PeerId, size: int) -> None:
        now = trio.current_time()
        start = max(self._free_at.get(peer, now), now - self.burst)
        self._free_at[peer] = start + size / self.rate
        if len(self._free_at) > MAX_BLOB_STREAMS:
            self._free_at = {p: t for p, t in self._free_at.items() if t > now}
        wait = self._free_at[peer] - now
        if wait > 0:
            await trio.sleep(wait)
        else:
            await trio.lowlevel.checkpoint()


class BlobService:
    """Serves and fetches blobs for ``node`` over ``network``; ``bytes_per_second``
    overrides what each peer is served at most (BLOB_BYTES_PER_SECOND_PER_PEER)."""

    def __init__(
        self, node: Node, network: Network, *, bytes_per_second: float | None = None
    ) -> None:
        self.node = node
        self.network = network
        self.failures = FailureLog(log, "blob stream failures")
        self.inbound = InboundGuard("blob", network, INBOUND_LIMITS, self.failures)
        rate = BLOB_BYTES_PER_SECOND_PER_PEER if bytes_per_second is None else bytes_per_second
        self.pacer = _Pacer(rate, BLOB_BURST_SECONDS)
        self._wake = trio.Event()
        self._active: set[bytes] = set()
        network.set_handler(BLOB_PROTOCOL, self.handle_stream)
        node.media.on_wanted = self.wake

    # --- serving ----------------------------------------------------------

    async def handle_stream(self, stream: Stream) -> None:
        await self.inbound.serve(stream, self._serve)

    def _servable(self, blob_id: bytes, peer: PeerId) -> BlobRecord | None:
        """Our whole blob, if a message of ours carried it to ``peer`` and it is not
        blocked (a blocked peer gets the answer of an unknown blob)."""
        if self.node.store.is_blocked(peer):
            return None
        record = self.node.store.get_blob(blob_id)
        if record is None or record.state not in ("local", "ready"):
            return None
        return record if self.node.store.blob_shared_with(blob_id, peer) else None

    async def _serve(self, stream: Stream, bucket: TokenBucket) -> None:
        peer = stream.remote_peer
        while True:
            frame = await stream.read_frame(MAX_BLOB_CONTROL_BYTES, BLOB_READ_TIMEOUT)
            if frame is None:
                await stream.close()
                return
            if not bucket.take(trio.current_time()):
                raise ProtocolViolation(f"{peer.short()} asks for chunks too fast")
            request = BlobRequest.decode(frame)
            record = self._servable(request.blob_id, peer)
            if record is None:
                await stream.write_frame(BlobReply(False).encode(), WRITE_TIMEOUT)
                continue
            count = max(0, min(request.count, chunk_count(record.size) - request.first))
            await stream.write_frame(BlobReply(True, count).encode(), WRITE_TIMEOUT)
            for index in range(request.first, request.first + count):
                chunk = self.node.media.sealed_chunk(record, index)
                await self.pacer.spend(peer, len(chunk))
                await stream.write_frame(chunk, WRITE_TIMEOUT)

    # --- fetching ---------------------------------------------------------

    def wake(self) -> None:
        """Look at the blobs to fetch now (one was wanted, a sender connected)."""
        self._wake.set()

    async def run_fetcher(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        limiter = trio.Semaphore(MAX_CONCURRENT_BLOB_FETCHES)
        async with trio.open_nursery() as nursery:
            task_status.started()
            swept_at = trio.current_time()
            while True:
                if trio.current_time() - swept_at >= BLOB_SWEEP_SECONDS:
                    swept_at = trio.current_time()
                    gone = self.node.media.sweep()
                    if gone:
                        log.info("deleted %d files no message refers to", gone)
                self._wake = trio.Event()
                for record in self.node.store.blobs_to_fetch():
                    if record.blob_id in self._active or record.source is None:
                        continue
                    if self.node.store.is_blocked(record.source):
                        continue  # nothing is asked of a blocked peer (its files wait)
                    if len(self._active) >= MAX_CONCURRENT_BLOB_FETCHES:
                        break
                    self._active.add(record.blob_id)
                    nursery.start_soon(self._fetch_guarded, record, limiter)
                with trio.move_on_after(BLOB_RETRY_SECONDS):
                    await self._wake.wait()

    async def _fetch_guarded(self, record: BlobRecord, limiter: trio.Semaphore) -> None:
        try:
            async with limiter:
                await self.fetch(record)
        except (P2PDMError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.info("fetching %s paused: %s", record.blob_id.hex()[:12], exc)
        finally:
            self._active.discard(record.blob_id)

    def _event(self, kind: EventType, record: BlobRecord, detail: str) -> None:
        self.node.store.add_event(kind, self.node.now_ms(), record.source, detail=detail)

    def _waiting(self, record: BlobRecord, source: PeerId) -> None:
        contact = self.node.store.get_contact(source)
        name = contact.name if contact is not None else source.short()
        detail = f"waiting for {name} to come online to send the file"
        self.node.store.set_blob_progress(record.blob_id, "fetching", record.have, detail)

    async def fetch(self, record: BlobRecord) -> BlobRecord:
        """Fetch ``record`` from its sender until it is whole, failed, or the
        sender cannot be reached (then it waits; the record says so)."""
        source = record.source
        assert source is not None
        media = self.node.media
        record = self.node.store.get_blob(record.blob_id) or record
        retries = 0
        while record.state == "fetching":
            record = replace(record, have=media.resume_point(record))
            contact = self.node.store.get_contact(source)
            addrs = list(contact.addrs) if contact is not None else []
            try:
                with trio.fail_after(BLOB_DIAL_TIMEOUT):
                    stream = await self.network.open_stream(source, BLOB_PROTOCOL, addrs)
            except (PeerUnreachable, trio.TooSlowError):
                self._waiting(record, source)
                return record
            async with stream:
                try:
                    record = await self._pull(stream, record)
                except ChunkRejected as exc:
                    retries += 1
                    log.warning("blob %s from %s: %s", record.blob_id.hex()[:12], source, exc)
                    await stream.reset()
                    if retries > MAX_CHUNK_RETRIES:
                        detail = f"{source.short()} keeps sending damaged chunks"
                        media.give_up(record.blob_id, detail)
                        self._event(
                            EventType.MEDIA_FAILED, record, f"{record.blob_id.hex()}: {detail}"
                        )
                        return self.node.store.get_blob(record.blob_id) or record
                    record = self.node.store.get_blob(record.blob_id) or record
        if self.node.store.get_blob(record.blob_id) is None:
            return record  # its message went meanwhile (unsent, deleted): nothing to tell
        if record.state == "ready":
            self._event(EventType.MEDIA_READY, record, record.blob_id.hex())
        elif record.state == "failed":
            self._event(EventType.MEDIA_FAILED, record, f"{record.blob_id.hex()}: {record.detail}")
        return record

    async def _pull(self, stream: Stream, record: BlobRecord) -> BlobRecord:
        """Request windows of chunks on ``stream`` until the blob is whole or failed.

        Three tasks share the stream: one asks for the next window as soon
        as the chunks asked for and not yet written leave room for it
        (MAX_CHUNKS_AHEAD), one reads the replies and chunks into a queue,
        and this one checks and writes the chunks queued off the event loop,
        as many as are there (up to MAX_CHUNKS_PER_WRITE) in one go
        (:meth:`~p2pdm.node.media.MediaLibrary.accept_chunks_off_loop`). So
        the stream is read while chunks are checked, the sender has the
        next window before it finishes the current one, and what is in
        flight is bounded whatever the file's size.
        """
        total = chunk_count(record.size)
        media = self.node.media
        credits = trio.Semaphore(MAX_CHUNKS_AHEAD)
        ask_send, ask_receive = trio.open_memory_channel[BlobRequest](MAX_CHUNKS_AHEAD)
        chunk_send, chunk_receive = trio.open_memory_channel[tuple[int, bytes]](MAX_CHUNKS_AHEAD)
        errors: list[Exception] = []
        refused = False

        async def ask_windows() -> None:
            try:
                async with ask_send:
                    for first in range(record.have, total, MAX_CHUNKS_PER_REQUEST):
                        request = BlobRequest(
                            record.blob_id, first, min(MAX_CHUNKS_PER_REQUEST, total - first)
                        )
                        for _ in range(request.count):
                            await credits.acquire()
                        await stream.write_frame(request.encode(), WRITE_TIMEOUT)
                        await ask_send.send(request)
            except trio.BrokenResourceError:
                pass  # the reading side stopped (refused, the file whole or failed)
            except Exception as exc:  # raised by _pull, not wrapped in an ExceptionGroup
                errors.append(exc)

        async def read_windows() -> None:
            nonlocal refused
            try:
                async with chunk_send, ask_receive:
                    async for request in ask_receive:
                        frame = await stream.read_frame(MAX_BLOB_CONTROL_BYTES, BLOB_READ_TIMEOUT)
                        if frame is None:
                            raise PeerUnreachable(
                                f"{stream.remote_peer.short()} closed the blob stream"
                            )
                        reply = BlobReply.decode(frame)
                        if not reply.ok:
                            refused = True
                            return
                        if reply.count != request.count:
                            raise ProtocolViolation(
                                f"{reply.count} chunks announced, {request.count} asked for"
                            )
                        for index in range(request.first, request.first + reply.count):
                            data = await stream.read_frame(MAX_CHUNK_FRAME_BYTES, BLOB_READ_TIMEOUT)
                            if data is None:
                                raise PeerUnreachable(
                                    f"{stream.remote_peer.short()} stopped mid-transfer"
                                )
                            await chunk_send.send((index, data))
            except trio.BrokenResourceError:
                pass  # the checking side stopped (the file is whole, failed or gone)
            except Exception as exc:  # raised by _pull, not wrapped in an ExceptionGroup
                # The chunks read before are still checked and written (the
                # queue is closed), so a resumed fetch starts after them.
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_windows)
            nursery.start_soon(read_windows)

            def progressed(now: BlobRecord) -> None:
                detail = f"{now.blob_id.hex()} {now.have}/{total}"
                self._event(EventType.MEDIA_PROGRESS, now, detail)

            try:
                async with chunk_receive:
                    async for first, data in chunk_receive:
                        # With it, every chunk already queued (the worker thread
                        # was busy): one hand-off, one write for the run.
                        run = [data]
                        while len(run) < MAX_CHUNKS_PER_WRITE:
                            try:
                                run.append(chunk_receive.receive_nowait()[1])
                            except (trio.WouldBlock, trio.EndOfChannel):
                                break
                        record = await media.accept_chunks_off_loop(record, first, run, progressed)
                        for _ in run:
                            credits.release()
                        if record.state != "fetching":
                            break
            except Exception as exc:  # raised by _pull, not wrapped in an ExceptionGroup
                errors.append(exc)
            nursery.cancel_scope.cancel()
        if errors:
            raise errors[0]
        if refused and record.state == "fetching":
            detail = "the sender no longer has this file"
            self.node.store.set_blob_progress(record.blob_id, "failed", record.have, detail)
            return self.node.store.get_blob(record.blob_id) or record
        await stream.close_write()
        return record
