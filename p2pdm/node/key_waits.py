"""Messages to a peer whose prekeys are not found yet: kept, looked up again, sent.

How this works: a contact added by PeerID alone has no prekey bundle; the
node looks it up in the DHT when the first message is sent. A node that has
just started may not have published its record yet, so the lookup can miss.
The message is then not refused: :meth:`KeyWaits.hold_text` stores it as any
outgoing message is (``queued``, plaintext in the message store, its status
history saying "waiting for Bob's keys: …") with a
:class:`~p2pdm.store.key_waits.KeyWait` row instead of an envelope, in one
transaction. :func:`key_lookup_loop` (run beside the delivery service) looks
each waiting peer up again, backing off from KEY_LOOKUP_FIRST_S to
KEY_LOOKUP_MAX_INTERVAL_S (the pure :class:`LookupSchedule`); when the bundle
is found (or a session appeared: the peer wrote first, or was added from an
invite) each waiting message is encrypted, its envelope queued and its row
dropped in one transaction, oldest first, and delivery goes on as for any
message. A message still waiting after KEY_WAIT_TTL_MS (the 14 days any
undelivered envelope gets) fails with a note that says why. Rows are read
from the store when the loop starts, so a restart keeps every waiting message.
Later messages to a peer that has some waiting wait behind them, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

from p2pdm.core import conversation
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import Body, TextBody, spec_for
from p2pdm.core.model import (
    MESSAGE_ID_BYTES,
    DeliveryStatus,
    OutboxItem,
    StoredMessage,
    direct_conversation_id,
)
from p2pdm.core.sealing import EPHEMERAL_SECRET_BYTES, seal
from p2pdm.core.wire import InnerMessage, PrekeyBundle
from p2pdm.errors import PeerBlocked, SchemaError, SessionError, WireError
from p2pdm.limits import ENVELOPE_TTL_SECONDS, KEY_WAIT_TTL_MS, MAX_KEY_WAITS, MAX_TEXT_BYTES
from p2pdm.node.actions import action_expiry_s
from p2pdm.node.contact_names import name_from_invite
from p2pdm.node.media import MediaLibrary, media_of, push_files
from p2pdm.node.notices import apply_timer, sender_copy
from p2pdm.store.base import Store, log_event
from p2pdm.store.key_waits import KeyWait

if TYPE_CHECKING:
    from p2pdm.node.messenger import Messenger

__all__ = [
    "KEY_LOOKUP_FIRST_S",
    "KEY_LOOKUP_MAX_INTERVAL_S",
    "KeyWaits",
    "LookupSchedule",
    "key_lookup_loop",
]

log = logging.getLogger("p2pdm.node.key_waits")

#: The first lookup again after a miss (seconds): a node that has just
#: started publishes its record within seconds, so the first tries come soon.
KEY_LOOKUP_FIRST_S: Final = 5
#: The longest pause between two lookups of one peer (seconds): each lookup
#: is a DHT query, so an unfound peer costs at most 4 an hour (~1,350 over
#: KEY_WAIT_TTL_MS), and a peer that comes online is found within this.
KEY_LOOKUP_MAX_INTERVAL_S: Final = 15 * 60


def waiting_note(who: str) -> str:
    """The status note of a message waiting for ``who``'s prekeys."""
    return f"waiting for {who}'s keys: {who} is not found in the network yet"


def never_found_note(who: str) -> str:
    """The status note of a message that failed because ``who`` was never found."""
    days = KEY_WAIT_TTL_MS // 86_400_000
    return (
        f"{who} was not found in the network in {days} days, so it was never sent; "
        f"add {who} from an invite and send it again"
    )


@dataclass(slots=True)
class _Due:
    attempts: int
    next_at_ms: int
    #: The soonest expiry of the peer's waiting messages.
    expires_at_ms: int


