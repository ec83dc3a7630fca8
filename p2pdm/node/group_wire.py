"""Group traffic of one node: queueing the fan-out, filing what arrives
(docs/protocol.md §19.4, §19.5).

How this works: :class:`GroupWire` holds each group's log (folded by
:class:`~p2pdm.core.groups.GroupLog`, loaded from the store on first use)
and queues envelopes *inside the caller's transaction*: a change or a
message to a group is one envelope per member, each through the member's
pairwise session and the outbox, committed together with the change or the
message. :meth:`GroupWire.file` is the messenger's filer for the group
kinds, run in the transaction that accepts the envelope: it takes the
changes a ``group_change`` carries, answers a ``want``, asks the sender
for changes it names but this node lacks, refuses a message whose author
is not a member, and hands an accepted group message, unwrapped, to the
messenger's usual filing in the group's conversation.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from p2pdm.core.conversation import Via
from p2pdm.core.groups import ChangeEntry, GroupLog, GroupState, decode_entry, photo_tag
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import Body, GroupChangeBody, GroupMsgBody, LiveLocationBody, TypingBody
from p2pdm.core.model import EventType, OutboxItem
from p2pdm.core.sealing import EPHEMERAL_SECRET_BYTES, seal
from p2pdm.core.wire import InnerMessage
from p2pdm.errors import (
    GroupBehind,
    MessageIdConflict,
    P2PDMError,
    PeerBlocked,
    SessionError,
    SignatureError,
    WireError,
)
from p2pdm.limits import (
    ENVELOPE_TTL_SECONDS,
    GROUP_SYNC_INTERVAL_S,
    HELD_GROUP_ENTRY_TTL_MS,
    MAX_GROUP_ENTRIES_PER_MESSAGE,
)
from p2pdm.node.messenger import Messenger, Received
from p2pdm.node.notices import group_notice, notice_id
from p2pdm.store.base import Store
from p2pdm.store.groups import GroupRow

__all__ = ["GroupWire", "change_detail"]

log = logging.getLogger("p2pdm.node.groups")

#: Bytes of entries one group_change carries, well under the frame cap with
#: the session and envelope around it; the rest follow by ``want``.
MAX_CHANGE_BYTES: Final = 512 << 10
#: Groups whose folded log stays in memory (a node is in a few dozen).
MAX_CACHED_GROUPS: Final = 256
#: (peer, group) pairs whose last sync answer or request time is remembered.
MAX_SYNC_MARKS: Final = 4096
#: The setting that lists the groups whose invitation was declined (hex ids):
#: their traffic is dropped, so a member's message cannot bring them back.
DECLINED_SETTING: Final = "declined_groups"
#: Declined groups remembered (the oldest forgotten first).
MAX_DECLINED_GROUPS: Final = 256


def change_detail(entry: ChangeEntry) -> str:
    """The event detail of a change: JSON of its kind, author and peers (and
    name, timer; a photo change: the new photo's tag, null when removed)."""
    out: dict[str, object] = {
        "kind": entry.op,
        "by": str(entry.author),
        "peers": [str(p) for p in entry.peers],
    }
    if "name" in entry.args:
        out["name"] = entry.args["name"]
    if entry.op in ("timer", "create"):
        out["timer_s"] = entry.args.get("timer_s", 0)
    if entry.op == "photo":
        photo = entry.args.get("photo")
        out["photo"] = None if photo is None else photo_tag(photo)
    return json.dumps(out, separators=(",", ":"))


class GroupWire:
    """One node's group logs and group envelopes."""

    def __init__(self, messenger: Messenger, store: Store, wake: Callable[[PeerId], None]) -> None:
        self.messenger = messenger
        self.store = store
        self.wake = wake
        self._logs: OrderedDict[bytes, GroupLog] = OrderedDict()
        self._synced: OrderedDict[tuple[PeerId, bytes, bool], int] = OrderedDict()
        #: Counts since start: group messages refused (author not a member, or
        #: the group unknown or left) and changes refused (forged, unauthorised).
        self.refused_messages = 0
        self.refused_changes = 0
        #: Members to pass new changes on to once the receive committed: those
        #: a change's author did not know were members (concurrent adds).
        self._forwards: OrderedDict[tuple[PeerId, bytes], None] = OrderedDict()

    @property
    def me(self) -> PeerId:
        return self.messenger.peer_id

    # --- logs -----------------------------------------------------------------

    def log(self, group: bytes) -> GroupLog:
        """The group's log, folded (loaded from the store on first use)."""
        found = self._logs.pop(group, None)
        if found is None:
            found = GroupLog(group)
            found.add(self._decoded(group, self.store.group_entries(group)))
            self._load_held(found)
        self._logs[group] = found
        while len(self._logs) > MAX_CACHED_GROUPS:
            self._logs.popitem(last=False)
        return found

    @staticmethod
    def _decoded(group: bytes, rows: list[bytes]) -> list[ChangeEntry]:
        entries = []
        for encoded in rows:
            try:
                entries.append(decode_entry(encoded))
            except (WireError, SignatureError):  # a damaged row: the rest stands
                log.error("a stored change of group %s does not decode", group.hex())
        return entries

    def _load_held(self, glog: GroupLog) -> None:
        """Take the group's held entries from the store (those not too old);
        any the log now takes (or knew) are stored as changes and no longer held."""
        group = glog.group
        since = self.messenger.now_ms() - HELD_GROUP_ENTRY_TTL_MS
        held = self._decoded(group, self.store.held_group_entries(group, since))
        if not held:
            return
        out = glog.add(held)
        self.messenger.known.groups_changed()
        waiting = {e.hash for e in glog.held()}
        done = [e.hash for e in held if e.hash not in waiting]
        if out.added:
            self.store.add_group_entries(group, [(e.hash, e.encoded) for e in out.added])
        self.store.drop_held_group_entries(group, done)

    def forget(self, group: bytes) -> None:
        """Drop the in-memory log (after a failed commit, or a deleted group)."""
        self._logs.pop(group, None)
        self.messenger.known.groups_changed()

    def keep(
        self, group: bytes, entries: list[ChangeEntry], *, stored: bool = True
    ) -> list[ChangeEntry]:
        """Add entries to the log and, if ``stored``, the store (in the caller's
        transaction; the group's row must exist); the ones the log took, in order."""
        glog = self.log(group)
        out = glog.add(entries)
        self.messenger.known.groups_changed()
        self.refused_changes += len(out.refused)
        if stored:
            if out.added:
                self.store.add_group_entries(group, [(e.hash, e.encoded) for e in out.added])
            # Held entries are kept too (a restart must not lose them), until
            # applied or refused, or dropped for age or room.
            held = glog.held()
            waiting = {e.hash for e in held}
            fresh = {e.hash for e in entries}
            self.store.hold_group_entries(
                group,
                [(e.hash, e.encoded) for e in held if e.hash in fresh],
                self.messenger.now_ms(),
            )
            self.store.drop_held_group_entries(
                group,
                [e.hash for e in out.added]
                + [e.hash for e, _ in out.refused if e.hash not in waiting],
            )
        return list(out.added)

    def declined(self, group: bytes) -> bool:
        found = self.store.get_setting(DECLINED_SETTING, [])
        return isinstance(found, list) and group.hex() in found

    def decline(self, group: bytes) -> None:
        """Remember a declined group (in the caller's transaction)."""
        found = self.store.get_setting(DECLINED_SETTING, [])
        kept = [g for g in found if isinstance(g, str)] if isinstance(found, list) else []
        kept = [*kept, group.hex()][-MAX_DECLINED_GROUPS:]
        self.store.set_setting(DECLINED_SETTING, kept)

    def co_member(self, peer: PeerId) -> bool:
        """True if ``peer`` is in a group this node accepted (not a stranger);
        from the messenger's cached set (:class:`~p2pdm.node.known_peers.KnownPeers`)."""
        return self.messenger.known.co_member(peer)

    def co_members(self) -> set[PeerId]:
        """Every other member of the groups this node accepted, read from the
        store and the logs (what the messenger's cache is made from)."""
        out: set[PeerId] = set()
        for row in self.store.list_groups():
            if row.state == "active":
                out |= self.log(row.id).state().members
        out.discard(self.me)
        return out

    def note(self, group: bytes, entries: list[ChangeEntry], now: int, *, request: bool) -> None:
        """A notice in the group's conversation for each applied change
        ("Alice added Bob"), in the caller's transaction; once per entry (its
        notice's id is the entry's hash), whatever order the changes came in."""
        others = sorted(self.log(group).state().members - {self.me}, key=lambda p: p.raw)
        peer = others[0] if others else self.me
        for entry in entries:
            if self.store.get_message(notice_id(entry)) is not None:
                continue
            self.store.add_message(
                group_notice(entry, self.me, self._name_of, peer, now, request=request)
            )

    def _name_of(self, peer: PeerId) -> str:
        """A member as a notice names them: their contact name, else their short id."""
        contact = self.store.get_contact(peer)
        return contact.name if contact is not None and contact.name else peer.short()

    # --- sending (inside the caller's transaction) ----------------------------

    def queue(
        self,
        to: PeerId,
        body: Body,
        group: bytes,
        now: int,
        message_id: bytes | None = None,
        *,
        expires_s: int | None = None,
    ) -> InnerMessage:
        """Encrypt ``body`` for ``to`` in ``group``'s conversation and put its
        envelope in the outbox, expiring at ``expires_s`` (seconds; default the
        usual ENVELOPE_TTL_SECONDS from now, never later); raises what the
        messenger's encryption raises."""
        inner, sessions, session_message = self.messenger._encrypt(
            to, body, now, conversation=group, message_id=message_id
        )
        usual_s = now // 1000 + ENVELOPE_TTL_SECONDS
        expires_s = usual_s if expires_s is None else min(expires_s, usual_s)
        secret = self.messenger.random_bytes(EPHEMERAL_SECRET_BYTES)
        envelope = seal(to, session_message, expires_s, secret)
        self.store.put_session(to, sessions.to_bytes(), now)
        self.store.add_outbox(
            OutboxItem(
                envelope_id=envelope.id,
                message_id=inner.id,
                recipient=to,
                envelope=envelope.encode(),
                created_at_ms=now,
                expires_at_ms=expires_s * 1000,
                next_attempt_at_ms=now,
            )
        )
        return inner

    def queue_changes(self, to: PeerId, group: bytes, now: int, *, want: bool = False) -> bool:
        """Queue a group_change with the entries ``to`` may lack (and our heads;
        ``want`` asks for theirs); False if there was nothing to say."""
        glog = self.log(group)
        lacking = glog.missing_for(
            self.store.get_peer_heads(group, to), MAX_GROUP_ENTRIES_PER_MESSAGE
        )
        chosen: list[bytes] = []
        size = 0
        for entry in lacking:
            size += len(entry.encoded)
            if size > MAX_CHANGE_BYTES:
                break
            chosen.append(entry.encoded)
        if not chosen and not want:
            return False
        self.queue(to, GroupChangeBody(glog.heads, tuple(chosen), want), group, now)
        if len(chosen) == len(lacking):
            self.store.set_peer_heads(group, to, glog.heads)
        return True

    # --- receiving -------------------------------------------------------------

    def _due(self, peer: PeerId, group: bytes, want: bool, now: int) -> bool:
        """One sync answer (or request) per peer and group every GROUP_SYNC_INTERVAL_S."""
        key = (peer, group, want)
        last = self._synced.get(key)
        if last is not None and now - last < GROUP_SYNC_INTERVAL_S * 1000:
            return False
        self._synced[key] = now
        self._synced.move_to_end(key)
        while len(self._synced) > MAX_SYNC_MARKS:
            self._synced.popitem(last=False)
        return True

    def file(
        self, inner: InnerMessage, now: int, via: Via, held_until_ms: int | None = None
    ) -> Received:
        """File a group kind (the messenger's filer; in its transaction); an
        action whose message is not here yet is held until ``held_until_ms``
        (its envelope's expiry, as one-to-one: docs/protocol.md §6.7)."""
        body = inner.body
        group = inner.conversation
        if isinstance(body, (TypingBody, LiveLocationBody)):
            return self._ephemeral(inner, now, via)
        if self.store.get_group(group) is None and self.declined(group):
            return self._nothing(inner)  # an invitation the user declined
        if isinstance(body, GroupChangeBody):
            self._take_changes(inner.sender, group, body, now)
            return self._nothing(inner)
        assert isinstance(body, GroupMsgBody)
        row = self.store.get_group(group)
        if row is not None and row.state in ("left", "removed"):
            self.refused_messages += 1
            return self._nothing(inner)
        glog = self.log(group)
        if row is None or glog.unknown(body.heads):
            # Its changes are on their way (sent before it) or must be asked for.
            raise GroupBehind(
                f"a message of {inner.sender.short()} names group changes not here yet",
                inner.sender,
                group,
            )
        if inner.sender not in glog.state().members:
            self.refused_messages += 1
            log.info(
                "refused a message of %s in group %s: not a member",
                inner.sender.short(),
                group.hex(),
            )
            return self._nothing(inner)
        unwrapped = InnerMessage(
            inner.id,
            inner.sender,
            inner.recipient,
            group,
            inner.sent_at_ms,
            body.inner,
            inner.signature,
        )
        taken = self.store.get_message(inner.id)  # the wrapper's id was checked, not stored
        if taken is not None:
            raise MessageIdConflict(f"message id {inner.id.hex()} is taken by another message")
        return self.messenger._file(
            unwrapped,
            now,
            via,
            held_until_ms,
            group=group,
            member=row.state == "active",
        )

    def _ephemeral(self, inner: InnerMessage, now: int, via: Via) -> Received:
        """A member typing (or sharing a live location) in a group this node
        accepted is shown there; any other such signal naming a group is
        dropped (nothing is stored; the receiver's live-location code checks
        membership again before it keeps a position)."""
        group = inner.conversation
        row = self.store.get_group(group)
        if row is None or row.state != "active":
            return self._nothing(inner)
        if inner.sender not in self.log(group).state().members:
            return self._nothing(inner)
        return self.messenger._file(inner, now, via, group=group, member=True)

    def ask(self, behind: GroupBehind) -> None:
        """Ask the author of a message that named changes we lack for them (at
        most every GROUP_SYNC_INTERVAL_S per author and group; own transaction)."""
        peer, group, now = behind.peer, behind.group, self.messenger.now_ms()
        assert isinstance(peer, PeerId)
        # Strangers are not asked: their changes come first, and asking would
        # cost this node a request stamp for whoever makes up a group id.
        known = self.store.get_contact(peer) is not None or self.co_member(peer)
        if not known or not self._due(peer, group, True, now):
            return
        heads = self.log(group).heads or (bytes(32),)  # holding nothing: ask for all
        try:
            with self.store.transaction():
                self.queue(peer, GroupChangeBody(heads, (), True), group, now)
        except P2PDMError as exc:
            self.messenger.reload()
            log.info("could not ask %s for group changes: %s", peer.short(), exc)
            return
        self.wake(peer)

    def _take_changes(self, sender: PeerId, group: bytes, body: GroupChangeBody, now: int) -> None:
        entries = []
        for encoded in body.entries:
            try:
                entry = decode_entry(encoded)
            except (WireError, SignatureError) as exc:
                self.refused_changes += 1
                log.info("refused a group change from %s: %s", sender.short(), exc)
                continue
            if entry.group != group:
                self.refused_changes += 1
                continue
            entries.append(entry)
        row = self.store.get_group(group)
        if row is not None and row.state in ("left", "removed") and not self._mentions(entries):
            return
        added = self.keep(group, entries, stored=row is not None)
        glog = self.log(group)
        after = glog.state()
        known = self.store.get_contact(sender) is not None or self.co_member(sender)
        if row is None and self.me not in after.members:
            # Not (yet) in it: nothing stored. A known peer's log may come in
            # parts: keep the part in memory (bounded) and ask for the rest.
            if known and glog.unknown(body.heads):
                self._ask_inline(sender, group, glog, now)
            else:
                self.forget(group)
            return
        if added:
            self._settle(row, after, added, sender, group, now)
            self._note_forwards(glog, added, after, sender, group)
        if self.store.get_group(group) is None:
            return
        self.store.set_peer_heads(group, sender, tuple(h for h in body.heads if h in glog))
        # Only members are answered: the log is the group's, not anyone's.
        answer = body.want and sender in after.members and self._due(sender, group, False, now)
        if answer and self.queue_changes(sender, group, now):
            self.wake(sender)
        elif known and glog.unknown(body.heads):
            self._ask_inline(sender, group, glog, now)

    def _ask_inline(self, sender: PeerId, group: bytes, glog: GroupLog, now: int) -> None:
        """Ask the sender of changes for the rest of its log, in the receive's
        transaction (only the sender's session moves, which that commit keeps)."""
        if self._due(sender, group, True, now):
            self.queue(sender, GroupChangeBody(glog.heads or (bytes(32),), (), True), group, now)
            self.wake(sender)

    def _note_forwards(
        self,
        glog: GroupLog,
        added: list[ChangeEntry],
        after: GroupState,
        sender: PeerId,
        group: bytes,
    ) -> None:
        """Members whom the authors of ``added`` did not tell (they were not
        members as the author saw the group) get the changes from us."""
        for entry in added:
            seen = glog.state_at(entry.parents) if entry.parents else None
            told = set(entry.peers) | {entry.author} | (set(seen.members) if seen else set())
            for peer in after.members - told - {self.me, sender}:
                self._forwards[(peer, group)] = None
        while len(self._forwards) > MAX_SYNC_MARKS:
            self._forwards.popitem(last=False)

    def flush_forwards(self) -> None:
        """Send the changes noted by :meth:`_note_forwards` (own transaction)."""
        if not self._forwards:
            return
        due, self._forwards = list(self._forwards), OrderedDict()
        now = self.messenger.now_ms()
        sent = []
        try:
            with self.store.transaction():
                for peer, group in due:
                    row = self.store.get_group(group)
                    if row is not None and row.state == "active":
                        try:
                            if self.queue_changes(peer, group, now):
                                sent.append(peer)
                        except (SessionError, PeerBlocked) as exc:
                            log.info("changes not passed on to %s: %s", peer.short(), exc)
        except P2PDMError as exc:
            self.messenger.reload()
            log.warning("could not pass group changes on: %s", exc)
            return
        for peer in sent:
            self.wake(peer)

    def _mentions(self, entries: list[ChangeEntry]) -> bool:
        return any(self.me in e.peers and e.op in ("add", "create") for e in entries)

    def _settle(
        self,
        row: GroupRow | None,
        after: GroupState,
        added: list[ChangeEntry],
        sender: PeerId,
        group: bytes,
        now: int,
    ) -> None:
        """Update the group's row after new changes and log their events."""
        self.messenger.known.groups_changed()
        member = self.me in after.members
        if row is None:
            accepted = self.store.get_contact(sender) is not None and not self.store.is_blocked(
                sender
            )
            row = GroupRow(group, "active" if accepted else "request", sender, now, after.name)
            self.store.put_group(row)
            glog = self.log(group)
            self.store.add_group_entries(group, [(e.hash, e.encoded) for e in glog.entries()])
            self.store.hold_group_entries(group, [(e.hash, e.encoded) for e in glog.held()], now)
            self.store.add_event(
                EventType.GROUP_CREATED,
                now,
                sender,
                detail=change_detail(added[0]),
                request=not accepted,
                conversation_id=group,
            )
            self.note(group, glog.entries(), now, request=not accepted)
            return
        state = row.state
        if not member and state in ("active", "request"):
            state = "removed"
        elif member and state in ("removed", "left"):
            # Added again: as any invitation, a stranger's is a request.
            adder = self.store.get_contact(sender) is not None and not self.store.is_blocked(sender)
            state = "active" if adder else "request"
        self.store.put_group(GroupRow(group, state, row.invited_by, row.joined_at_ms, after.name))
        self.note(group, added, now, request=state == "request")
        for entry in added:
            self.store.add_event(
                EventType.GROUP_CHANGED,
                now,
                entry.author,
                detail=change_detail(entry),
                request=state == "request",
                conversation_id=group,
            )
        if state == "removed" and row.state != "removed":
            self.store.add_event(EventType.GROUP_REMOVED, now, sender, conversation_id=group)

    @staticmethod
    def _nothing(inner: InnerMessage) -> Received:
        from p2pdm.core.conversation import Effects

        return Received(inner.sender, inner, None, (), "other", Effects("other"))
