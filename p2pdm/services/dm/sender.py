"""The sender: one recipient, one stream, a window of envelopes in flight.

How this works: :class:`Sender` opens one stream to the peer — dialling its
last known addresses, then, when those fail, asking the DHT afresh where
the peer is now (at most once per ``PEER_LOOKUP_INTERVAL_SECONDS`` a peer,
so an offline contact costs no lookup per retry) — and, while that takes longer
than ``REACH_TIMEOUT``, deposits what waits for the peer at mailboxes. On
the stream it writes up to ``DM_WINDOW`` deliver frames (those due together
in one write, up to ``COALESCED_WRITE_BYTES``) while a reader task takes the
acks; which frame is which is a
:class:`~p2pdm.core.sendwindow.SendWindow`'s business. A written envelope
is marked ``sent`` in the transaction that applies the next acks (one
commit, so one fsync, for both), or on its own if no ack comes within
``SENT_MARK_WAIT_SECONDS``. An ``ok`` ack
removes the envelope from the outbox and marks the message ``delivered``;
``rejected`` marks it ``failed``; anything else (no route, timeout,
``retry``) reschedules it with backoff until it expires. The stream stays
open for ``STREAM_IDLE_SECONDS`` in case more is queued. What could not be
delivered goes to mailboxes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable

import trio

from p2pdm.core.dm import DM_PROTOCOL, Ack, Deliver, decode_ack
from p2pdm.core.identity import PeerId
from p2pdm.core.model import OutboxItem
from p2pdm.core.ratelimit import Pacer
from p2pdm.core.sendwindow import SendWindow
from p2pdm.errors import P2PDMError, PeerUnreachable
from p2pdm.limits import MAX_CONTROL_FRAME_BYTES
from p2pdm.net.stream import Stream
from p2pdm.node.offloop import OffLoopCommits
from p2pdm.services.dm.deposits import Depositor
from p2pdm.services.dm.outbox import OutboxBook, delivery_error
from p2pdm.services.dm.scheduler import Scheduler
from p2pdm.services.limits import (
    ACK_TIMEOUT,
    COALESCED_WRITE_BYTES,
    DIAL_TIMEOUT,
    FIND_PEER_TIMEOUT,
    MAX_PACED_LOOKUPS,
    PEER_LOOKUP_INTERVAL_SECONDS,
    REACH_TIMEOUT,
    SENT_MARK_WAIT_SECONDS,
    STREAM_IDLE_SECONDS,
    WRITE_TIMEOUT,
)
from p2pdm.services.ports import Network

__all__ = ["Sender"]

log = logging.getLogger("p2pdm.services.dm")


class Sender:
    """Delivers what is due for one peer at a time (the scheduler runs one task per peer).

    ``seen(peer)``: called when a peer answered (keeps its addresses).
    """

    def __init__(
        self,
        book: OutboxBook,
        network: Network,
        scheduler: Scheduler,
        depositor: Depositor,
        seen: Callable[[PeerId], None],
        *,
        commits: OffLoopCommits | None = None,
    ) -> None:
        self.book = book
        #: Where a burst of acks commits (its fsync in a worker thread).
        self.commits = commits or OffLoopCommits(book.store)
        self.network = network
        self.scheduler = scheduler
        self.depositor = depositor
        self.seen = seen
        #: When each peer was last looked up afresh in the DHT.
        self._lookups = Pacer(PEER_LOOKUP_INTERVAL_SECONDS, MAX_PACED_LOOKUPS)

    async def run_for(self, peer: PeerId) -> None:
        """Deliver what is due for ``peer``, then deposit what could not be delivered."""
        try:
            failed = await self.send_all(peer)
            with self.scheduler.interruptible(peer):  # cut short if the peer connects
                await self.depositor.deposit(peer, failed)
        except Exception as exc:
            log.exception("sender for %s failed", peer.short())
            with contextlib.suppress(P2PDMError):  # never spin on an item that keeps failing
                self.book.reschedule_all(
                    self.book.due_for(peer), f"internal error: {type(exc).__name__}"
                )

    async def _dial(self, peer: PeerId, addrs: list[str]) -> Stream:
        try:
            with trio.fail_after(DIAL_TIMEOUT):
                return await self.network.open_stream(peer, DM_PROTOCOL, addrs)
        except trio.TooSlowError:
            raise PeerUnreachable(
                f"{peer.short()} did not answer in time", f"no answer within {DIAL_TIMEOUT:g} s"
            ) from None

    async def _open(self, peer: PeerId) -> Stream:
        """A dm stream to ``peer``: its known addresses first, then (paced by
        PEER_LOOKUP_INTERVAL_SECONDS) the addresses the DHT has now."""
        contact = self.book.store.get_contact(peer)
        addrs = list(contact.addrs) if contact else []
        try:
            stream = await self._dial(peer, addrs)
        except PeerUnreachable as failed:
            if not self._lookups.allow(peer, trio.current_time()):
                raise
            try:
                found = await self.network.find_peer(peer, FIND_PEER_TIMEOUT, fresh=True)
            except PeerUnreachable as lost:
                # The dial's reason, not the lookup's: a paced round (no
                # lookup) then reads the same and is not noted again.
                log.debug("looking %s up failed: %s", peer.short(), lost)
                raise failed from None
            stream = await self._dial(peer, found)
        self.seen(peer)
        return stream

    async def _open_or_deposit(self, peer: PeerId) -> Stream:
        """Open a stream to ``peer``; past REACH_TIMEOUT, deposit what waits for it meanwhile.

        The lookup goes on (the peer may just be slow to find); a deposit cut
        short when it answers is harmless: mailboxes dedupe repeated deposits.
        """

        async def deposit_when_slow() -> None:
            await trio.sleep(REACH_TIMEOUT)
            await self.depositor.deposit(peer, self.book.undelivered(peer))

        stream: Stream | None = None
        error: P2PDMError = PeerUnreachable(f"{peer.short()} not reachable")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(deposit_when_slow)
                try:
                    stream = await self._open(peer)
                except P2PDMError as exc:  # raised here, not wrapped in an ExceptionGroup
                    error = exc
                nursery.cancel_scope.cancel()
        except BaseException:  # cancelled (the peer connected meanwhile): drop the stream
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.reset()
            raise
        if stream is None:
            raise error
        return stream

    async def send_all(self, peer: PeerId) -> list[OutboxItem]:
        """Deliver what is due for ``peer``; returns the items that could not be delivered
        (if ``peer`` is unreachable: everything queued for it, up to MAX_DEPOSIT_BATCH)."""
        book = self.book
        await self.commits.settled()
        due = book.due_for(peer)
        if not due:
            return []
        stream: Stream | None = None
        try:
            with self.scheduler.interruptible(peer):  # cut short if the peer connects
                stream = await self._open_or_deposit(peer)
        except P2PDMError as exc:
            delay_ms = book.reschedule_all(due, delivery_error(exc))
            self.scheduler.unreachable(peer, delay_ms / 1000)
            return book.undelivered(peer)
        if stream is None:
            return []  # the peer connected meanwhile: the next sender uses that connection
        self.scheduler.reachable(peer)
        failed: list[OutboxItem] = []
        window: SendWindow[OutboxItem] = SendWindow(book.window)
        #: Where the writer waits for room in the window (the ack reader wakes it).
        room = trio.lowlevel.ParkingLot()
        #: Written and not yet marked ``sent``: the ack reader marks them in
        #: its acks' transaction (see SENT_MARK_WAIT_SECONDS).
        unmarked: list[OutboxItem] = []
        #: Acked, out of the window, their ack's commit not returned yet: not
        #: written again meanwhile (their outbox rows are still there).
        settling: set[bytes] = set()
        async with stream, trio.open_nursery() as nursery:
            acks_done = trio.Event()
            nursery.start_soon(self._read_acks, stream, window, room, acks_done, unmarked, settling)
            try:
                while not acks_done.is_set():
                    # Armed before reading the outbox: a wake-up from here on
                    # (new message, retry due, the ack reader stopping) is kept.
                    wake = self.scheduler.arm(peer)
                    # A commit in its thread (the API's group that queued what
                    # woke us): wait for it here, or reading the outbox would
                    # do its fsync on the loop.
                    await self.commits.settled()
                    sending = {item.envelope_id for item in window} | settling
                    written = False
                    #: Frames taken into the window and not written yet: written
                    #: together (see COALESCED_WRITE_BYTES) before waiting for room.
                    batch: list[tuple[OutboxItem, bytes]] = []
                    size = 0
                    for item in book.due_for(peer):
                        if item.envelope_id in sending:
                            continue
                        if batch and (window.full or size >= COALESCED_WRITE_BYTES):
                            await _write(stream, batch, unmarked)
                            batch, size = [], 0
                        while window.full and not acks_done.is_set():
                            await room.park()
                        if acks_done.is_set():
                            break
                        seq = window.send(item)
                        # Listed before the write: its ack may be read before the write returns.
                        unmarked.append(item)
                        frame = Deliver(seq, item.envelope).encode()
                        batch.append((item, frame))
                        size += len(frame)
                        written = True
                    if batch:  # no wait since the ack reader was last seen running
                        await _write(stream, batch, unmarked)
                    if written:
                        continue
                    if unmarked:
                        # Sent marks waiting for an ack: on their own after a while.
                        with trio.move_on_after(SENT_MARK_WAIT_SECONDS) as slow:
                            await wake.wait()
                        if slow.cancelled_caught:
                            book.mark_sent(_take(unmarked))
                        continue
                    if len(window):
                        await wake.wait()
                        continue
                    with trio.move_on_after(STREAM_IDLE_SECONDS) as idle:
                        await wake.wait()
                    if idle.cancelled_caught:
                        break
            except (P2PDMError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.info("stream to %s broke: %s", peer.short(), exc)
            finally:
                book.mark_sent(_take(unmarked))
                unacked = window.reset()
                book.reschedule_all(unacked, "no acknowledgement")
                failed.extend(unacked)
                nursery.cancel_scope.cancel()
        return failed

    async def _read_acks(
        self,
        stream: Stream,
        window: SendWindow[OutboxItem],
        room: trio.lowlevel.ParkingLot,
        done: trio.Event,
        unmarked: list[OutboxItem],
        settling: set[bytes],
    ) -> None:
        try:
            while True:
                if not len(window):
                    frame = await stream.read_frame(
                        MAX_CONTROL_FRAME_BYTES, STREAM_IDLE_SECONDS * 2
                    )
                else:
                    frame = await stream.read_frame(MAX_CONTROL_FRAME_BYTES, ACK_TIMEOUT)
                acked: list[tuple[OutboxItem, Ack]] = []
                try:
                    while frame is not None:  # this ack and any that arrived with it
                        ack = decode_ack(frame)
                        acked.append((window.ack(ack.seq), ack))
                        frame = stream.buffered_frame(MAX_CONTROL_FRAME_BYTES)
                except BaseException:
                    self.book.acked(acked, _take(unmarked))  # what came before it, at once
                    room.unpark_all()
                    raise
                # The envelopes written since the last mark are marked sent with
                # it; the commit's fsync in a worker thread.
                sent = _take(unmarked)
                ids = {item.envelope_id for item, _ in acked}
                settling |= ids
                try:
                    # Shielded: acks read are applied even if the stream is closing.
                    with trio.CancelScope(shield=True):
                        await self.commits.run(functools.partial(self.book.acked, acked, sent))
                finally:
                    settling -= ids
                    room.unpark_all()
                    # The writer may be waiting for work rather than room: what
                    # is due beyond the window it read goes out now.
                    self.scheduler.wake(stream.remote_peer)
                if not acked:
                    return
        except (P2PDMError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("acks from %s stopped", stream.remote_peer.short())
        finally:
            done.set()
            room.unpark_all()  # a writer waiting for room must see that no ack will come
            self.scheduler.wake(stream.remote_peer)  # the sender may be waiting for work


async def _write(
    stream: Stream, batch: list[tuple[OutboxItem, bytes]], unmarked: list[OutboxItem]
) -> None:
    """Write ``batch``'s deliver frames in one write; if it fails, its items
    still listed in ``unmarked`` are taken out (not written, so not sent)."""
    try:
        await stream.write_frames([frame for _, frame in batch], WRITE_TIMEOUT)
    except BaseException:
        items = {id(item) for item, _ in batch}
        unmarked[:] = [item for item in unmarked if id(item) not in items]
        raise


def _take(items: list[OutboxItem]) -> list[OutboxItem]:
    """Everything in ``items``, which is left empty."""
    taken = items[:]
    items.clear()
    return taken
