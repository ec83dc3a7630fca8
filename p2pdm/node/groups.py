"""What a person does with groups (docs/protocol.md §19): a part of :class:`~p2pdm.node.node.Node`.

How this works: every change — create, add, remove, leave, rename, photo,
promote, demote, timer — is a signed entry appended to the group's log
(:mod:`p2pdm.core.groups`), checked first by the same rule receivers apply
(only admins change the group, anyone leaves), and committed in one
transaction with a ``group_change`` envelope for every member that should
hear of it (the removed and the added included), each carrying the
entries that member may lack. A message to a group is one ``group_msg``
envelope per other member with the same message id, stored once with one
delivery state per member. :class:`~p2pdm.node.group_wire.GroupWire` does
the queueing and files what arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from p2pdm.core import cbor
from p2pdm.core.conversation import message_timer
from p2pdm.core.groups import GROUP_ID_BYTES, GroupState, make_entry
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.kinds import Body, GroupMsgBody, LocationBody, MediaBody, TextBody, encode_body
from p2pdm.core.model import (
    DeliveryStatus,
    Direction,
    EventType,
    Recipient,
    StoredMessage,
)
from p2pdm.core.wire import PrekeyBundle
from p2pdm.errors import (
    GroupRefused,
    IdempotencyConflict,
    MediaRefused,
    NotFound,
    P2PDMError,
    PeerBlocked,
    SchemaError,
    SessionError,
)
from p2pdm.limits import (
    ENVELOPE_TTL_SECONDS,
    MAX_GROUP_MEMBERS,
    MAX_GROUP_PHOTO_INPUT_BYTES,
    MAX_TEXT_BYTES,
)
from p2pdm.node.actions import action_expiry_s
from p2pdm.node.avatar import make_group_photo
from p2pdm.node.batch_send import Sent
from p2pdm.node.batching import CommitBatcher
from p2pdm.node.group_wire import GroupWire, change_detail
from p2pdm.node.media import MediaLibrary, push_files
from p2pdm.node.messenger import Messenger, message_text
from p2pdm.node.notices import sender_copy
from p2pdm.node.offloop import off_loop
from p2pdm.store.base import Store
from p2pdm.store.groups import GroupRow

__all__ = ["GroupInfo", "Groups"]

log = logging.getLogger("p2pdm.node.groups")

#: Bundles of members who are not contacts kept in memory to start sessions.
MAX_MEMBER_BUNDLES: Final = 256
_NONCE_BYTES: Final = 16
#: What each admin change does, in words.
_WORDS: Final = {
    "add": "add members",
    "remove": "remove members",
    "rename": "rename the group",
    "photo": "change its photo",
    "promote": "make admins",
    "demote": "demote admins",
    "timer": "set its timer",
}


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A group as the API shows it: its row, its folded state, its log's length."""

    row: GroupRow
    state: GroupState
    log_length: int


#: Why this node may not write to or change a group, by the group's state here.
_NOT_A_MEMBER = {
    "request": "you have not accepted this group's invitation",
    "left": "you left this group",
    "removed": "you were removed from this group",
}


def _not_a_member(info: GroupInfo) -> GroupRefused:
    """The refusal for a group this node is not an active member of, saying why."""
    why = _NOT_A_MEMBER.get(info.row.state, "you are not a member of this group")
    return GroupRefused(f"{why} ({info.row.name[:60]!r})" if info.row.name else why)


