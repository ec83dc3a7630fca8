"""The messenger: turns what a person does into stored state and envelopes.

How this works: :class:`Messenger` sits between the store and the network,
with no network code of its own. Sending a message signs it, encrypts it on
the peer's session, seals it into an envelope and commits — in one store
transaction — the message (``queued``), the advanced session state and the
outbox entry. Receiving does the reverse and commits the message, the
session state after decrypting it, the seen ids (replay protection) and any
used one-time prekey together. A crash can therefore neither lose a message
nor reuse a message key. What an accepted message does (store it, show it,
move statuses, log events, receipts due) is decided by the pure machine in
``p2pdm.core.conversation``; the messenger looks up the state it needs and
applies its effects, the event-log entries included, in that transaction.

Time and randomness are injected, so tests control both.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal

from p2pdm import limits
from p2pdm.core import conversation
from p2pdm.core.conversation import Effects, LocalState, Outcome, Via
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.kinds import (
    Body,
    ReceiptBody,
    TextBody,
    TimerBody,
    TypingBody,
    decode_stored,
    spec_for,
)
from p2pdm.core.kinds.timer import check_timer
from p2pdm.core.model import (
    MESSAGE_ID_BYTES,
    Contact,
    DeliveryStatus,
    Direction,
    EventType,
    LogEvent,
    OutboxItem,
    StoredMessage,
    direct_conversation_id,
)
from p2pdm.core.prekeys import OwnPrekeys
from p2pdm.core.replay import (
    ENVELOPE_IDS_BOUND,
    ENVELOPE_IDS_SETTING,
    rekeyed,
    seen_envelope_key,
    seen_message_key,
)
from p2pdm.core.request_stamp import (
    request_stamp_of,
    verify_request_stamp,
    with_request_stamp,
    without_request_stamp,
)
from p2pdm.core.sealing import (
    EPHEMERAL_SECRET_BYTES,
    Opened,
    check_inner,
    open_envelope,
    seal,
)
from p2pdm.core.strangers import StrangerGate
from p2pdm.core.wire import Envelope, InnerMessage, PrekeyBundle, SessionMessage
from p2pdm.errors import (
    EnvelopeExpired,
    GroupBehind,
    MessageIdConflict,
    NotFound,
    PeerBlocked,
    RateLimited,
    ReplayError,
    SchemaError,
    SessionError,
    StampMissing,
    StoreError,
    WireError,
)
from p2pdm.limits import (
    ENVELOPE_TTL_SECONDS,
    MAX_CLOCK_SKEW_SECONDS,
    MAX_PAGE_SIZE,
    MAX_RECEIPT_IDS,
    MAX_TEXT_BYTES,
    ONE_TIME_PREKEYS_PER_BUNDLE,
    TYPING_LAPSE_S,
)
from p2pdm.node import action_effects as actions
from p2pdm.node.known_peers import KnownPeers
from p2pdm.node.notices import GROUP_NOTICE_KIND, TypingShown, apply_timer, sender_copy
from p2pdm.node.request_stamps import RequestStamps
from p2pdm.store.base import Store, log_event

if TYPE_CHECKING:
    from p2pdm.core.session import PeerSessions

#: The kinds a group carries, filed by the node's groups (docs/protocol.md §19).
GROUP_KINDS: Final = frozenset({"group_change", "group_msg"})


#: Ephemeral kinds that may name a group's conversation instead of the
#: one-to-one one (§19.5): filed by the node's groups, never wrapped.
GROUP_EPHEMERAL_KINDS: Final = frozenset({"typing", "live_location"})


def _in_group(inner: InnerMessage, me: PeerId) -> bool:
    """A group kind, or a typing signal or live location in a group's
    conversation (§19.4, §19.5)."""
    if inner.kind in GROUP_KINDS:
        return True
    return inner.kind in GROUP_EPHEMERAL_KINDS and inner.conversation != direct_conversation_id(
        me, inner.sender
    )


__all__ = ["Messenger", "Outgoing", "Received", "is_unsupported", "message_text"]

log = logging.getLogger("p2pdm.node.messenger")

#: Setting that turns read receipts on or off (default on, like Signal).
READ_RECEIPTS_SETTING: Final = "read_receipts"
#: Peers whose decoded session state stays in memory (the store keeps all of
#: them); saves parsing the ratchet state on every message of a busy chat.
MAX_CACHED_SESSIONS: Final = 256
#: Strangers' refused envelopes and dropped requests are logged in one line
#: at most this often (milliseconds), never one line per message.
REQUEST_LOG_INTERVAL_MS: Final = 60_000


def wall_ms() -> int:
    """Wall-clock time in integer milliseconds, the unit of every stored time."""
    return time.time_ns() // 1_000_000


def message_text(message: StoredMessage) -> str | None:
    """The text of a text message; None for other kinds or an undecodable body."""
    body = decode_stored(message.kind, message.body)
    return body.text if isinstance(body, TextBody) else None


def is_unsupported(message: StoredMessage) -> bool:
    """True for a stored message of a kind this version does not know (a
    group's notice is known: it is written here, never received)."""
    return spec_for(message.kind) is None and message.kind != GROUP_NOTICE_KIND


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message accepted for sending: stored, and its envelope in the outbox."""

    message: StoredMessage | None
    outbox: OutboxItem


@dataclass(frozen=True, slots=True)
class Received:
    """What an accepted envelope turned out to be."""

    sender: PeerId
    inner: InnerMessage
    #: The stored message, for kinds shown in conversations.
    message: StoredMessage | None
    #: Outgoing message ids whose status a receipt moved forward.
    status_changes: tuple[tuple[bytes, DeliveryStatus], ...]
    outcome: Outcome
    #: What the conversation machine decided (core/conversation.py): the
    #: receipts due and the messages confirmed are for the caller to act on.
    effects: Effects


class Messenger:
    """Sends and receives messages for one identity over one store."""

    def __init__(
        self,
        identity: Identity,
        store: Store,
        *,
        now_ms: Callable[[], int] = wall_ms,
        random_bytes: Callable[[int], bytes] = os.urandom,
        strangers: StrangerGate | None = None,
        request_stamp_bits: int | None = None,
    ) -> None:
        self.identity = identity
        self.store = store
        self.now_ms = now_ms
        self.random_bytes = random_bytes
        #: The acceptance rate of envelopes from peers who are not contacts.
        self.strangers = strangers or StrangerGate()
        #: Stamps for envelopes to peers who may not know us, and the work
        #: this node asks of strangers' envelopes (docs/protocol.md §18.2).
        bits = limits.REQUEST_STAMP_BITS if request_stamp_bits is None else request_stamp_bits
        self.stamps = RequestStamps(identity.peer_id, store, bits, now_ms)
        #: Non-contacts that are not strangers: whom this node wrote to, and
        #: its accepted groups' other members (the node sets how to read those).
        self.known = KnownPeers(identity.peer_id, store)
        #: Envelopes dropped since start: from blocked peers, and from
        #: strangers without a valid request stamp.
        self.dropped_blocked = 0
        self.dropped_unstamped = 0
        #: When requests were last logged, and how many had been dropped by then.
        self._request_log: tuple[int, int] | None = None
        self.own = self._load_prekeys()
        self._sessions: OrderedDict[PeerId, PeerSessions] = OrderedDict()
        #: Called with each received message it stores and whether its sender is a
        #: contact, inside the transaction that stores it (the node records the
        #: message's files there, so a crash cannot keep one without the other).
        self.on_stored: Callable[[StoredMessage, bool], object] = lambda message, contact: None
        #: When each peer's typing was last shown (as many peers as sessions cached).
        self._typing_shown = TypingShown(MAX_CACHED_SESSIONS)
        #: Where ephemeral events go (the node's event bus); they are never stored.
        self.publish: Callable[[LogEvent], None] = lambda event: None
        #: Prekey bundles of group members who are not contacts, fetched from
        #: the DHT to start a session (as many as sessions cached).
        self.member_bundles: OrderedDict[PeerId, PrekeyBundle] = OrderedDict()
        #: Files a group kind (docs/protocol.md §19.4) inside the receive
        #: transaction, in place of the conversation machine (set by the node).
        self.group_filer: Callable[[InnerMessage, int, Via, int | None], Received] | None = None
        #: Asks a group message's author for the changes it named (after the
        #: envelope was refused with GroupBehind; set by the node).
        self.group_behind: Callable[[GroupBehind], None] = lambda behind: None
        self._rekey_outbox()

    @property
    def peer_id(self) -> PeerId:
        return self.identity.peer_id

    def _load_prekeys(self) -> OwnPrekeys:
        data = self.store.get_prekeys()
        if data is not None:
            own = OwnPrekeys.from_bytes(self.identity, data)
            if own.outdated:  # saved in the current form, once
                self.store.put_prekeys(own.to_bytes())
            return own
        own = OwnPrekeys.create(self.identity, self.now_ms() // 1000)
        self.store.put_prekeys(own.to_bytes())
        return own

    def _rekey_outbox(self) -> None:
        """Once per store: give envelopes an older p2pdm queued content-bound ids
        (docs/protocol.md §9). Their deposits are forgotten with the old ids:
        receivers refuse those copies, so the envelopes are deposited again."""
        if self.store.get_setting(ENVELOPE_IDS_SETTING) == ENVELOPE_IDS_BOUND:
            return
        with self.store.transaction():
            after = b""
            # A re-keyed entry may come up again further on; it is left as it is then.
            while page := self.store.outbox_page(after, MAX_PAGE_SIZE):
                after = page[-1].envelope_id
                for item in page:
                    try:
                        fresh = rekeyed(item)
                    except WireError:
                        continue  # undecodable: refused everywhere, it expires as before
                    if fresh is not None:
                        self.store.remove_outbox(item.envelope_id)
                        self.store.add_outbox(fresh)
            self.store.set_setting(ENVELOPE_IDS_SETTING, ENVELOPE_IDS_BOUND)

    def _session(self, peer: PeerId) -> PeerSessions:
        # A commit left due (its thread not done yet) is done first: if it
        # fails, its sessions are dropped here before one is handed out.
        self.store.settle()
        cached = self._sessions.pop(peer, None)
        if cached is None:
            # The session libraries (doubleratchet, x3dh, pydantic: about
            # 8 MiB) load with the first session, not with every node.
            from p2pdm.core.session import PeerSessions

            cached = PeerSessions.from_bytes(peer, self.store.get_session(peer))
        self._sessions[peer] = cached
        while len(self._sessions) > MAX_CACHED_SESSIONS:
            self._sessions.popitem(last=False)
        return cached

    def reload(self) -> None:
        """Drop every in-memory session and prekey change (after a failed
        group commit): the store is the truth."""
        self._sessions.clear()
        self.own = self._load_prekeys()
        self.known.refresh()

    def _forget_session(self, peer: PeerId) -> None:
        """Drop the cached state after a failure: the store is the truth."""
        self._sessions.pop(peer, None)

    def bundle(self, one_time: int = ONE_TIME_PREKEYS_PER_BUNDLE) -> PrekeyBundle:
        """This node's current prekey bundle with up to ``one_time`` one-time
        prekeys: some for an invite (one reader), none for the DHT record
        (anyone may read it, so its one-time keys would not stay one-time)."""
        return self.own.bundle(one_time)

    def rotate_prekeys(self) -> bool:
        """Rotate the signed prekey when due; returns True if the bundle changed."""
        if not self.own.maybe_rotate(self.now_ms() // 1000):
            return False
        self.store.put_prekeys(self.own.to_bytes())
        return True

    # --- sending ------------------------------------------------------------

    def send_text(
        self,
        to: PeerId,
        text: str,
        reply_to: bytes | None = None,
        *,
        idempotency: tuple[str, str] | None = None,
    ) -> Outgoing:
        """Store a text message for ``to`` and queue its envelope.

        ``idempotency`` is ``(scope, key)``, recorded with the message in the
        same transaction. Raises SchemaError for an empty or over-long text,
        SessionError when there is no session and no prekey bundle for
        ``to``, StoreError if the idempotency key is taken.
        """
        if not text.strip():
            raise SchemaError("a message needs some text")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
            raise SchemaError(f"a message is at most {MAX_TEXT_BYTES} bytes of text")
        # It carries the conversation's timer, so both sides erase it alike.
        found = self.store.get_conversation(direct_conversation_id(self.peer_id, to))
        timer_s = 0 if found is None else found.timer_s
        return self._send(to, TextBody(text, reply_to, timer_s=timer_s), idempotency)

    def send_timer(self, to: PeerId, timer_s: int) -> Outgoing:
        """Set the disappearing-messages timer of the conversation with ``to``
        and tell ``to`` (a ``timer`` notice, shown on both sides).

        Raises SchemaError for a timer not in DISAPPEARING_TIMERS_S, and what
        :meth:`send_text` raises.
        """
        return self._send(to, TimerBody(check_timer(timer_s)))

    def send_receipt(
        self, to: PeerId, status: Literal["delivered", "read"], ids: list[bytes]
    ) -> list[Outgoing]:
        """Queue receipts for ``ids`` (split to the per-receipt cap)."""
        return [
            self._send(to, ReceiptBody(status, tuple(ids[i : i + MAX_RECEIPT_IDS])))
            for i in range(0, len(ids), MAX_RECEIPT_IDS)
        ]

    def send(
        self,
        to: PeerId,
        body: Body,
        *,
        idempotency: tuple[str, str] | None = None,
        also: Callable[[InnerMessage], None] | None = None,
        expires_by_s: int | None = None,
    ) -> Outgoing:
        """Store (if its kind is stored) and queue a message of any registered kind;
        ``also`` makes more changes, given the message, in the same transaction;
        ``expires_by_s`` cuts its envelope's lifetime (an action on a message
        that disappears lives no longer than it).

        Raises SchemaError for a body whose kind is not registered, and what
        :meth:`send_text` raises.
        """
        spec = spec_for(body.kind)
        if spec is None or not isinstance(body, spec.body_type):
            raise SchemaError(f"{body.kind!r} is not a message kind this version can send")
        return self._send(to, body, idempotency, also, expires_by_s)

    def seal_typing(self, to: PeerId, group: bytes | None = None) -> bytes:
        """A typing signal for ``to`` (in ``group``, a group's id, if given),
        sealed: an envelope for an open stream only, never queued; only the
        advanced session state is committed. It expires after TYPING_LAPSE_S.
        Raises SessionError without a session or bundle."""
        return self.seal_ephemeral(to, TypingBody(), TYPING_LAPSE_S, group)

    def seal_ephemeral(
        self, to: PeerId, body: Body, ttl_s: int, group: bytes | None = None
    ) -> bytes:
        """``body`` (an unstored kind: typing, a live location) for ``to`` (in
        ``group``'s conversation, if given), sealed for an open stream only and
        expiring after ``ttl_s``; only the advanced session state is committed.
        Raises SessionError without a session or bundle."""
        now = self.now_ms()
        # No request stamp: only contacts and co-members get these, who need none.
        _, sessions, session_message = self._encrypt(
            to, body, now, stamped=False, conversation=group
        )
        expires_s = now // 1000 + ttl_s
        envelope = seal(to, session_message, expires_s, self.random_bytes(EPHEMERAL_SECRET_BYTES))
        with self._committing(to), self.store.transaction():
            self.store.put_session(to, sessions.to_bytes(), now)
        return envelope.encode()

    def _own_name(self) -> str:
        """The name a request says this node's person goes by: the profile's
        display name, else the node's name."""
        profile = self.store.get_profile()
        if profile is not None and profile.name:
            return profile.name
        return str(self.store.get_setting("name", "") or "")

    def _encrypt(
        self,
        to: PeerId,
        body: Body,
        now: int,
        *,
        stamped: bool = True,
        conversation: bytes | None = None,
        message_id: bytes | None = None,
    ) -> tuple[InnerMessage, PeerSessions, SessionMessage]:
        """The signed inner message of ``body`` for ``to``, encrypted on its session
        (in memory: the caller commits the session state), with a request stamp
        if ``stamped`` and the peer may not know this node yet. ``conversation``
        and ``message_id`` are a group's and its message's (else the
        one-to-one conversation and a fresh id)."""
        if to == self.peer_id:
            raise SessionError("cannot send a message to yourself")
        contact = self.store.get_contact(to)  # it says whether it is blocked
        self.refuse_if_blocked(to, contact)
        sessions = self._session(to)
        bundle = None
        if not sessions.established:
            encoded = contact.bundle if contact is not None else None
            bundle = self.member_bundles.get(to) if encoded is None else None
            if encoded is None and bundle is None:
                raise SessionError(
                    f"no prekey bundle for {to}: add the contact from an invite first"
                )
            if encoded is not None:
                bundle = PrekeyBundle.decode(encoded)
        # In the body's ext map, which nodes that check no stamps ignore (§18.2).
        stamp = self.stamps.for_peer(to) if stamped else None
        inner = InnerMessage.create(
            self.identity,
            id=message_id or self.random_bytes(MESSAGE_ID_BYTES),
            recipient=to,
            conversation=conversation or direct_conversation_id(self.peer_id, to),
            sent_at_ms=now,
            body=body if stamp is None else with_request_stamp(body, stamp, self._own_name()),
        )
        try:
            session_message = sessions.encrypt(self.own, inner.encode(), bundle)
        except Exception:
            self._forget_session(to)
            raise
        # The stamp is admission, not content: what is kept here is the body sent.
        return (inner if stamp is None else inner.with_body(body)), sessions, session_message

    def refuse_if_blocked(self, peer: PeerId, contact: Contact | None = None) -> None:
        """Raise PeerBlocked, naming the contact as the user knows it, if this
        node blocked ``peer``; ``contact``: ``peer``'s, if read already (its
        ``blocked`` flag answers, one read fewer)."""
        blocked = contact.blocked if contact is not None else self.store.is_blocked(peer)
        if blocked:
            contact = contact or self.store.get_contact(peer)
            who = contact.name if contact is not None else str(peer)
            raise PeerBlocked(f"you blocked {who}; unblock them to write to them")

    def _send(
        self,
        to: PeerId,
        body: Body,
        idempotency: tuple[str, str] | None = None,
        also: Callable[[InnerMessage], None] | None = None,
        expires_by_s: int | None = None,
    ) -> Outgoing:
        now = self.now_ms()
        inner, sessions, session_message = self._encrypt(to, body, now)
        effects = conversation.on_send(inner, now)
        stored_message = effects.store
        expires_s = now // 1000 + ENVELOPE_TTL_SECONDS
        if expires_by_s is not None:
            expires_s = min(expires_s, expires_by_s)
        if stored_message is not None:
            receipts = self.read_receipts_enabled()
            stored_message, expires_s = sender_copy(stored_message, now, receipts, expires_s)
        envelope = seal(to, session_message, expires_s, self.random_bytes(EPHEMERAL_SECRET_BYTES))
        item = OutboxItem(
            envelope_id=envelope.id,
            message_id=inner.id,
            recipient=to,
            envelope=envelope.encode(),
            created_at_ms=now,
            expires_at_ms=expires_s * 1000,
            next_attempt_at_ms=now,
        )
        stored = None
        with self._committing(to), self.store.transaction(undivided=True):
            if stored_message is not None:
                stored = self.store.add_message(stored_message)
            apply_timer(self.store, effects, to, now)
            for event in effects.events:
                log_event(self.store, event)
            self.store.put_session(to, sessions.to_bytes(), now)
            self.store.add_outbox(item)
            if idempotency is not None:
                self.store.remember_send(*idempotency, inner.id, now)
            if also is not None:
                also(inner)
        if stored is not None:
            self.known.sent(to)
        return Outgoing(stored, item)

    # --- receiving ----------------------------------------------------------

    def receive(self, data: bytes, via: Via = "direct", opened: Opened | None = None) -> Received:
        """Accept one encoded envelope addressed to this node (docs/protocol.md §11),
        which came by ``via``; ``opened`` is ``data`` already opened by
        :func:`~p2pdm.core.sealing.open_ahead` (in a worker thread).

        Raises a WireError subclass (EnvelopeIdMismatch for an id that is not
        the hash of the content), WrongRecipient, EnvelopeExpired,
        DecryptError, PrekeyError, SignatureError, MessageIdConflict or
        ReplayError; on any of them nothing is stored. ReplayError means this
        very message was accepted before (the sender may be retrying after a
        lost ack): the same envelope bytes, or the same message id signed by
        the same sender.
        """
        envelope = Envelope.decode(data) if opened is None else opened.envelope
        now = self.now_ms()
        if envelope.expires_at_s + MAX_CLOCK_SKEW_SECONDS < now // 1000:
            raise EnvelopeExpired("envelope expired before it arrived")
        envelope.check_id()
        # A cheap pre-filter: the id is the hash of the bytes, so a seen id
        # means these very bytes were accepted, whoever relays them.
        if self.store.has_seen(seen_envelope_key(envelope.id)):
            raise ReplayError("envelope was already accepted")
        if opened is None:
            outer = open_envelope(self.identity, envelope)
        else:
            outer = opened.session_message()
        sender = outer.sender
        if sender == self.peer_id:
            raise SessionError("envelope claims to come from this node")
        # Before anything about the message itself: a blocked peer's envelopes
        # of every kind end here (docs/protocol.md §18.1).
        # A contact's row says whether it is blocked: one read for both.
        contact = self.store.get_contact(sender)
        if contact.blocked if contact is not None else self.store.is_blocked(sender):
            self.dropped_blocked += 1
            raise PeerBlocked(f"{sender.short()} is blocked")
        # The sender is claimed, not proven yet: only look at its budget here.
        # Someone this node wrote to is answering, not asking (§18.2): no
        # stamp, and not a request (they need not have added us back).
        answering = contact is None and self.known.wrote_to(sender)
        stranger = contact is None and not answering and not self.known.co_member(sender)
        if stranger and not self.strangers.admits(sender, now / 1000):
            self._log_requests(now)
            raise RateLimited(f"{sender.short()} is not a contact and over the requests' rate")
        sessions = self._session(sender)
        prekeys_version = self.own.version
        try:
            plaintext = sessions.decrypt(self.own, outer)
            inner = check_inner(self.identity, outer, plaintext)
            self._check_new(inner)
            if stranger and not verify_request_stamp(
                self.peer_id, sender, now, request_stamp_of(inner.body), self.stamps.bits
            ):
                self.dropped_unstamped += 1
                raise StampMissing(
                    f"{sender.short()} is not a contact and sent no valid request stamp"
                )
            # Checked: the stamp goes; a stranger's name stays with its request.
            kept = without_request_stamp(inner.body, keep_name=stranger)
            if kept is not inner.body:
                inner = inner.with_body(kept)
            # The signature proved the sender: spend its budget.
            has_requests = contact is None and self.store.has_requests(sender)
            if stranger and not self.strangers.take(sender, now / 1000, new=not has_requests):
                raise RateLimited(f"{sender.short()} is not a contact and over the requests' rate")
        except Exception:
            # Drop in-memory changes: the store is the truth.
            self._forget_session(sender)
            if self.own.version != prekeys_version:
                self.own = self._load_prekeys()
            raise
        try:
            with self._committing(sender), self.store.transaction(undivided=True):
                self.store.mark_seen(seen_envelope_key(envelope.id), now)
                self.store.mark_seen(seen_message_key(sender, inner.id), now)
                self.store.put_session(sender, sessions.to_bytes(), now)
                if self.own.version != prekeys_version:  # a one-time prekey was used
                    self.store.put_prekeys(self.own.to_bytes())
                received = self._file(
                    inner,
                    now,
                    via,
                    actions.held_until(envelope.expires_at_s),
                    read=(contact, has_requests),
                    member=answering,
                )
        except GroupBehind as behind:
            self.group_behind(behind)  # nothing of it was kept; the sender retries
            raise
        except StoreError:
            self._refuse_taken(inner)  # nothing of it was kept
            raise
        if stranger:
            self._log_requests(now)
        return received

    def _log_requests(self, now: int) -> None:
        """One line, at most every REQUEST_LOG_INTERVAL_MS, on what strangers were refused."""
        if self._request_log is not None and now - self._request_log[0] < REQUEST_LOG_INTERVAL_MS:
            return
        dropped = self.store.counts()["requests_dropped"]
        last_dropped = dropped if self._request_log is None else self._request_log[1]
        refused, self.strangers.refused = self.strangers.refused, 0
        self._request_log = (now, dropped)
        if refused or dropped > last_dropped:
            log.warning(
                "message requests: %d envelopes from strangers refused over their rate, "
                "%d pending request messages dropped over the caps, since the last report",
                refused,
                dropped - last_dropped,
            )

    def _check_new(self, inner: InnerMessage) -> None:
        """The authoritative replay check, on the authenticated (sender, message id).

        Raises ReplayError if this sender's message with this id was accepted
        before. An id taken by a stored message (its seen id forgotten, or
        another message's) is left to the store, which refuses to store it
        again: no read a message for what nearly never happens
        (:meth:`_refuse_taken` names it after the rollback).
        """
        if self.store.has_seen(seen_message_key(inner.sender, inner.id)):
            raise ReplayError(f"message {inner.id.hex()} was already accepted")

    def _refuse_taken(self, inner: InnerMessage) -> None:
        """After the store refused to keep ``inner``: raise ReplayError if this
        sender's message with its id is stored, MessageIdConflict if another
        message has the id; else return (the caller re-raises the store's error)."""
        if not conversation.is_stored(inner.kind):
            return  # only stored kinds are kept under their id
        taken = self.store.get_message(inner.id)
        if taken is None:
            return
        if taken.peer == inner.sender and taken.direction is Direction.IN:
            raise ReplayError(f"message {inner.id.hex()} is already stored") from None
        raise MessageIdConflict(
            f"message id {inner.id.hex()} is taken by another message"
        ) from None

    def _committing(self, peer: PeerId) -> _Committing:
        """If the commit fails, forget in-memory session and prekey changes."""
        return _Committing(self, peer)

    def _file(
        self,
        inner: InnerMessage,
        now: int,
        via: Via,
        held_until_ms: int | None = None,
        *,
        read: tuple[Contact | None, bool] | None = None,
        group: bytes | None = None,
        member: bool = False,
    ) -> Received:
        """Apply what the conversation machine decides for ``inner`` (inside
        the caller's transaction). ``read``: the sender's contact and whether it
        has requests, as :meth:`receive` read them (else read here; the sender
        is not blocked: the envelope was refused otherwise). ``group``: the group
        conversation a group message is filed in, ``member``: its sender counts
        as accepted there (a group member, or a peer this node wrote to)."""
        if group is None and self.group_filer is not None and _in_group(inner, self.peer_id):
            return self.group_filer(inner, now, via, held_until_ms)
        if read is None:
            found_contact = self.store.get_contact(inner.sender)
            read = (
                found_contact,
                found_contact is None and self.store.has_requests(inner.sender),
            )
        contact, has_requests = read
        sender = inner.sender
        targets = {}
        for message_id in conversation.targets_of(inner):
            if (mine := self.store.get_message(message_id)) is not None:
                targets[message_id] = mine
        found = self.store.get_conversation(group or direct_conversation_id(self.peer_id, sender))
        state = LocalState(
            me=self.peer_id,
            contact=contact is not None or member,
            blocked=False,
            has_requests=has_requests,
            targets=targets,
            read_receipts=self.read_receipts_enabled(),
            muted=found is not None and found.muted,
            conversation_id=group,
        )
        effects = conversation.on_message(inner, state, now, via=via)
        stored = self.store.add_message(effects.store) if effects.store is not None else None
        if stored is not None:
            self.on_stored(stored, effects.outcome == "stored")
        apply_timer(self.store, effects, sender, now)
        if effects.action is not None and effects.decision is not None:
            target = targets.get(effects.action.target)
            actions.settle(
                self.store,
                effects.action,
                effects.decision,
                target,
                now,
                held_until_ms=held_until_ms,
            )
        # The store is the authority on a status move: it logs the events of
        # those it made (a group message's also when one member's status moved).
        changes = tuple(
            (move.message_id, move.status)
            for move in effects.status_moves
            if self.store.set_status(
                move.message_id, move.status, now, move.detail, recipient=sender
            )
        )
        for event in effects.events:
            if event.type is EventType.TYPING:  # never stored: live to whoever follows
                if self._typing_shown.due(sender, now):  # one per TYPING_INTERVAL_S a peer
                    self.publish(event)
                continue
            if event.type is not EventType.MESSAGE_STATUS:
                log_event(self.store, event)
        # Actions that overtook it (an unsend, an edit) apply now; read it back if any did.
        if stored is not None and actions.release_held(self.store, stored, self.peer_id, now):
            stored = self.store.get_message(stored.id)
        return Received(sender, inner, stored, changes, effects.outcome, effects)

    # --- reading ------------------------------------------------------------

    def mark_read(self, peer: PeerId) -> tuple[list[bytes], list[Outgoing]]:
        """Mark the conversation with ``peer`` read; queue read receipts if enabled.

        Returns the ids marked read and the receipts queued. Message requests
        get no receipts: the sender learns nothing until they are accepted.
        """
        conversation_id = direct_conversation_id(self.peer_id, peer)
        ids = self.store.mark_conversation_read(conversation_id, self.now_ms())
        contact = self.store.get_contact(peer)
        state = LocalState(
            me=self.peer_id,
            contact=contact is not None,
            blocked=self.store.is_blocked(peer),
            read_receipts=self.read_receipts_enabled(),
        )
        effects = conversation.on_read(peer, tuple(ids), state)
        receipts = [
            out
            for due in effects.receipts
            for out in self.send_receipt(due.to, due.status, list(due.ids))
        ]
        return ids, receipts

    def read_receipts_enabled(self) -> bool:
        return bool(self.store.get_setting(READ_RECEIPTS_SETTING, True))

    # --- contacts -----------------------------------------------------------

    def add_contact(
        self,
        peer: PeerId,
        name: str,
        bundle: PrekeyBundle | None = None,
        addrs: tuple[str, ...] = (),
        *,
        name_from_invite: bool = False,
    ) -> Contact:
        """Add or update a contact; accepts any pending message requests from it.

        ``name`` must already be checked (:mod:`p2pdm.node.contact_names`).
        """
        if peer == self.peer_id:
            raise SchemaError("you cannot add yourself as a contact")
        if bundle is not None and bundle.peer != peer:
            raise SchemaError("the prekey bundle belongs to another peer")
        old = self.store.get_contact(peer)
        contact = Contact(
            peer_id=peer,
            name=name,
            added_at_ms=old.added_at_ms if old else self.now_ms(),
            bundle=bundle.encode() if bundle else (old.bundle if old else None),
            addrs=addrs or (old.addrs if old else ()),
            last_seen_ms=old.last_seen_ms if old else None,
            verified=old.verified if old else False,
            blocked=old.blocked if old else False,
            name_from_invite=name_from_invite,
        )
        with self.store.transaction():
            self.store.put_contact(contact)
            self.store.accept_request(peer)
        return contact

    def message(self, message_id: bytes) -> StoredMessage:
        found = self.store.get_message(message_id)
        if found is None:
            raise NotFound(f"no message {message_id.hex()}")
        return found


class _Committing:
    """:meth:`Messenger._committing`: a plain context manager, not a
    generator's (entered for every message sent and received)."""

    __slots__ = ("messenger", "peer")

    def __init__(self, messenger: Messenger, peer: PeerId) -> None:
        self.messenger = messenger
        self.peer = peer

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.messenger._forget_session(self.peer)
            self.messenger.own = self.messenger._load_prekeys()
