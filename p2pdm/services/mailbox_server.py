"""The mailbox service: holding envelopes for recipients that are offline.

How this works: a node run with ``--mailbox`` serves ``/p2pdm/mailbox/1.0.0``
(frames in :mod:`p2pdm.core.mailbox`) and announces itself as a provider of
``MAILBOX_SERVICE_KEY`` in the DHT. Registering the stream handler is also
what makes identify list the protocol. Each stream is a sequence of
request/reply pairs:

* a deposit is checked (size, strict envelope decoding, its id against its
  content, expiry, the depositor's rate, quotas) and committed in one store
  transaction, so quotas hold under any interleaving. Quotas are fair across depositors
  (the authenticated PeerID of the connection): one holds at most a share of
  a recipient's quota, and past a fill level every deposit for that
  recipient costs a proof-of-work stamp, so fresh identities stop being free;
* withdraw (``/p2pdm/mailbox/1.1.0`` only) removes the envelopes deposited
  under the hashes of the secrets presented, for whoever presents them;
* fetch and delete need a good answer to a challenge issued on the same
  stream; they only ever see the authenticated recipient's rows.

Everything a hostile peer can make us spend is bounded: concurrent streams
(global and per peer), requests per second per peer, frame size, idle time,
failed challenge answers. A peer that breaks a limit or sends a frame that is
not a mailbox request is disconnected; the others are not affected. What a
mailbox keeps is recipient, envelope, size and times, and of the depositor
only a tag keyed by a secret that lives in memory: a copy of the store does
not tell who deposited what (after a restart old tags match nobody).
Expired envelopes are purged periodically and before a deposit is refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import trio

from p2pdm.core import mailbox as mb
from p2pdm.core.identity import PeerId
from p2pdm.core.ratelimit import FailureLog, TokenBucket
from p2pdm.core.wire import Envelope
from p2pdm.errors import (
    EnvelopeIdMismatch,
    P2PDMError,
    PeerUnreachable,
    ProtocolViolation,
    SchemaError,
    SignatureError,
    StoreError,
    WireError,
)
from p2pdm.limits import MAX_FRAME_BYTES
from p2pdm.net.stream import Stream
from p2pdm.services.inbound import InboundGuard, InboundLimits, bucket_of
from p2pdm.services.limits import (  # re-exported: tests and the simulator use them here
    MAILBOX_BURST_PER_PEER,
    MAILBOX_DEPOSIT_BURST_PER_PEER,
    MAILBOX_DEPOSIT_RATE_PER_PEER,
    MAILBOX_DEPOSITOR_SHARE,
    MAILBOX_IDLE_SECONDS,
    MAILBOX_MAX_AUTH_FAILURES,
    MAILBOX_MAX_BUCKETS,
    MAILBOX_MAX_BYTES,
    MAILBOX_MAX_BYTES_PER_RECIPIENT,
    MAILBOX_MAX_ENVELOPE_BYTES,
    MAILBOX_MAX_ENVELOPES,
    MAILBOX_MAX_ENVELOPES_PER_RECIPIENT,
    MAILBOX_MAX_STREAMS,
    MAILBOX_MAX_STREAMS_PER_PEER,
    MAILBOX_PROVIDE_INTERVAL_SECONDS,
    MAILBOX_PROVIDE_RETRY_SECONDS,
    MAILBOX_PROVIDE_WARN_FAILURES,
    MAILBOX_PROVIDE_WARN_SECONDS,
    MAILBOX_PURGE_INTERVAL_SECONDS,
    MAILBOX_RATE_PER_PEER,
    MAILBOX_RETENTION_SECONDS,
    MAILBOX_STAMP_BITS,
    MAILBOX_STAMP_FILL_PERCENT,
    MAILBOX_WRITE_TIMEOUT,
)
from p2pdm.services.ports import Network
from p2pdm.store.roles import MailboxStore

__all__ = [
    "DEFAULT_LIMITS",
    "INBOUND_LIMITS",
    "MAILBOX_BURST_PER_PEER",
    "MAILBOX_DEPOSITOR_SHARE",
    "MAILBOX_DEPOSIT_BURST_PER_PEER",
    "MAILBOX_DEPOSIT_RATE_PER_PEER",
    "MAILBOX_IDLE_SECONDS",
    "MAILBOX_MAX_AUTH_FAILURES",
    "MAILBOX_MAX_BUCKETS",
    "MAILBOX_MAX_BYTES",
    "MAILBOX_MAX_BYTES_PER_RECIPIENT",
    "MAILBOX_MAX_ENVELOPES",
    "MAILBOX_MAX_ENVELOPES_PER_RECIPIENT",
    "MAILBOX_MAX_ENVELOPE_BYTES",
    "MAILBOX_MAX_STREAMS",
    "MAILBOX_MAX_STREAMS_PER_PEER",
    "MAILBOX_PROVIDE_INTERVAL_SECONDS",
    "MAILBOX_PROVIDE_RETRY_SECONDS",
    "MAILBOX_PROVIDE_WARN_FAILURES",
    "MAILBOX_PROVIDE_WARN_SECONDS",
    "MAILBOX_PURGE_INTERVAL_SECONDS",
    "MAILBOX_RATE_PER_PEER",
    "MAILBOX_RETENTION_SECONDS",
    "MAILBOX_STAMP_BITS",
    "MAILBOX_STAMP_FILL_PERCENT",
    "MAILBOX_WRITE_TIMEOUT",
    "MailboxService",
]

log = logging.getLogger("p2pdm.services.mailbox_server")

DEFAULT_LIMITS: Final = mb.MailboxLimits(
    retention_s=MAILBOX_RETENTION_SECONDS,
    max_envelope_bytes=MAILBOX_MAX_ENVELOPE_BYTES,
    per_recipient_count=MAILBOX_MAX_ENVELOPES_PER_RECIPIENT,
    per_recipient_bytes=MAILBOX_MAX_BYTES_PER_RECIPIENT,
    total_count=MAILBOX_MAX_ENVELOPES,
    total_bytes=MAILBOX_MAX_BYTES,
    depositor_share=MAILBOX_DEPOSITOR_SHARE,
    stamp_fill_percent=MAILBOX_STAMP_FILL_PERCENT,
    stamp_bits=MAILBOX_STAMP_BITS,
)
#: Who may open how many mailbox streams, and how fast they may ask.
INBOUND_LIMITS: Final = InboundLimits(
    streams_per_peer=MAILBOX_MAX_STREAMS_PER_PEER,
    rate=MAILBOX_RATE_PER_PEER,
    burst=MAILBOX_BURST_PER_PEER,
    max_buckets=MAILBOX_MAX_BUCKETS,
    streams=MAILBOX_MAX_STREAMS,
)
#: The key of the depositor tags; random per run, never stored.
_TAG_KEY_BYTES: Final = 32
_TAG_BYTES: Final = 16


class _Refused(Exception):
    """A deposit over a quota; raised inside the transaction to undo the add."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _Session:
    """What one stream has proved so far."""

    #: The authenticated PeerID of the connection: the depositor.
    peer: PeerId | None = None
    nonce: bytes | None = None
    recipient: PeerId | None = None
    auth_failures: int = 0