class LookupSchedule:
    """When each peer with waiting messages is looked up next (no I/O, no clock).

    At most one entry per peer with a waiting message (MAX_KEY_WAITS bounds both).
    """

    def __init__(self) -> None:
        self._due: dict[PeerId, _Due] = {}

    def __contains__(self, peer: object) -> bool:
        return peer in self._due

    def add(self, peer: PeerId, now_ms: int, expires_at_ms: int) -> None:
        """``peer`` has a waiting message: look it up now if it is new."""
        found = self._due.get(peer)
        if found is None:
            self._due[peer] = _Due(0, now_ms, expires_at_ms)
        else:
            found.expires_at_ms = min(found.expires_at_ms, expires_at_ms)

    def due_now(self, peer: PeerId, now_ms: int) -> None:
        """Look ``peer`` up at the next round (its keys may have come)."""
        found = self._due.get(peer)
        if found is not None:
            found.next_at_ms = min(found.next_at_ms, now_ms)

    def missed(self, peer: PeerId, now_ms: int) -> None:
        """A lookup found nothing: back off (doubling, capped; no jitter: each
        peer is looked up on its own schedule), or go at expiry."""
        found = self._due.get(peer)
        if found is None:
            return
        delay_s = min(KEY_LOOKUP_FIRST_S * 2 ** min(found.attempts, 30), KEY_LOOKUP_MAX_INTERVAL_S)
        found.attempts += 1
        found.next_at_ms = now_ms + delay_s * 1000

    def done(self, peer: PeerId) -> None:
        self._due.pop(peer, None)

    def next_at(self, peer: PeerId) -> int | None:
        """When ``peer`` is looked up (or its messages fail) next; None if nothing waits."""
        found = self._due.get(peer)
        return None if found is None else min(found.next_at_ms, found.expires_at_ms)

    def due(self, now_ms: int) -> list[PeerId]:
        """The peers to look up (or fail) now, the longest due first."""
        ready = [(self.next_at(p), p.raw, p) for p in self._due]
        return [p for at, _, p in sorted(ready) if at is not None and at <= now_ms]

    def soonest(self) -> int | None:
        return min((at for p in self._due if (at := self.next_at(p)) is not None), default=None)


