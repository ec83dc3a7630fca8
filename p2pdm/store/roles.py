"""Narrow views of the store, one per service that uses it.

How this works: each role is a :class:`typing.Protocol` holding only the
methods one service calls, with the signatures of
:class:`~p2pdm.store.base.Store` (which every store implements, and so every
role too: ``store/__init__.py`` has mypy prove it). A service asks for its
role, not the whole store, so its annotation says what it may touch and a
test can hand it a small fake.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.core.model import Contact, DeliveryStatus, OutboxItem

__all__ = ["MailboxStore", "OutboxStore"]


class MailboxStore(Protocol):
    """What the mailbox server (``services/mailbox_server.py``) uses: envelopes held for others."""

    def transaction(self) -> AbstractContextManager[None]: ...
    def mailbox_add(self, item: StoredEnvelope) -> tuple[StoredEnvelope, bool]: ...
    def mailbox_fetch(
        self, recipient: PeerId, after_seq: int, now_ms: int, limit: int
    ) -> list[StoredEnvelope]: ...
    def mailbox_delete(self, recipient: PeerId, seqs: Sequence[int]) -> int: ...
    def mailbox_usage(
        self, recipient: PeerId | None = None, depositor: bytes | None = None
    ) -> tuple[int, int]: ...
    def mailbox_purge(self, now_ms: int) -> int: ...
    def mailbox_recipients(self) -> int: ...


class OutboxStore(Protocol):
    """What direct delivery (``services/dm.py``) uses: the outbox, the mailboxes that
    hold our envelopes, the statuses of our messages, and contacts' addresses."""

    def transaction(self) -> AbstractContextManager[None]: ...
    def group(self) -> AbstractContextManager[None]: ...
    def get_contact(self, peer: PeerId) -> Contact | None: ...
    def get_outbox(self, envelope_id: bytes) -> OutboxItem | None: ...
    def outbox_due(self, now_ms: int, limit: int) -> list[OutboxItem]: ...
    def outbox_for(
        self, recipient: PeerId, due_at_ms: int | None = None, limit: int | None = None
    ) -> list[OutboxItem]: ...
    def reschedule_outbox(
        self, envelope_id: bytes, next_attempt_at_ms: int, attempts: int, last_error: str = ""
    ) -> None: ...
    def remove_outbox(self, envelope_id: bytes) -> bool: ...
    def add_deposit(self, envelope_id: bytes, mailbox: PeerId, until_ms: int) -> None: ...
    def deposits(self, envelope_id: bytes) -> list[tuple[PeerId, int]]: ...
    def set_status(
        self,
        message_id: bytes,
        status: DeliveryStatus,
        at_ms: int,
        detail: str = "",
        *,
        recipient: PeerId | None = None,
    ) -> bool: ...
    def note_status(
        self, message_id: bytes, at_ms: int, detail: str, *, recipient: PeerId | None = None
    ) -> bool: ...