class MailboxService:
    """Serves ``/p2pdm/mailbox/1.0.0`` from ``store`` for everyone who asks."""

    def __init__(
        self,
        store: MailboxStore,
        peer_id: PeerId,
        network: Network,
        *,
        now_ms: Callable[[], int],
        random_bytes: Callable[[int], bytes] = os.urandom,
        limits: mb.MailboxLimits = DEFAULT_LIMITS,
    ) -> None:
        self.store = store
        self.peer_id = peer_id
        self.network = network
        self.now_ms = now_ms
        self.random_bytes = random_bytes
        self.limits = limits
        self._deposit_buckets: dict[PeerId, TokenBucket] = {}
        self._tag_key = random_bytes(_TAG_KEY_BYTES)
        #: Envelopes their depositors took back since this mailbox started.
        self.withdrawn = 0
        #: Per-peer throttle of failure logs: a flood costs a few lines, not one each.
        self.failures = FailureLog(log, "mailbox stream failures")
        self.inbound = InboundGuard("mailbox", network, INBOUND_LIMITS, self.failures)
        network.set_handler(mb.MAILBOX_PROTOCOL, self.handle_stream)
        network.set_handler(mb.MAILBOX_PROTOCOL_WITHDRAW, self.handle_stream)

    def usage(self) -> dict[str, int]:
        """What this mailbox holds now, beside its quotas (for the local API)."""
        envelopes, held = self.store.mailbox_usage()
        return {
            "envelopes": envelopes,
            "bytes": held,
            "recipients": self.store.mailbox_recipients(),
            "max_envelopes": self.limits.total_count,
            "max_bytes": self.limits.total_bytes,
            "max_envelopes_per_recipient": self.limits.per_recipient_count,
            "max_bytes_per_recipient": self.limits.per_recipient_bytes,
            "retention_s": self.limits.retention_s,
            "withdrawn": self.withdrawn,
        }

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Purge expired envelopes and keep the provider record fresh, forever."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._purge_loop)
            nursery.start_soon(self._provide_loop)
            task_status.started()

    async def _purge_loop(self) -> None:
        while True:
            try:
                purged = self.store.mailbox_purge(self.now_ms())
                if purged:
                    log.info("purged %d expired envelopes", purged)
            except StoreError as exc:
                log.error("mailbox purge failed: %s", exc)
            await trio.sleep(MAILBOX_PURGE_INTERVAL_SECONDS)

    async def _provide_loop(self) -> None:
        """Announce the service hourly, and every MAILBOX_PROVIDE_RETRY_SECONDS while
        nobody takes the provider record.

        The first node of a network has nobody to take it: failures are debug
        lines until they have lasted MAILBOX_PROVIDE_WARN_SECONDS over at least
        MAILBOX_PROVIDE_WARN_FAILURES tries in a row (then one warning). The
        first success, and the first after a warning, is one info line.
        """
        failures, failing_since, announced, warned = 0, 0.0, False, False
        while True:
            try:
                await self.network.provide(mb.MAILBOX_SERVICE_KEY)
            except (PeerUnreachable, P2PDMError) as exc:
                now = trio.current_time()
                failing_since = now if failures == 0 else failing_since
                failures += 1
                log.debug("announcing the mailbox service failed (try %d): %s", failures, exc)
                lasted = now - failing_since
                lasting = (
                    failures >= MAILBOX_PROVIDE_WARN_FAILURES
                    and lasted >= MAILBOX_PROVIDE_WARN_SECONDS
                )
                if lasting and not warned:
                    log.warning(
                        "announcing the mailbox service has failed %d times in a row "
                        "for %d minutes (%s); senders cannot find this mailbox in the DHT "
                        "until it works: check the bootstrap peers",
                        failures,
                        lasted // 60,
                        exc,
                    )
                    warned = True
                delay = MAILBOX_PROVIDE_RETRY_SECONDS
            else:
                level = logging.INFO if not announced or warned else logging.DEBUG
                log.log(level, "announced the mailbox service in the DHT")
                failures, announced, warned = 0, True, False
                delay = MAILBOX_PROVIDE_INTERVAL_SECONDS
            await trio.sleep(delay)

    # --- the stream handler -----------------------------------------------------

    async def handle_stream(self, stream: Stream) -> None:
        await self.inbound.serve(stream, self._serve)

    async def _serve(self, stream: Stream, bucket: TokenBucket) -> None:
        session = _Session(peer=stream.remote_peer)
        withdraw = stream.protocol == mb.MAILBOX_PROTOCOL_WITHDRAW
        while True:
            frame = await stream.read_frame(mb.MAX_REQUEST_FRAME_BYTES, MAILBOX_IDLE_SECONDS)
            if frame is None:
                await stream.close()
                return
            if not bucket.take(trio.current_time()):
                raise ProtocolViolation("more mailbox requests than the per-peer rate limit")
            reply = self.answer(session, mb.decode_request(frame, withdraw=withdraw))
            await stream.write_frame(reply.encode(), MAILBOX_WRITE_TIMEOUT)

    def answer(self, session: _Session, request: mb.Request) -> mb.Reply:
        """The reply to one request on a stream whose state is ``session``.

        Raises ProtocolViolation after too many wrong challenge answers.
        """
        if isinstance(request, mb.Deposit):
            return self.deposit(request.envelope, session.peer, request.stamp, request.withdraw)
        if isinstance(request, mb.Withdraw):
            return self.withdraw(request.secrets)
        if isinstance(request, mb.UnknownRequest):
            return mb.Result(mb.UNKNOWN_REQUEST, f"no request {request.kind!r} here")
        if isinstance(request, mb.ChallengeRequest):
            session.nonce = self.random_bytes(mb.NONCE_BYTES)
            return mb.ChallengeReply(session.nonce)
        if isinstance(request, mb.Auth):
            nonce, session.nonce = session.nonce, None  # one answer per challenge
            try:
                if nonce is None:
                    raise SignatureError("no challenge was asked for on this stream")
                mb.verify_auth(self.peer_id, nonce, request.peer, request.signature)
            except SignatureError as exc:
                session.auth_failures += 1
                if session.auth_failures >= MAILBOX_MAX_AUTH_FAILURES:
                    raise ProtocolViolation("too many wrong challenge answers") from None
                return mb.Result(mb.UNAUTHORIZED, str(exc))
            session.recipient = request.peer
            return mb.Result(mb.OK)
        if session.recipient is None:
            return mb.Result(mb.UNAUTHORIZED, "answer a challenge first")
        try:
            if isinstance(request, mb.Fetch):
                return self.fetch(session.recipient, request.after)
            deleted = self.store.mailbox_delete(session.recipient, request.seqs)
        except StoreError as exc:
            log.error("mailbox store failed: %s", exc)
            return mb.Result(mb.UNAVAILABLE, "store unavailable")
        return mb.Result(mb.OK, count=deleted)

    # --- what the requests do -------------------------------------------------

    def deposit(
        self,
        data: bytes,
        depositor: PeerId | None = None,
        stamp: bytes | None = None,
        withdraw: bytes | None = None,
    ) -> mb.Result:
        """Hold one envelope for its recipient, or say why not.

        ``depositor``: the PeerID of the connection (None: a local deposit,
        not rate-limited); ``stamp``: its proof of work, if it sent one;
        ``withdraw``: the hash of its withdraw secret, if it gave one.
        """
        limits = self.limits
        if depositor is not None and not bucket_of(
            self._deposit_buckets,
            depositor,
            MAILBOX_DEPOSIT_RATE_PER_PEER,
            MAILBOX_DEPOSIT_BURST_PER_PEER,
            MAILBOX_MAX_BUCKETS,
        ).take(trio.current_time()):
            return mb.Result(mb.RATE_LIMITED, "too many deposits from you; try again later")
        if len(data) > limits.max_envelope_bytes:
            return mb.Result(mb.TOO_LARGE, f"envelopes are at most {limits.max_envelope_bytes} B")
        try:
            envelope = Envelope.decode(data)
            envelope.recipient.x25519_public_key  # noqa: B018 - raises if it cannot receive
        except (WireError, SchemaError) as exc:
            return mb.Result(mb.BAD_ENVELOPE, str(exc))
        try:
            envelope.check_id()
        except EnvelopeIdMismatch as exc:  # another envelope's id, or an old p2pdm's
            return mb.Result(mb.BAD_ID, str(exc))
        now = self.now_ms()
        if envelope.expires_at_s * 1000 <= now:
            return mb.Result(mb.EXPIRED, "the envelope has expired")
        until_ms = min(envelope.expires_at_s * 1000, now + limits.retention_s * 1000)
        tag = self._tag(depositor)
        item = mb.StoredEnvelope(
            envelope.recipient, envelope.id, data, now, until_ms, 0, tag, withdraw or b""
        )
        stamped = stamp is not None and mb.verify_stamp(
            self.peer_id, envelope.recipient, data, now, stamp, limits.stamp_bits
        )
        store = self.store
        try:
            with store.transaction():
                # Add first, so that a repeated deposit is "already held" even at quota.
                held, new = store.mailbox_add(item)
                if new and (code := self._room_for(item, now, stamped)) != mb.OK:
                    raise _Refused(code)  # rolls the add back
        except _Refused as refused:
            return _refusal(refused.code, limits.stamp_bits)
        except StoreError as exc:
            log.error("mailbox store failed: %s", exc)
            return mb.Result(mb.UNAVAILABLE, "store unavailable")
        return mb.Result(mb.OK, "" if new else "already held", until_s=held.expires_at_ms // 1000)

    def withdraw(self, secrets: tuple[bytes, ...]) -> mb.Result:
        """Remove what was deposited under these secrets' hashes (wrong ones remove nothing)."""
        try:
            removed = self.store.mailbox_withdraw([mb.withdraw_hash(s) for s in secrets])
        except StoreError as exc:
            log.error("mailbox store failed: %s", exc)
            return mb.Result(mb.UNAVAILABLE, "store unavailable")
        self.withdrawn += removed
        return mb.Result(mb.OK, count=removed)

    def _tag(self, depositor: PeerId | None) -> bytes:
        """The depositor's tag: keyed by a per-run secret, so the store alone cannot name it."""
        if depositor is None:
            return b""
        return hashlib.blake2b(
            depositor.raw, key=self._tag_key, digest_size=_TAG_BYTES, person=b"p2pdm-depositor"
        ).digest()

    def _room_for(self, item: mb.StoredEnvelope, now: int, stamped: bool) -> str:
        """Quota check of a just-added ``item``, in its transaction; purges once before refusing."""
        store = self.store

        def check() -> str:
            # Usage without the item itself: the rule asks whether it fits.
            def without_item(usage: tuple[int, int]) -> tuple[int, int]:
                return usage[0] - 1, usage[1] - item.size

            return mb.check_deposit(
                self.limits,
                item.size,
                without_item(store.mailbox_usage(item.recipient)),
                without_item(store.mailbox_usage()),
                without_item(store.mailbox_usage(item.recipient, item.depositor)),
                stamped=stamped,
            )

        code = check()
        if code != mb.OK and store.mailbox_purge(now):
            code = check()
        return code

    def fetch(self, recipient: PeerId, after: int) -> mb.Envelopes:
        """One page of ``recipient``'s envelopes after ``after``, within one reply frame."""
        page = self.store.mailbox_fetch(recipient, after, self.now_ms(), mb.MAX_FETCH_ITEMS)
        items: list[mb.FetchedEnvelope] = []
        used = 0
        for held in page:
            if items and used + held.size > MAX_FRAME_BYTES:
                return mb.Envelopes(tuple(items), more=True)
            items.append(mb.FetchedEnvelope(held.seq, held.envelope))
            used += held.size
        return mb.Envelopes(tuple(items), more=len(page) == mb.MAX_FETCH_ITEMS)


#: What each refusal tells the depositor (the client shows it to its user).
_REFUSAL_DETAILS: Final = {
    mb.FULL: "the mailbox is full; try another mailbox",
    mb.OVER_QUOTA: "quota for this recipient used up; try another mailbox",
    mb.OVER_SHARE: "your share of this recipient's quota is used up; try another mailbox",
    mb.STAMP_REQUIRED: "this recipient's quota is half used: deposit with a stamp",
}


def _refusal(code: str, bits: int) -> mb.Result:
    detail = _REFUSAL_DETAILS.get(code, "refused")
    return mb.Result(code, detail, bits=bits if code == mb.STAMP_REQUIRED else 0)
