"""Accepting envelopes: the ``/p2pdm/dm/1.0.0`` stream handler and the commit path.

How this works: the handler admits a stream through the dm
:class:`~p2pdm.services.inbound.InboundGuard` (streams per peer, rate,
disconnect on a protocol breach), reads deliver frames under a deadline,
commits each burst of envelopes that arrived together in one store commit
through the messenger, and acks each one (a burst's acks in one write):
``ok`` (stored now or before), ``rejected`` (can never be stored) or
``retry`` (a local problem, or a stranger over its rate). Envelopes fetched
from mailboxes take the same commit path (:meth:`Receiver.accept_all`). A
burst of at least ``MIN_THREADED_OPENING`` envelopes on a stream is decoded and opened (the
sealed box: an X25519 agreement in libsodium, which releases the GIL) in a
worker thread first, at most ``MAX_OPENING_THREADS`` threads at once; the
session work then runs on the event loop in arrival order, so each
conversation's messages are processed in order, and the burst's commit (its
fsync) in a worker thread (:class:`~p2pdm.node.offloop.OffLoopCommits`):
the loop reads, opens and acks other streams meanwhile, and this burst is
acked and published once its commit returned.

A blocked peer learns nothing (docs/protocol.md §18.1): its dm streams are
reset before a frame is read (one open when it was blocked, at its next
frame, before that frame is read into an envelope), so its node sees it as unreachable and
deposits at mailboxes; what a mailbox brings from it is deleted there
unseen and never receipted; an envelope of a blocked sender relayed on
another peer's stream is answered ``retry``, never ``ok``. A receipt stops the outbox
resending what it confirms. The node's observer hears of each envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio
import trio.lowlevel

from p2pdm.core.dm import DM_PROTOCOL, Ack, AckResult, decode_deliver
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import BlobChunkBody, LiveLocationBody, UnsendBody
from p2pdm.core.ratelimit import FailureLog, TokenBucket
from p2pdm.core.sealing import Opened, open_ahead
from p2pdm.errors import (
    DecryptError,
    EnvelopeExpired,
    MessageIdConflict,
    P2PDMError,
    PeerBlocked,
    ProtocolViolation,
    RateLimited,
    ReplayError,
    SessionError,
    SignatureError,
    StampMissing,
    StoreError,
    WireError,
    WrongRecipient,
)
from p2pdm.net.stream import Stream
from p2pdm.node.live_location import receive_live_location
from p2pdm.node.messenger import Received
from p2pdm.node.observer import Path
from p2pdm.node.offloop import off_loop
from p2pdm.services.inbound import InboundGuard, InboundLimits
from p2pdm.services.limits import (
    DELIVER_FRAME_BYTES,
    MAX_COMMIT_GROUP,
    MAX_OPENING_THREADS,
    MAX_RATE_BUCKETS,
    MAX_RATE_PER_PEER,
    MAX_STREAMS_PER_PEER,
    MIN_THREADED_OPENING,
    RATE_BURST_PER_PEER,
    RECEIVE_IDLE_SECONDS,
    WRITE_TIMEOUT,
)
from p2pdm.services.ports import Network

if TYPE_CHECKING:
    from p2pdm.node.node import Node

__all__ = ["INBOUND_LIMITS", "Accepted", "Receiver"]

log = logging.getLogger("p2pdm.services.dm")

#: Who may open how many dm streams, and how fast they may deliver.
INBOUND_LIMITS = InboundLimits(
    streams_per_peer=MAX_STREAMS_PER_PEER,
    rate=MAX_RATE_PER_PEER,
    burst=RATE_BURST_PER_PEER,
    max_buckets=MAX_RATE_BUCKETS,
)

#: One envelope's ack result, a short reason, and what it was if accepted now.
Accepted = tuple[AckResult, str, Received | None]


class Receiver:
    """Serves ``/p2pdm/dm/1.0.0`` for ``node`` and commits what arrives."""

    def __init__(self, node: Node, network: Network) -> None:
        self.node = node
        self.network = network
        #: Per-peer throttles of failure logs: a flood costs a few lines, not one each.
        self.refusals = FailureLog(log, "refused envelopes")
        self.stream_failures = FailureLog(log, "dm stream failures", level=logging.WARNING)
        self.inbound = InboundGuard("dm", network, INBOUND_LIMITS, self.stream_failures)
        self._opening = trio.CapacityLimiter(MAX_OPENING_THREADS)
        network.set_handler(DM_PROTOCOL, self.handle_stream)

    def seen(self, peer: PeerId) -> None:
        """A contact is reachable: keep its addresses and the time in the address book."""
        self.node.set_contact_addrs(peer, self.network.peer_addrs(peer))

    async def handle_stream(self, stream: Stream) -> None:
        await self.inbound.serve(stream, self._serve)

    async def _serve(self, stream: Stream, bucket: TokenBucket) -> None:
        peer = stream.remote_peer
        if self.node.store.is_blocked(peer):
            self.node.messenger.dropped_blocked += 1
            await stream.reset()
            return
        self.seen(peer)
        while True:
            frame = await stream.read_frame(DELIVER_FRAME_BYTES, RECEIVE_IDLE_SECONDS)
            if frame is None:
                await stream.close()
                return
            if self.node.store.is_blocked(peer):
                # Blocked while this stream was open: reset it as a new one is,
                # never a "retry" ack (that would tell the sender more).
                self.node.messenger.dropped_blocked += 1
                await stream.reset()
                return
            delivers = [decode_deliver(frame)]
            # Frames that came with it are committed with it: one fsync a burst.
            while len(delivers) < MAX_COMMIT_GROUP and (
                more := stream.buffered_frame(DELIVER_FRAME_BYTES)
            ):
                delivers.append(decode_deliver(more))
            for _ in delivers:
                if not bucket.take(trio.current_time()):
                    raise ProtocolViolation("sending faster than the per-peer rate limit")
            envelopes = [d.envelope for d in delivers]
            opened = await self.open_all(envelopes)
            # Acked only once committed; the commit's fsync in a worker thread.
            accepted = await self.accept_all_off_loop(envelopes, peer, "direct", opened)
            results = [(result, detail) for result, detail, _ in accepted]
            # The burst's acks in one write: one Yamux frame and Noise message, not one each.
            await stream.write_frames(
                [
                    Ack(deliver.seq, result, detail).encode()
                    for deliver, (result, detail) in zip(delivers, results, strict=True)
                ],
                WRITE_TIMEOUT,
            )

    async def open_all(self, envelopes: Sequence[bytes]) -> list[Opened | None]:
        """Decode and open ``envelopes`` (in a worker thread if they are
        at least MIN_THREADED_OPENING): for each, what
        :func:`~p2pdm.core.sealing.open_ahead` gave, or None if it is no
        envelope (the messenger refuses it again in its turn)."""
        identity = self.node.identity

        def open_each() -> list[Opened | None]:
            opened: list[Opened | None] = []
            for data in envelopes:
                try:
                    opened.append(open_ahead(identity, data))
                except P2PDMError:
                    opened.append(None)
            return opened

        if len(envelopes) < MIN_THREADED_OPENING:
            return open_each()
        return await off_loop(open_each, limiter=self._opening)

    def accept_group(
        self,
        envelopes: Sequence[bytes],
        via: PeerId | None = None,
        opened: Sequence[Opened | None] | None = None,
    ) -> list[tuple[AckResult, str]]:
        """Commit several envelopes that came on a dm stream with one store commit; an ack
        result each.

        Each envelope is still accepted or refused alone. If the common
        commit fails, none is stored and each is answered ``retry``.
        """
        accepted = self.accept_all(envelopes, via, "direct", opened)
        return [(result, detail) for result, detail, _ in accepted]

    def accept_all(
        self,
        envelopes: Sequence[bytes],
        via: PeerId | None,
        path: Path,
        opened: Sequence[Opened | None] | None = None,
    ) -> list[Accepted]:
        """:meth:`accept_group` for envelopes that came by ``path``, also returning what
        was received; ``opened``: each one as :meth:`open_all` gave it."""
        try:
            accepted = self._accept_grouped(envelopes, via, path, opened)
        except StoreError as exc:
            return self._store_failed(len(envelopes), exc)
        self._notify_all(accepted, path)
        return accepted

    async def accept_all_off_loop(
        self,
        envelopes: Sequence[bytes],
        via: PeerId | None,
        path: Path,
        opened: Sequence[Opened | None] | None = None,
    ) -> list[Accepted]:
        """:meth:`accept_all` with the group's commit in a worker thread: the
        loop serves other streams while the disk syncs. What was received is
        published once the commit returned (even if this task was cancelled
        meanwhile: the wait is shielded); a failed commit stores nothing and
        answers ``retry`` to each."""
        try:
            accepted = await self.node.commits.run(
                lambda: self._accept_grouped(envelopes, via, path, opened),
                self.node.messenger.reload,
            )
        except StoreError as exc:
            return self._store_failed(len(envelopes), exc)
        self._notify_all(accepted, path)
        return accepted

    def _accept_grouped(
        self,
        envelopes: Sequence[bytes],
        via: PeerId | None,
        path: Path,
        opened: Sequence[Opened | None] | None,
    ) -> list[Accepted]:
        """Each envelope accepted or refused alone, all in one store group."""
        ahead = opened if opened is not None else [None] * len(envelopes)
        with self.node.store.group():
            return [self._accept(e, via, path, o) for e, o in zip(envelopes, ahead, strict=True)]

    def _store_failed(self, count: int, exc: StoreError) -> list[Accepted]:
        """The group's commit failed: nothing of it stored, each answered ``retry``."""
        log.error("could not store %d envelopes: %s", count, exc)
        self.node.messenger.reload()
        return [("retry", "store unavailable", None)] * count

    def _notify_all(self, accepted: Sequence[Accepted], path: Path) -> None:
        for _, _, received in accepted:
            if received is not None:
                self._notify(received, path)

    def accept(
        self, envelope: bytes, via: PeerId | None = None, path: Path = "mailbox"
    ) -> tuple[AckResult, str]:
        """Commit one envelope; returns the ack result and a short reason."""
        result, detail, received = self._accept(envelope, via, path)
        if received is not None:
            self._notify(received, path)
        return result, detail

    def _notify(self, received: Received, path: Path) -> None:
        try:
            # A received message's files were recorded with it (Messenger.on_stored).
            if isinstance(received.inner.body, BlobChunkBody) and received.outcome == "other":
                self.node.media.accept_pushed(received.sender, received.inner.body)
            elif isinstance(received.inner.body, LiveLocationBody) and received.outcome == "other":
                body = received.inner.body
                receive_live_location(
                    self.node,
                    received.sender,
                    body,
                    direct=path == "direct",
                    conversation_id=received.inner.conversation,
                )
            elif isinstance(received.inner.body, UnsendBody):
                # An unsend that applied released its message's files with its body.
                self.node.media.collect()
        except P2PDMError as exc:
            log.error("could not record the files of a message: %s", exc)
        self.node.groups_after_received()  # group changes some members were not told
        self.node.on_received(received)
        self.node.observer.envelope_accepted(received, path)

    def _receive(self, envelope: bytes, path: Path, opened: Opened | None) -> Received:
        """The messenger's verdict on ``envelope``; the observer hears of a refusal."""
        try:
            return self.node.messenger.receive(envelope, path, opened)
        except P2PDMError as exc:
            self.node.observer.envelope_refused(exc)
            raise

    def _accept(
        self, envelope: bytes, via: PeerId | None, path: Path, opened: Opened | None = None
    ) -> Accepted:
        try:
            received = self._receive(envelope, path, opened)
        except ReplayError:
            # This very message was accepted before (same bytes, or the same
            # sender's same message id): never another sender's envelope.
            return "ok", "already stored", None
        except RateLimited:  # a stranger over the requests' rate: its node tries later
            return "retry", "rate limited", None
        except PeerBlocked:
            # Gone from the mailbox unseen; never "ok" on a stream (that says delivered).
            return ("ok", "", None) if path == "mailbox" else ("retry", "", None)
        except (
            WireError,
            WrongRecipient,
            DecryptError,
            SignatureError,
            EnvelopeExpired,
            SessionError,
            MessageIdConflict,
            StampMissing,
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
        if received.effects.confirms:
            self._confirmed(received.sender, received.effects.confirms)
        return "ok", "", received

    def _confirmed(self, peer: PeerId, message_ids: Sequence[bytes]) -> None:
        """A receipt from ``peer`` confirms these messages: stop sending them."""
        ids = set(message_ids)
        store = self.node.store
        for item in store.outbox_for(peer):
            if item.message_id in ids:
                store.remove_outbox(item.envelope_id)
