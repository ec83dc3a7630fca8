"""Direct delivery: the outbox loop and the ``/p2pdm/dm/1.0.0`` stream handler.

How this works. Sending: a scheduler wakes when something is queued or a
retry falls due, groups due outbox entries by recipient and runs one sender
task per recipient (at most ``MAX_ACTIVE_SENDERS``). A sender opens one
stream to the peer — dialling its last known addresses, then asking the DHT
— and pipelines up to ``DM_WINDOW`` envelopes while a reader takes the acks.
An ``ok`` ack removes the envelope from the outbox and marks the message
``delivered``; ``rejected`` marks it ``failed``; anything else (no route,
timeout, ``retry``) reschedules it with exponential backoff and jitter until
it expires. The stream stays open for ``STREAM_IDLE_SECONDS`` in case more
is queued.

Receiving: the handler reads deliver frames under a deadline, enforces the
per-peer limits (streams, rate, frame size), commits each envelope through
the messenger and acks it. A peer that breaks a limit or sends a frame that
is not a deliver frame is disconnected; everyone else is unaffected.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from p2pdm.core.dm import (
    DM_PROTOCOL,
    DM_WINDOW,
    Ack,
    AckResult,
    Deliver,
    decode_ack,
    decode_deliver,
)
from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import FetchedEnvelope
from p2pdm.core.model import DeliveryStatus, OutboxItem
from p2pdm.core.ratelimit import FailureLog, TokenBucket
from p2pdm.core.wire import ReceiptBody
from p2pdm.errors import (
    DecryptError,
    EnvelopeExpired,
    MessageIdConflict,
    NotFound,
    P2PDMError,
    PeerUnreachable,
    ProtocolViolation,
    RateLimited,
    ReplayError,
    SessionError,
    SignatureError,
    StoreError,
    WireError,
    WrongRecipient,
)
from p2pdm.limits import MAX_CONTROL_FRAME_BYTES, MAX_FRAME_BYTES
from p2pdm.net.stream import Stream
from p2pdm.node.messenger import Received
from p2pdm.services.mailbox_client import (
    MAILBOX_COPIES,
    MailboxClient,
    MailboxDirectory,
    describe_refusal,
)

if TYPE_CHECKING:
    from p2pdm.node.node import Node

__all__ = ["Delivery", "Network"]

log = logging.getLogger("p2pdm.services.dm")

#: Sender tasks running at once (one per recipient); more recipients wait.
MAX_ACTIVE_SENDERS: Final = 32
#: Due outbox entries read per scheduler pass.
MAX_DUE_BATCH: Final = 512
#: Longest the scheduler sleeps without a wake-up (clock drift, missed events).
SCHEDULER_MAX_SLEEP: Final = 5.0
#: First retry delay and cap; doubled per attempt, with ±50 % jitter.
RETRY_BASE_SECONDS: Final = 1.0
RETRY_MAX_SECONDS: Final = 300.0
#: How long an idle outgoing stream is kept for more messages.
STREAM_IDLE_SECONDS: Final = 30.0
#: Deadlines for one frame on the wire and for an ack to come back.
WRITE_TIMEOUT: Final = 10.0
ACK_TIMEOUT: Final = 15.0
#: Dialling a peer, and looking it up in the DHT when its addresses fail.
DIAL_TIMEOUT: Final = 5.0
FIND_PEER_TIMEOUT: Final = 10.0
#: A contact not reachable within this long is treated as offline: its
#: envelopes go to mailboxes while direct delivery keeps being retried.
REACH_TIMEOUT: Final = 8.0
#: Envelopes for one unreachable peer deposited in one go, oldest first:
#: everything queued for it, not just the window a sender tried, yet well
#: inside a mailbox's per-peer burst (MAILBOX_BURST_PER_PEER, 500).
MAX_DEPOSIT_BATCH: Final = 256
#: How often a node fetches from its mailboxes without being asked to.
FETCH_INTERVAL_SECONDS: Final = 300.0
#: Mailboxes fetched from at once.
MAX_CONCURRENT_FETCHES: Final = 4
#: A receiving stream with nothing on it for this long is closed.
RECEIVE_IDLE_SECONDS: Final = 120.0
#: Concurrent incoming dm streams one peer may hold.
MAX_STREAMS_PER_PEER: Final = 2
#: Sustained envelopes per second one peer may deliver, and the burst above it.
MAX_RATE_PER_PEER: Final = 2000.0
RATE_BURST_PER_PEER: Final = 4000.0
#: Deliver frames that arrived together and are committed together, at most.
MAX_COMMIT_GROUP: Final = DM_WINDOW
#: Longest status note (mailbox refusals and errors of one round), in characters.
MAX_NOTE: Final = 500
#: Deliver frames carry an envelope plus a few bytes of framing.
_DELIVER_FRAME_BYTES: Final = MAX_FRAME_BYTES + 64


class Network(Protocol):
    """What delivery needs from the libp2p host (see ``p2pdm.net``)."""

    def set_handler(self, protocol: str, handler: Callable[[Stream], Awaitable[None]]) -> None: ...
    async def open_stream(
        self, peer: PeerId, protocol: str, addrs: Sequence[str] = ()
    ) -> Stream: ...
    async def find_peer(self, peer: PeerId, timeout: float) -> list[str]: ...  # noqa: ASYNC109
    def peer_addrs(self, peer: PeerId) -> list[str]: ...
    async def disconnect(self, peer: PeerId) -> None: ...

    # The DHT, for mailboxes (issue 4): signed records and provider records.
    async def get_record(self, key: str, timeout: float) -> bytes | None: ...  # noqa: ASYNC109
    async def put_record(self, key: str, value: bytes) -> None: ...
    async def provide(self, key: bytes) -> None: ...
    async def find_providers(
        self,
        key: bytes,
        timeout: float,  # noqa: ASYNC109
    ) -> list[tuple[PeerId, list[str]]]: ...


def backoff_ms(attempts: int, rng: random.Random) -> int:
    """Delay before attempt ``attempts + 1``: exponential, capped, jittered."""
    delay = min(RETRY_BASE_SECONDS * (2 ** min(attempts, 30)), RETRY_MAX_SECONDS)
    return int(delay * rng.uniform(0.5, 1.5) * 1000)


class Delivery:
    """Moves envelopes from the outbox to their recipients, and accepts envelopes for us."""

    def __init__(
        self,
        node: Node,
        network: Network,
        *,
        rng: random.Random | None = None,
        mailboxes: MailboxDirectory | None = None,
    ) -> None:
        self.node = node
        self.network = network
        self.rng = rng or random.Random()
        #: Where to deposit and fetch; None: direct delivery only.
        self.mailboxes = mailboxes
        self.mailbox_client = MailboxClient(node.identity, network, now_ms=node.now_ms)
        self._fetch_wake = trio.Event()
        self._wake = trio.Event()
        self._senders: dict[PeerId, trio.Event] = {}
        self._incoming: defaultdict[PeerId, int] = defaultdict(int)
        self._buckets: dict[PeerId, TokenBucket] = {}
        #: Peers a dial just failed for, and the trio time to try them again:
        #: a new message for them waits for that, not a dial per message.
        self._unreachable_until: dict[PeerId, float] = {}
        #: Per-peer throttles of failure logs: a flood costs a few lines, not one each.
        self.refusals = FailureLog(log, "refused envelopes")
        self.stream_failures = FailureLog(log, "dm stream failures", level=logging.WARNING)
        network.set_handler(DM_PROTOCOL, self.handle_stream)

    # --- sending ----------------------------------------------------------------

    def wake(self, peer: PeerId | None = None) -> None:
        """Something was queued: run the scheduler (and the peer's sender) now."""
        if peer is not None and peer in self._senders:
            self._senders[peer].set()  # its sender reads the outbox itself
            return
        self._wake.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                self._wake = trio.Event()
                now = self.node.now_ms()
                due = self.node.store.outbox_due(now, MAX_DUE_BATCH)
                self._expire([item for item in due if item.expires_at_ms <= now])
                live = (item.recipient for item in due if item.expires_at_ms > now)
                clock = trio.current_time()
                self._unreachable_until = {
                    p: t for p, t in self._unreachable_until.items() if t > clock
                }
                for peer in dict.fromkeys(live):
                    if peer in self._unreachable_until:
                        continue
                    if peer in self._senders:
                        self._senders[peer].set()
                    elif len(self._senders) < MAX_ACTIVE_SENDERS:
                        self._senders[peer] = trio.Event()
                        nursery.start_soon(self._sender, peer)
                self.refusals.flush(clock)
                self.stream_failures.flush(clock)
                with trio.move_on_after(SCHEDULER_MAX_SLEEP):
                    await self._wake.wait()

    def _expire(self, items: list[OutboxItem]) -> None:
        if not items:
            return
        with self.node.store.transaction():
            for item in items:
                self.node.store.remove_outbox(item.envelope_id)
                self._set_status(item, DeliveryStatus.EXPIRED, "not delivered before expiry")

    def _set_status(self, item: OutboxItem, status: DeliveryStatus, detail: str = "") -> bool:
        """Move the message on; False if it did not move (or is a receipt, not stored)."""
        with contextlib.suppress(NotFound):  # receipts have no stored message
            return self.node.store.set_status(item.message_id, status, self.node.now_ms(), detail)
        return False

    def _note(self, item: OutboxItem, detail: str) -> None:
        """Tell the sender why the message is not delivered yet (status detail, history, event)."""
        with contextlib.suppress(NotFound):
            self.node.store.note_status(item.message_id, self.node.now_ms(), detail[:MAX_NOTE])

    def _reschedule(self, item: OutboxItem, error: str) -> int:
        """Back ``item`` off; returns the delay in ms."""
        delay = backoff_ms(item.attempts, self.rng)
        next_at = self.node.now_ms() + delay
        self.node.store.reschedule_outbox(item.envelope_id, next_at, item.attempts + 1, error)
        return delay

    def _reschedule_all(self, items: Sequence[OutboxItem], error: str) -> int:
        """Back every item off in one transaction; returns the shortest delay in ms."""
        if not items:
            return 0
        with self.node.store.transaction():
            return min(self._reschedule(item, error) for item in items)

    def retry_now(self, peer: PeerId) -> None:
        """``peer`` is reachable again (it connected): send what waits for it now."""
        self._unreachable_until.pop(peer, None)
        now = self.node.now_ms()
        waiting = [i for i in self.node.store.outbox_for(peer) if i.next_attempt_at_ms > now]
        if waiting:
            with self.node.store.transaction():
                for item in waiting:
                    self.node.store.reschedule_outbox(
                        item.envelope_id, now, item.attempts, item.last_error
                    )
        self.wake(peer)

    async def _sender(self, peer: PeerId) -> None:
        try:
            failed = await self._send_all(peer)
            await self._deposit(peer, failed)
        except Exception as exc:
            log.exception("sender for %s failed", peer.short())
            with contextlib.suppress(P2PDMError):  # never spin on an item that keeps failing
                self._reschedule_all(self._due_for(peer), f"internal error: {type(exc).__name__}")
        finally:
            self._senders.pop(peer, None)
            self._wake.set()

    async def _open(self, peer: PeerId) -> Stream:
        contact = self.node.store.get_contact(peer)
        addrs = list(contact.addrs) if contact else []
        try:
            with trio.fail_after(DIAL_TIMEOUT):
                stream = await self.network.open_stream(peer, DM_PROTOCOL, addrs)
        except (PeerUnreachable, trio.TooSlowError):
            found = await self.network.find_peer(peer, FIND_PEER_TIMEOUT)
            try:
                with trio.fail_after(DIAL_TIMEOUT):
                    stream = await self.network.open_stream(peer, DM_PROTOCOL, found)
            except trio.TooSlowError:
                raise PeerUnreachable(f"{peer.short()} did not answer in time") from None
        self._seen(peer)
        return stream

    def _seen(self, peer: PeerId) -> None:
        """A contact is reachable: keep its addresses and the time in the address book."""
        self.node.set_contact_addrs(peer, self.network.peer_addrs(peer))

    async def _open_or_deposit(self, peer: PeerId) -> Stream:
        """Open a stream to ``peer``; past REACH_TIMEOUT, deposit what waits for it meanwhile.

        The lookup goes on (the peer may just be slow to find); a deposit cut
        short when it answers is harmless: mailboxes dedupe repeated deposits.
        """

        async def deposit_when_slow() -> None:
            await trio.sleep(REACH_TIMEOUT)
            await self._deposit(peer, self._undelivered(peer))

        stream: Stream | None = None
        error: P2PDMError = PeerUnreachable(f"{peer.short()} not reachable")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(deposit_when_slow)
            try:
                stream = await self._open(peer)
            except P2PDMError as exc:  # raised here, not wrapped in an ExceptionGroup
                error = exc
            nursery.cancel_scope.cancel()
        if stream is None:
            raise error
        return stream

    async def _send_all(self, peer: PeerId) -> list[OutboxItem]:
        """Deliver what is due for ``peer``; returns the items that could not be delivered
        (if ``peer`` is unreachable: everything queued for it, up to MAX_DEPOSIT_BATCH)."""
        due = self._due_for(peer)
        if not due:
            return []
        try:
            stream = await self._open_or_deposit(peer)
        except (PeerUnreachable, P2PDMError) as exc:
            delay_ms = self._reschedule_all(due, str(exc))
            self._unreachable_until[peer] = trio.current_time() + delay_ms / 1000
            return self._undelivered(peer)
        self._unreachable_until.pop(peer, None)
        failed: list[OutboxItem] = []
        in_flight: dict[int, OutboxItem] = {}
        window = trio.Semaphore(DM_WINDOW)
        seq = 0
        async with stream, trio.open_nursery() as nursery:
            acks_done = trio.Event()
            nursery.start_soon(self._read_acks, stream, in_flight, window, acks_done)
            try:
                while not acks_done.is_set():
                    # Armed before reading the outbox: a wake-up from here on
                    # (new message, retry due, the ack reader stopping) is kept.
                    wake = self._senders[peer] = trio.Event()
                    sending = {item.envelope_id for item in in_flight.values()}
                    written: list[OutboxItem] = []
                    try:
                        for item in self._due_for(peer):
                            if item.envelope_id in sending:
                                continue
                            await window.acquire()
                            seq += 1
                            in_flight[seq] = item
                            await stream.write_frame(
                                Deliver(seq, item.envelope).encode(), WRITE_TIMEOUT
                            )
                            written.append(item)
                    finally:
                        self._mark_sent(written)
                    if written:
                        continue
                    if in_flight:
                        await wake.wait()
                        continue
                    with trio.move_on_after(STREAM_IDLE_SECONDS) as idle:
                        await wake.wait()
                    if idle.cancelled_caught:
                        break
            except (P2PDMError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.info("stream to %s broke: %s", peer.short(), exc)
            finally:
                self._reschedule_all(list(in_flight.values()), "no acknowledgement")
                failed.extend(in_flight.values())
                in_flight.clear()
                nursery.cancel_scope.cancel()
        return failed

    def _due_for(self, peer: PeerId) -> list[OutboxItem]:
        return self.node.store.outbox_for(peer, due_at_ms=self.node.now_ms(), limit=DM_WINDOW)

    def _undelivered(self, peer: PeerId) -> list[OutboxItem]:
        """What is queued for ``peer`` and not expired, due or not, oldest first."""
        now = self.node.now_ms()
        queued = self.node.store.outbox_for(peer, limit=MAX_DEPOSIT_BATCH)
        return [item for item in queued if item.expires_at_ms > now]

    def _mark_sent(self, items: list[OutboxItem]) -> None:
        """``sent``, in one transaction; and not due again until the ack is late."""
        if not items:
            return
        retry_at = self.node.now_ms() + int(ACK_TIMEOUT * 1000)
        with self.node.store.transaction():
            for item in items:
                self._set_status(item, DeliveryStatus.SENT)
                # Its ack may have come (and removed it) while the batch was written.
                with contextlib.suppress(NotFound):
                    self.node.store.reschedule_outbox(
                        item.envelope_id, retry_at, item.attempts, item.last_error
                    )

    async def _read_acks(
        self,
        stream: Stream,
        in_flight: dict[int, OutboxItem],
        window: trio.Semaphore,
        done: trio.Event,
    ) -> None:
        try:
            while True:
                if not in_flight:
                    frame = await stream.read_frame(
                        MAX_CONTROL_FRAME_BYTES, STREAM_IDLE_SECONDS * 2
                    )
                else:
                    frame = await stream.read_frame(MAX_CONTROL_FRAME_BYTES, ACK_TIMEOUT)
                acked: list[tuple[OutboxItem, Ack]] = []
                try:
                    while frame is not None:  # this ack and any that arrived with it
                        ack = decode_ack(frame)
                        item = in_flight.pop(ack.seq, None)
                        if item is None:
                            raise ProtocolViolation(f"ack for unknown frame {ack.seq}")
                        window.release()
                        acked.append((item, ack))
                        frame = stream.buffered_frame(MAX_CONTROL_FRAME_BYTES)
                finally:
                    self._on_acks(acked)
                if not acked:
                    return
        except (P2PDMError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError):
            log.info("acks from %s stopped", stream.remote_peer.short())
        finally:
            done.set()
            self.wake(stream.remote_peer)  # the sender may be waiting for work

    def _on_acks(self, acked: list[tuple[OutboxItem, Ack]]) -> None:
        """Apply a burst of acks in one transaction."""
        if not acked:
            return
        store = self.node.store
        with store.transaction():
            for item, ack in acked:
                if ack.result == "ok":
                    store.remove_outbox(item.envelope_id)
                    self._set_status(item, DeliveryStatus.DELIVERED)
                elif ack.result == "rejected":
                    store.remove_outbox(item.envelope_id)
                    detail = f"refused by recipient: {ack.detail}"
                    self._set_status(item, DeliveryStatus.FAILED, detail)
                else:
                    self._reschedule(item, f"recipient asked to retry: {ack.detail}")
                    self._note(item, f"recipient asked to retry: {ack.detail}; retrying")

    # --- mailboxes: depositing for offline recipients -------------------------

    async def _deposit(self, peer: PeerId, failed: list[OutboxItem]) -> None:
        """Leave undelivered envelopes at up to MAILBOX_COPIES mailboxes for ``peer``.

        They stay in the outbox: direct delivery goes on being retried. Each
        mailbox's refusal (over quota, too large, …) or error, and why direct
        delivery failed, is noted with the message (status detail, history,
        event); reaching at least one mailbox marks the message ``deposited``.
        """
        if not failed:
            return
        refusals = await self._deposit_at_mailboxes(peer, failed) if self.mailboxes else {}
        with self.node.store.transaction():
            for item in failed:
                self._note_round(item, refusals.get(item.envelope_id, []))

    async def _deposit_at_mailboxes(
        self, peer: PeerId, failed: list[OutboxItem]
    ) -> dict[bytes, list[str]]:
        """Deposit what needs more copies; returns each envelope's refusals and errors."""
        assert self.mailboxes is not None
        store = self.node.store
        now = self.node.now_ms()
        held: dict[bytes, set[PeerId]] = {}
        items: dict[bytes, OutboxItem] = {}
        for item in failed:
            if store.get_outbox(item.envelope_id) is None:
                continue  # delivered or confirmed meanwhile
            holders = {m for m, until in store.deposits(item.envelope_id) if until > now}
            if len(holders) < MAILBOX_COPIES:
                held[item.envelope_id], items[item.envelope_id] = holders, item
        refusals: defaultdict[bytes, list[str]] = defaultdict(list)
        if not items:
            return refusals
        reached = False
        for mailbox, addrs in await self.mailboxes.for_recipient(peer):
            todo = [
                items[eid]
                for eid, holders in held.items()
                if len(holders) < MAILBOX_COPIES and mailbox not in holders
            ]
            if not todo:
                break
            try:
                results = await self.mailbox_client.deposit(
                    mailbox, addrs, [item.envelope for item in todo]
                )
            except (P2PDMError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.info("mailbox %s unusable: %s", mailbox.short(), exc)
                for item in todo:
                    refusals[item.envelope_id].append(f"mailbox {mailbox.short()} unreachable")
                continue
            reached = True
            with store.transaction():  # one commit per mailbox, not per envelope
                for item, result in zip(todo, results, strict=True):
                    if result.ok:
                        until = min(result.until_s * 1000, item.expires_at_ms)
                        store.add_deposit(item.envelope_id, mailbox, until)
                        held[item.envelope_id].add(mailbox)
                    else:
                        refusals[item.envelope_id].append(
                            f"mailbox {mailbox.short()} refused: {describe_refusal(result)}"
                        )
        if not reached:
            self.mailboxes.forget()  # look them up afresh next time
        return refusals

    def _note_round(self, item: OutboxItem, refusals: list[str]) -> None:
        """Record how this round went for ``item``: ``deposited``, or a note saying why not."""
        store = self.node.store
        current = store.get_outbox(item.envelope_id)
        if current is None:
            return  # delivered (or confirmed) meanwhile
        now = self.node.now_ms()
        holders = [until for _, until in store.deposits(item.envelope_id) if until > now]
        parts = list(refusals)
        if current.last_error:
            parts.append(f"direct delivery: {current.last_error}")
        if holders:
            until = datetime.fromtimestamp(max(holders) / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            detail = "; ".join([f"held by {len(holders)} mailbox(es) until {until} UTC", *parts])
            if not self._set_status(item, DeliveryStatus.DEPOSITED, detail[:MAX_NOTE]):
                self._note(item, detail)
        elif parts:
            self._note(item, "; ".join([*parts, "retrying"]))

    # --- mailboxes: fetching our own ---------------------------------------------

    def fetch_now(self) -> None:
        """Fetch from our mailboxes now (start-up, reconnect, on demand)."""
        self._fetch_wake.set()

    async def run_fetcher(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Fetch from our mailboxes at once, then every FETCH_INTERVAL_SECONDS or when asked."""
        task_status.started()
        while True:
            self._fetch_wake = trio.Event()
            try:
                await self.fetch_mailboxes()
            except Exception:
                log.exception("fetching from mailboxes failed")
            with trio.move_on_after(FETCH_INTERVAL_SECONDS):
                await self._fetch_wake.wait()

    async def fetch_mailboxes(self) -> int:
        """One round: commit what our mailboxes hold for us, delete it there, queue receipts.

        Returns how many envelopes were newly accepted.
        """
        if self.mailboxes is None:
            return 0
        confirm: defaultdict[PeerId, list[bytes]] = defaultdict(list)
        accepted = 0

        def handle(via: PeerId, page: list[FetchedEnvelope]) -> list[int]:
            nonlocal accepted
            done = []
            outcomes = self._accept_all([item.envelope for item in page], via)
            for item, (result, _, received) in zip(page, outcomes, strict=True):
                if result != "retry":  # stored now or before, or never storable
                    done.append(item.seq)
                if received is not None:
                    accepted += 1
                    if received.message is not None:
                        confirm[received.sender].append(received.inner.id)
            return done

        limiter = trio.Semaphore(MAX_CONCURRENT_FETCHES)

        async def fetch_one(mailbox: PeerId, addrs: list[str]) -> None:
            async with limiter:
                try:
                    await self.mailbox_client.fetch(
                        mailbox, addrs, lambda page: handle(mailbox, page)
                    )
                except (P2PDMError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    log.info("fetching from mailbox %s failed: %s", mailbox.short(), exc)

        async with trio.open_nursery() as nursery:
            for mailbox, addrs in await self.mailboxes.own():
                nursery.start_soon(fetch_one, mailbox, addrs)
        for sender, ids in confirm.items():
            try:
                self.node.messenger.send_receipt(sender, "delivered", ids)
            except P2PDMError as exc:
                log.info("no delivery receipt for %s: %s", sender.short(), exc)
                continue
            self.node.on_outbox(sender)
        return accepted

    # --- receiving --------------------------------------------------------------

    async def handle_stream(self, stream: Stream) -> None:
        peer = stream.remote_peer
        if self._incoming[peer] >= MAX_STREAMS_PER_PEER:
            self.stream_failures.note(
                trio.current_time(), peer, "%s opened too many dm streams; refused", peer.short()
            )
            await stream.reset()
            return
        self._incoming[peer] += 1
        self._seen(peer)
        bucket = self._buckets.setdefault(
            peer, TokenBucket(MAX_RATE_PER_PEER, RATE_BURST_PER_PEER, at=trio.current_time())
        )
        try:
            await self._serve(stream, bucket)
        except (ProtocolViolation, WireError) as exc:
            self.stream_failures.note(
                trio.current_time(), peer, "disconnecting %s: %s", peer.short(), exc
            )
            await self.network.disconnect(peer)
            await stream.reset()
        except (P2PDMError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.reset()
        finally:
            self._incoming[peer] -= 1
            if not self._incoming[peer]:
                del self._incoming[peer]
                if len(self._buckets) > MAX_ACTIVE_SENDERS * 4:
                    self._buckets.pop(peer, None)

    async def _serve(self, stream: Stream, bucket: TokenBucket) -> None:
        peer = stream.remote_peer
        while True:
            frame = await stream.read_frame(_DELIVER_FRAME_BYTES, RECEIVE_IDLE_SECONDS)
            if frame is None:
                await stream.close()
                return
            delivers = [decode_deliver(frame)]
            # Frames that came with it are committed with it: one fsync a burst.
            while len(delivers) < MAX_COMMIT_GROUP and (
                more := stream.buffered_frame(_DELIVER_FRAME_BYTES)
            ):
                delivers.append(decode_deliver(more))
            for _ in delivers:
                if not bucket.take(trio.current_time()):
                    raise ProtocolViolation("sending faster than the per-peer rate limit")
            results = self.accept_group([d.envelope for d in delivers], peer)
            for deliver, (result, detail) in zip(delivers, results, strict=True):
                await stream.write_frame(Ack(deliver.seq, result, detail).encode(), WRITE_TIMEOUT)

    def accept_group(
        self, envelopes: Sequence[bytes], via: PeerId | None = None
    ) -> list[tuple[AckResult, str]]:
        """Commit several envelopes with one store commit; an ack result each.

        Each envelope is still accepted or refused alone. If the common
        commit fails, none is stored and each is answered ``retry``.
        """
        return [(result, detail) for result, detail, _ in self._accept_all(envelopes, via)]

    def _accept_all(
        self, envelopes: Sequence[bytes], via: PeerId | None
    ) -> list[tuple[AckResult, str, Received | None]]:
        """:meth:`accept_group`, also returning what was received."""
        accepted: list[tuple[AckResult, str, Received | None]] = []
        try:
            with self.node.store.group():
                accepted = [self._accept(e, via, notify=False) for e in envelopes]
        except StoreError as exc:
            log.error("could not store %d envelopes: %s", len(envelopes), exc)
            self.node.messenger.reload()
            return [("retry", "store unavailable", None)] * len(envelopes)
        for _, _, received in accepted:
            if received is not None:
                self.node.on_received(received)
        return accepted

    def accept(self, envelope: bytes, via: PeerId | None = None) -> tuple[AckResult, str]:
        """Commit one envelope; returns the ack result and a short reason."""
        result, detail, _ = self._accept(envelope, via)
        return result, detail

    def _accept(
        self, envelope: bytes, via: PeerId | None, *, notify: bool = True
    ) -> tuple[AckResult, str, Received | None]:
        try:
            received = self.node.messenger.receive(envelope)
        except ReplayError:
            # This very message was accepted before (same bytes, or the same
            # sender's same message id): never another sender's envelope.
            return "ok", "already stored", None
        except RateLimited:  # a stranger over the requests' rate: its node tries later
            return "retry", "rate limited", None
        except (
            WireError,
            WrongRecipient,
            DecryptError,
            SignatureError,
            EnvelopeExpired,
            SessionError,
            MessageIdConflict,
        ) as exc:
            self.refusals.note(
                trio.current_time(),
                via,
                "refused envelope via %s: %s",
                via.short() if via else "?",
                exc,
            )
            return "rejected", type(exc).__name__, None
        except StoreError as exc:
            log.error("could not store an envelope: %s", exc)
            return "retry", "store unavailable", None
        if isinstance(received.inner.body, ReceiptBody):
            self._confirmed(received.sender, received.inner.body.ids)
        if notify:
            self.node.on_received(received)
        return "ok", "", received

    def _confirmed(self, peer: PeerId, message_ids: Sequence[bytes]) -> None:
        """A receipt from ``peer`` confirms these messages: stop sending them."""
        ids = set(message_ids)
        store = self.node.store
        for item in store.outbox_for(peer):
            if item.message_id in ids:
                store.remove_outbox(item.envelope_id)