class Groups:
    """The node's groups (mixed into :class:`~p2pdm.node.node.Node`)."""

    identity: Identity
    store: Store
    messenger: Messenger
    now_ms: Callable[[], int]
    random_bytes: Callable[[int], bytes]
    on_outbox: Callable[[PeerId], None]
    fetch_bundle: Callable[[PeerId], Awaitable[PrekeyBundle | None]] | None
    group_wire: GroupWire
    online: set[PeerId]
    media: MediaLibrary
    batcher: CommitBatcher

    def _init_groups(self) -> None:
        self.group_wire = GroupWire(self.messenger, self.store, lambda peer: self.on_outbox(peer))
        self.messenger.known.members_of = self.group_wire.co_members
        self.messenger.group_filer = self.group_wire.file
        self.messenger.group_behind = self.group_wire.ask

    def groups_after_received(self) -> None:
        """After an accepted envelope committed: pass on group changes some
        members were not told (the delivery service calls it)."""
        self.group_wire.flush_forwards()

    # --- reading -------------------------------------------------------------

    def group_info(self, group: bytes) -> GroupInfo:
        row = self.store.get_group(group)
        if row is None:
            raise NotFound(f"no group {group.hex()}")
        glog = self.group_wire.log(group)
        return GroupInfo(row, glog.state(), len(glog))

    def groups(self) -> list[GroupInfo]:
        return [self.group_info(row.id) for row in self.store.list_groups()]

    def find_group(self, ref: str) -> bytes:
        """The group ``ref`` names: its id (32 hex characters) or its name when
        no other group has it (ignoring case); raises NotFound."""
        if len(ref) == 2 * GROUP_ID_BYTES:
            try:
                gid = bytes.fromhex(ref)
            except ValueError:
                gid = b""
            if gid and self.store.get_group(gid) is not None:
                return gid
        named = [g for g in self.store.list_groups() if g.name.casefold() == ref.strip().casefold()]
        if len(named) == 1:
            return named[0].id
        if named:
            raise NotFound(f"{len(named)} groups are called {ref!r}: name one by its id")
        raise NotFound(f"no group {ref!r}")

    def is_group(self, conversation: bytes) -> bool:
        return self.store.get_group(conversation) is not None

    def group_peer(self, group: bytes) -> PeerId:
        """The peer a group's conversation names before anyone wrote in it: who
        invited us, else the first other member (by id), else ourselves."""
        info = self.group_info(group)
        if info.row.invited_by is not None:
            return info.row.invited_by
        me = self.identity.peer_id
        others = sorted((p for p in info.state.members if p != me), key=lambda p: p.raw)
        return others[0] if others else me

    # --- sessions --------------------------------------------------------------

    async def _reach(self, peers: set[PeerId]) -> None:
        """Make sure each peer can be written to: a contact's bundle, a session,
        or a bundle from the DHT kept in memory (members need not be contacts)."""
        for peer in peers:
            self.messenger.refuse_if_blocked(peer)
            contact = self.store.get_contact(peer)
            known = self.store.get_session(peer) is not None or (
                contact is not None and contact.bundle is not None
            )
            if not known and peer not in self.messenger.member_bundles:
                bundle = None if self.fetch_bundle is None else await self.fetch_bundle(peer)
                if bundle is None:
                    raise SessionError(f"cannot find {peer} in the network to start a session")
                self.messenger.member_bundles[peer] = bundle
                while len(self.messenger.member_bundles) > MAX_MEMBER_BUNDLES:
                    self.messenger.member_bundles.popitem(last=False)
            await self.messenger.stamps.prepare(peer)

    # --- changes -------------------------------------------------------------

    async def create_group(self, name: str, members: list[PeerId], timer_s: int = 0) -> GroupInfo:
        """Make a group of this node and ``members`` (1..31 others); raises
        SchemaError for a bad name, members or timer, SessionError if a member
        cannot be reached."""
        others = list(dict.fromkeys(m for m in members if m != self.identity.peer_id))
        if not 1 <= len(others) <= MAX_GROUP_MEMBERS - 1:
            raise SchemaError(f"a group has 1..{MAX_GROUP_MEMBERS - 1} members besides you")
        now = self.now_ms()
        entry = make_entry(
            self.identity,
            group=None,
            parents=(),
            ts_ms=now,
            op="create",
            nonce=self.random_bytes(_NONCE_BYTES),
            name=name.strip(),
            members=tuple(others),
            timer_s=timer_s,
        )
        await self._reach(set(others))
        gid = entry.group
        try:
            with self.store.transaction():
                self.store.put_group(GroupRow(gid, "active", None, now, entry.args["name"]))
                self.group_wire.keep(gid, [entry])
                self.store.add_event(
                    EventType.GROUP_CREATED,
                    now,
                    self.identity.peer_id,
                    detail=change_detail(entry),
                    conversation_id=gid,
                )
                self.group_wire.note(gid, [entry], now, request=False)
                for peer in others:
                    self.group_wire.queue_changes(peer, gid, now)
        except BaseException:
            self.group_wire.forget(gid)
            self.messenger.reload()
            raise
        for peer in others:
            self.on_outbox(peer)
        return self.group_info(gid)

    def _may_change(self, info: GroupInfo, op: str) -> None:
        """Raise GroupRefused unless this node may make change ``op`` to the group."""
        me = self.identity.peer_id
        if info.row.state != "active" or me not in info.state.members:
            raise _not_a_member(info)
        if op not in ("leave",) and me not in info.state.admins:
            raise GroupRefused(
                f"only the group's admins may {op} ({'rename' if op == 'rename' else 'change'} it)"
            )

    async def set_group_photo(self, group: bytes, blob_id: bytes | None) -> GroupInfo:
        """Set the group's photo from our upload ``blob_id`` (made a small square
        WebP with no metadata), or remove it (None); raises NotFound (no such
        group or upload), GroupRefused (not an admin), MediaRefused (not a
        picture, too large, a decompression bomb)."""
        info = self.group_info(group)
        self._may_change(info, "photo")
        if blob_id is None:
            if info.state.photo is None:
                return info
            return await self.change_group(group, "photo", photo=None)
        record = self.media.record(blob_id)
        if record.source is not None or record.state not in ("local", "ready"):
            raise NotFound(f"no file {blob_id.hex()} uploaded here (POST /v1/media)")
        if record.size > MAX_GROUP_PHOTO_INPUT_BYTES:
            raise MediaRefused(
                f"the picture is {record.size} bytes; a group photo is made from at most "
                f"{MAX_GROUP_PHOTO_INPUT_BYTES} bytes"
            )
        data = b"".join(self.media.read_plain(record, 0, record.size))
        # Decoding a large photo takes a moment: off the event loop.
        photo = await off_loop(make_group_photo, data)
        if photo == info.state.photo:
            return info
        return await self.change_group(group, "photo", photo=photo)

    async def change_group(self, group: bytes, op: str, **args: Any) -> GroupInfo:
        """Make one change to ``group`` and tell its members; raises NotFound,
        GroupRefused (not a member, not an admin, full), SchemaError."""
        info = self.group_info(group)
        me = self.identity.peer_id
        self._may_change(info, op)
        peers = tuple(args.get("peers", ()))
        if op == "add":
            peers = tuple(p for p in peers if p not in info.state.members)
            if not peers:
                return info
            if len(info.state.members) + len(peers) > MAX_GROUP_MEMBERS:
                raise GroupRefused(f"a group has at most {MAX_GROUP_MEMBERS} members")
        if op in ("remove", "promote", "demote"):
            missing = [p for p in peers if p not in info.state.members]
            if missing:
                raise NotFound(f"{missing[0]} is not a member of this group")
        if peers:
            args["peers"] = peers
        glog = self.group_wire.log(group)
        now = self.now_ms()
        entry = make_entry(self.identity, group=group, parents=glog.heads, ts_ms=now, op=op, **args)
        told = (set(info.state.members) | set(peers)) - {me}
        await self._reach(told)
        try:
            with self.store.transaction():
                self.group_wire.keep(group, [entry])
                after = self.group_wire.log(group).state()
                state = info.row.state if me in after.members else "left"
                self.store.put_group(
                    GroupRow(group, state, info.row.invited_by, info.row.joined_at_ms, after.name)
                )
                self.store.add_event(
                    EventType.GROUP_CHANGED,
                    now,
                    me,
                    detail=change_detail(entry),
                    conversation_id=group,
                )
                self.group_wire.note(group, [entry], now, request=False)
                for peer in told:
                    self.group_wire.queue_changes(peer, group, now)
        except BaseException:
            self.group_wire.forget(group)
            self.messenger.reload()
            raise
        for peer in told:
            self.on_outbox(peer)
        return self.group_info(group)

    # --- invitations -------------------------------------------------------------

    def answer_group(self, group: bytes, answer: str) -> GroupInfo:
        """Accept, decline or block an invitation (``request``); declining deletes
        the group here, blocking also blocks who invited us. Nothing is sent."""
        info = self.group_info(group)
        if info.row.state != "request":
            if answer == "accept" and info.row.state == "active":
                return info
            raise GroupRefused("this group is not an invitation")
        now = self.now_ms()
        if answer == "accept":
            with self.store.transaction():
                self.store.put_group(
                    GroupRow(
                        group, "active", info.row.invited_by, info.row.joined_at_ms, info.row.name
                    )
                )
                self.store.accept_conversation(group)
            self.group_wire.forget(group)  # its members are co-members now
            return self.group_info(group)
        gone = GroupInfo(
            GroupRow(group, "left", info.row.invited_by, info.row.joined_at_ms, info.row.name),
            info.state,
            info.log_length,
        )
        with self.store.transaction():
            if answer == "block" and info.row.invited_by is not None:
                self.store.block_peer(info.row.invited_by, now)
            self.group_wire.decline(group)
            self.store.delete_conversation(group)
            self.store.delete_group(group)
        self.group_wire.forget(group)
        return gone

    # --- messages ---------------------------------------------------------------

    async def send_group_text(
        self,
        group: bytes,
        text: str,
        reply_to: bytes | None = None,
        *,
        idempotency: tuple[str, str] | None = None,
    ) -> Sent:
        """Send a text to every other member; raises GroupRefused, SchemaError,
        IdempotencyConflict when ``idempotency`` made another message before (the
        same message again is returned, ``replayed``)."""
        if idempotency is not None:
            earlier_id = self.store.sent_with(*idempotency)
            earlier = None if earlier_id is None else self.store.get_message(earlier_id)
            if earlier is not None:
                if earlier.conversation_id != group or message_text(earlier) != text:
                    raise IdempotencyConflict(
                        f"idempotency key {idempotency[1][:60]!r} was used for another "
                        "message; use a new key for a new message"
                    )
                return Sent(earlier, replayed=True)
        if not text.strip():
            raise SchemaError("a message needs some text")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
            raise SchemaError(f"a message is at most {MAX_TEXT_BYTES} bytes of text")
        if reply_to is not None:
            original = self.store.get_message(reply_to)
            if original is None or original.conversation_id != group:
                raise SchemaError(f"'reply_to' {reply_to.hex()} is not a message of this group")
        info = self.group_info(group)
        await self._reach(self._others(info))
        now = self.now_ms()

        def remember(inner: Any) -> None:
            if idempotency is not None:
                self.store.remember_send(*idempotency, inner.id, now)

        body = TextBody(text, reply_to, timer_s=info.state.timer_s)
        sent = self.send_to_group(group, body, remember)
        assert sent is not None  # a text is stored
        return Sent(sent)

    async def send_group_body(
        self, group: bytes, body: Body, *, idempotency: tuple[str, str] | None = None
    ) -> Sent:
        """Send files (``MediaBody``, of our uploads) or a place to every other
        member, with the group's timer; members online fetch the files from us,
        and small ones follow the message into each offline member's mailboxes
        (as one-to-one: :meth:`_push_files`). Raises IdempotencyConflict when
        ``idempotency`` made another message before (the same one again is
        returned, ``replayed``), GroupRefused, SchemaError."""
        if not isinstance(body, MediaBody | LocationBody):
            raise SchemaError(f"a {body.kind!r} is not sent this way")
        if idempotency is not None:
            earlier = self._replayed(group, idempotency, body.kind)
            if earlier is not None:
                return Sent(earlier, replayed=True)
        info = self.group_info(group)
        await self._reach(self._others(info))
        now = self.now_ms()

        def remember(inner: Any) -> None:
            if idempotency is not None:
                self.store.remember_send(*idempotency, inner.id, now)

        sent = self.send_to_group(group, replace(body, timer_s=info.state.timer_s), remember)
        assert sent is not None  # files and places are stored
        if isinstance(body, MediaBody):
            await self._push_files(sent, [item.blob_id for item in body.items])
        return Sent(sent)

    def _replayed(
        self, group: bytes, idempotency: tuple[str, str], kind: str
    ) -> StoredMessage | None:
        """The message of ``kind`` an earlier send with ``idempotency`` made in
        ``group``; None if the key is new; raises IdempotencyConflict when it
        made another message."""
        earlier_id = self.store.sent_with(*idempotency)
        if earlier_id is None:
            return None
        earlier = self.store.get_message(earlier_id)
        if earlier is None or earlier.conversation_id != group or earlier.kind != kind:
            raise IdempotencyConflict(
                f"idempotency key {idempotency[1][:60]!r} was used for another "
                "message; use a new key for a new message"
            )
        return earlier

    async def _push_files(self, message: StoredMessage, blob_ids: list[bytes]) -> None:
        """The chunks of the files of ``message`` small enough for mailboxes
        (MAILBOX_FILE_BYTES) queued, after it, to each member not online now,
        one commit per member; unsending the message drops those still queued.
        A member who cannot be written to fetches the files from us later."""
        expires_by_s = action_expiry_s(message)
        for recipient in message.recipients:
            peer = recipient.peer
            if peer in self.online:
                continue

            def work(peer: PeerId = peer) -> int:
                return push_files(self.messenger, self.media, peer, message, blob_ids, expires_by_s)

            try:
                if await self.batcher.submit(work):
                    self.on_outbox(peer)
            except P2PDMError as exc:
                log.info("files not pushed to %s's mailboxes: %s", peer.short(), exc)

    def _others(self, info: GroupInfo) -> set[PeerId]:
        me = self.identity.peer_id
        if info.row.state != "active" or me not in info.state.members:
            raise _not_a_member(info)
        others = set(info.state.members) - {me}
        if not others:
            raise GroupRefused("nobody else is in this group")
        return others

    def send_to_group(
        self,
        group: bytes,
        body: Body,
        also: Callable[[Any], None] | None = None,
        *,
        expires_by_s: int | None = None,
    ) -> StoredMessage | None:
        """Queue ``body`` (a shown kind or an action) to every other member, one
        envelope each with one message id; a shown kind is stored once with a
        delivery state per member. Members who cannot be reached are skipped.
        As one-to-one (docs/protocol.md §6.7), the envelopes of a message with a
        timer live no longer than the sender's copy, and ``expires_by_s`` cuts
        an action's to its message's erasure."""
        info = self.group_info(group)
        others = sorted(self._others(info), key=lambda p: p.raw)
        now = self.now_ms()
        message_id = self.random_bytes(16)
        heads = self.group_wire.log(group).heads
        wrapped = GroupMsgBody(heads, body)
        sent: list[PeerId] = []
        stored: StoredMessage | None = None
        expires_s = now // 1000 + ENVELOPE_TTL_SECONDS
        if expires_by_s is not None:
            expires_s = min(expires_s, expires_by_s)
        message: StoredMessage | None = None
        if body.kind in ("text", "media", "location"):
            message = StoredMessage(
                id=message_id,
                conversation_id=group,
                peer=others[0],
                direction=Direction.OUT,
                kind=body.kind,
                body=cbor.encode(encode_body(body)),
                sent_at_ms=now,
                stored_at_ms=now,
                status=DeliveryStatus.QUEUED,
                timer_s=message_timer(body),
            )
            message, expires_s = sender_copy(
                message, now, self.messenger.read_receipts_enabled(), expires_s
            )
        try:
            # Undivided, as the messenger's send: a member's session error comes
            # before any write for it, so skipping that member spoils nothing.
            with self.store.transaction(undivided=True):
                for peer in others:
                    try:
                        self.group_wire.queue_changes(peer, group, now)
                        inner = self.group_wire.queue(
                            peer, wrapped, group, now, message_id, expires_s=expires_s
                        )
                    except (SessionError, PeerBlocked) as exc:
                        log.warning("group message not sent to %s: %s", peer.short(), exc)
                        continue
                    sent.append(peer)
                if not sent:
                    raise SessionError("no member of the group can be reached")
                if message is not None:
                    message = replace(
                        message,
                        peer=sent[0],
                        recipients=tuple(Recipient(p, DeliveryStatus.QUEUED, now) for p in sent),
                    )
                    stored = self.store.add_message(message)
                    if isinstance(body, MediaBody):  # each member may fetch the files from us
                        for item in body.items:
                            for peer in sent:
                                self.store.add_blob_ref(item.blob_id, message_id, peer)
                if also is not None:
                    also(inner)
        except BaseException:
            self.messenger.reload()
            raise
        for peer in sent:
            self.on_outbox(peer)
        return stored

    def _deliver_action(
        self,
        target: StoredMessage,
        body: Any,
        also: Callable[[Any], None],
        *,
        expires_by_s: int | None = None,
    ) -> None:
        """An action on a group message goes to every member, its envelopes cut
        to its message's erasure as one-to-one; else one-to-one."""
        if self.is_group(target.conversation_id):
            self.send_to_group(target.conversation_id, body, also, expires_by_s=expires_by_s)
            return
        super()._deliver_action(  # type: ignore[misc]
            target, body, also, expires_by_s=expires_by_s
        )

    def mark_group_read(self, group: bytes) -> list[bytes]:
        """Mark a group read; read receipts to each author (if enabled, and the
        group accepted)."""
        ids = self.store.mark_conversation_read(group, self.now_ms())
        row = self.store.get_group(group)
        if (
            not ids
            or row is None
            or row.state != "active"
            or not self.messenger.read_receipts_enabled()
        ):
            return ids
        by_author: dict[PeerId, list[bytes]] = {}
        for message_id in ids:
            found = self.store.get_message(message_id)
            if found is not None and found.direction is Direction.IN:
                by_author.setdefault(found.peer, []).append(message_id)
        for author, read in by_author.items():
            try:
                self.messenger.send_receipt(author, "read", read)
                self.on_outbox(author)
            except P2PDMError as exc:
                log.info("no read receipt to %s: %s", author.short(), exc)
        return ids