class KeyWaits:
    """Messages waiting for their recipient's prekeys (a mixin of
    :class:`~p2pdm.node.node.Node`)."""

    store: Store
    messenger: Messenger
    now_ms: Callable[[], int]
    random_bytes: Callable[[int], bytes]
    on_outbox: Callable[[PeerId], None]
    fetch_bundle: Callable[[PeerId], Awaitable[PrekeyBundle | None]] | None
    media: MediaLibrary
    online: set[PeerId]
    #: Who is looked up when (set by :meth:`_init_key_waits`).
    key_lookups: LookupSchedule
    _key_wakeup: trio.Event

    def _init_key_waits(self) -> None:
        """Load who waits from the store (a restart keeps every waiting message)."""
        self.key_lookups = LookupSchedule()
        self._key_wakeup = trio.Event()
        now = self.now_ms()
        for wait in self.store.key_waits():
            self.key_lookups.add(wait.peer, now, wait.expires_at_ms)

    def _who(self, peer: PeerId) -> str:
        contact = self.store.get_contact(peer)
        return contact.name if contact is not None and contact.name else peer.short()

    def has_keys(self, peer: PeerId) -> bool:
        """Whether a message to ``peer`` can be encrypted now (a session, or a
        contact's prekey bundle)."""
        if self.store.get_session(peer) is not None:
            return True
        contact = self.store.get_contact(peer)
        return contact is not None and contact.bundle is not None

    def waiting_for_keys(self, peer: PeerId) -> bool:
        """Whether messages to ``peer`` wait for its prekeys (a new one waits
        behind them); no store read: the schedule holds every such peer."""
        return peer in self.key_lookups

    def keys_came(self, peer: PeerId) -> None:
        """``peer``'s keys may be here now (an invite, a message from it): send
        what waits for them at the next round."""
        if peer in self.key_lookups:
            self.key_lookups.due_now(peer, self.now_ms())
            self._key_wakeup.set()

    def hold_text(
        self,
        peer: PeerId,
        text: str,
        reply_to: bytes | None = None,
        *,
        idempotency: tuple[str, str] | None = None,
    ) -> StoredMessage:
        """Store a text message for ``peer`` (``queued``, no envelope yet) to be
        sent once its prekeys are found; returns it.

        Raises SchemaError for an empty or over-long text, and what
        :meth:`hold_body` raises.
        """
        if not text.strip():
            raise SchemaError("a message needs some text")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
            raise SchemaError(f"a message is at most {MAX_TEXT_BYTES} bytes of text")
        conversation_id = direct_conversation_id(self.messenger.peer_id, peer)
        found = self.store.get_conversation(conversation_id)
        body = TextBody(text, reply_to, timer_s=0 if found is None else found.timer_s)
        return self.hold_body(peer, body, idempotency=idempotency)

    def hold_body(
        self,
        peer: PeerId,
        body: Body,
        *,
        idempotency: tuple[str, str] | None = None,
    ) -> StoredMessage:
        """Store a message of a stored kind (a text, files, a place) for ``peer``
        to be sent once its prekeys are found; returns it. The body carries the
        conversation's timer already. A message with files records them as
        going to ``peer`` in the same transaction, as a sent one does.

        Raises SessionError when MAX_KEY_WAITS messages wait already (the
        API's ``no_session``), StoreError if the idempotency key is taken.
        """
        if len(self.store.key_waits()) >= MAX_KEY_WAITS:
            raise SessionError(
                f"cannot find {self._who(peer)} in the network to start a session, and "
                f"{MAX_KEY_WAITS} messages already wait for their recipients' keys; "
                "add the contact from an invite instead"
            )
        now = self.now_ms()
        inner = InnerMessage.create(
            self.messenger.identity,
            id=self.random_bytes(MESSAGE_ID_BYTES),
            recipient=peer,
            conversation=direct_conversation_id(self.messenger.peer_id, peer),
            sent_at_ms=now,
            body=body,
        )
        effects = conversation.on_send(inner, now)
        if effects.store is None:
            raise SchemaError(f"a message of kind {body.kind!r} cannot wait for keys")
        expires_s = (now + KEY_WAIT_TTL_MS) // 1000
        message, _ = sender_copy(
            effects.store, now, self.messenger.read_receipts_enabled(), expires_s
        )
        wait = KeyWait(inner.id, peer, now, now + KEY_WAIT_TTL_MS)
        with self.store.transaction(undivided=True):
            self.store.add_message(message)
            self.media.attach(message)
            apply_timer(self.store, effects, peer, now)
            for event in effects.events:
                log_event(self.store, event)
            self.store.hold_for_keys(wait)
            if idempotency is not None:
                self.store.remember_send(*idempotency, inner.id, now)
            self.store.note_status(inner.id, now, waiting_note(self._who(peer)), recipient=peer)
        self.messenger.known.sent(peer)
        first = peer not in self.key_lookups
        self.key_lookups.add(peer, now, wait.expires_at_ms)
        if first:  # its lookup just missed: the next one after KEY_LOOKUP_FIRST_S
            self.key_lookups.missed(peer, now)
        self._key_wakeup.set()  # the loop may sleep longer than that
        return self.messenger.message(inner.id)

    async def look_up_keys(self, peer: PeerId) -> None:
        """One round for ``peer``: fail what waited too long, look its prekeys up
        if there are none, and send what waits once there are."""
        now = self.now_ms()
        waits = self.store.key_waits(peer)
        expired = [w for w in waits if w.expires_at_ms <= now]
        if expired:
            self._fail(expired, never_found_note(self._who(peer)))
        waiting = [w for w in waits if w.expires_at_ms > now]
        if not waiting:
            self.key_lookups.done(peer)
            return
        expires_at_ms = min(w.expires_at_ms for w in waiting)
        try:
            self.messenger.refuse_if_blocked(peer)
        except PeerBlocked as exc:  # blocked while they waited: no lookup for them
            self._fail(waiting, str(exc))
            self.key_lookups.done(peer)
            return
        if not self.has_keys(peer):
            bundle = None if self.fetch_bundle is None else await self.fetch_bundle(peer)
            if bundle is None:
                self.key_lookups.add(peer, now, expires_at_ms)  # (after a restart)
                self.key_lookups.missed(peer, self.now_ms())
                return
            self.keep_bundle(peer, bundle)
        await self.send_waiting(peer)

    def keep_bundle(self, peer: PeerId, bundle: PrekeyBundle) -> None:
        """Keep a prekey bundle found in the DHT with ``peer``'s contact (made if none)."""
        contact = self.store.get_contact(peer)
        if contact is None:
            self.messenger.add_contact(peer, name_from_invite(self.store, peer, ""), bundle)
        else:
            self.messenger.add_contact(
                peer, contact.name, bundle, name_from_invite=contact.name_from_invite
            )

    async def send_waiting(self, peer: PeerId) -> int:
        """Encrypt and queue every message waiting for ``peer``'s keys, oldest
        first, each in its own transaction; returns how many were queued."""
        await self.messenger.stamps.prepare(peer)  # in a worker thread, not in the loop
        queued = 0
        for wait in self.store.key_waits(peer):
            message = self.store.get_message(wait.message_id)
            if message is None or message.status is not DeliveryStatus.QUEUED:
                self.store.drop_key_wait(wait.message_id)  # erased or deleted meanwhile
                continue
            try:
                self._queue_envelope(message, wait)
            except (PeerBlocked, SessionError, WireError, SchemaError) as exc:
                self._fail([wait], str(exc))
                continue
            body = media_of(message)
            if body is not None and peer not in self.online:  # small files follow it
                blob_ids = [item.blob_id for item in body.items]
                expires_by_s = action_expiry_s(message)
                push_files(self.messenger, self.media, peer, message, blob_ids, expires_by_s)
            queued += 1
        self.key_lookups.done(peer)
        if queued:
            self.on_outbox(peer)
        return queued

    def _queue_envelope(self, message: StoredMessage, wait: KeyWait) -> None:
        """Encrypt a waiting message (its id and send time as stored) and queue its
        envelope, dropping its wait, in one transaction."""
        spec = spec_for(message.kind)
        if spec is None:
            raise SchemaError(f"a waiting message of kind {message.kind!r} cannot be sent")
        body = spec.decode_bytes(message.body)
        messenger, peer, now = self.messenger, wait.peer, self.now_ms()
        # The messenger's encryption step: the same session handling as any send.
        inner, sessions, session_message = messenger._encrypt(
            peer, body, message.sent_at_ms, message_id=message.id
        )
        expires_s = min(wait.expires_at_ms // 1000, now // 1000 + ENVELOPE_TTL_SECONDS)
        if message.expires_at_ms is not None:  # a disappearing message's envelope goes with it
            expires_s = min(expires_s, -(-message.expires_at_ms // 1000))
        envelope = seal(peer, session_message, expires_s, self.random_bytes(EPHEMERAL_SECRET_BYTES))
        item = OutboxItem(
            envelope_id=envelope.id,
            message_id=inner.id,
            recipient=peer,
            envelope=envelope.encode(),
            created_at_ms=now,
            expires_at_ms=expires_s * 1000,
            next_attempt_at_ms=now,
        )
        with messenger._committing(peer), self.store.transaction(undivided=True):
            self.store.put_session(peer, sessions.to_bytes(), now)
            self.store.add_outbox(item)
            self.store.drop_key_wait(message.id)
            self.store.note_status(
                message.id, now, f"{self._who(peer)}'s keys found; sending", recipient=peer
            )

    def _fail(self, waits: list[KeyWait], why: str) -> None:
        """The waiting messages fail with ``why``; their waits go (one transaction)."""
        now = self.now_ms()
        with self.store.transaction():
            for wait in waits:
                self.store.drop_key_wait(wait.message_id)
                if self.store.get_message(wait.message_id) is not None:
                    self.store.set_status(
                        wait.message_id, DeliveryStatus.FAILED, now, why, recipient=wait.peer
                    )

    async def run_key_lookups(self) -> None:
        """Look up every peer with waiting messages when due, forever (see the module)."""
        while True:
            for peer in self.key_lookups.due(self.now_ms()):
                try:
                    await self.look_up_keys(peer)
                except Exception:  # logged; tried again after the backoff, like a miss
                    log.exception("looking up the keys of %s failed", peer.short())
                    self.key_lookups.missed(peer, self.now_ms())
            soonest = self.key_lookups.soonest()
            wait_s: float = KEY_LOOKUP_MAX_INTERVAL_S
            if soonest is not None:
                wait_s = min(wait_s, max(0.0, (soonest - self.now_ms()) / 1000))
            with trio.move_on_after(wait_s):
                await self._key_wakeup.wait()
            self._key_wakeup = trio.Event()


async def key_lookup_loop(node: KeyWaits) -> None:
    """:meth:`KeyWaits.run_key_lookups`: started with the node's network services."""
    await node.run_key_lookups()
