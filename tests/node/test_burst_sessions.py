"""A burst received in one store group saves the sender's session once, at the
group's commit; a message of the burst that fails leaves the session as the
message before it left it, so the rest of the burst, the failed message's
retry and what follows all decrypt, before and after the store is reopened."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from p2pdm.core.identity import Identity
from p2pdm.core.model import StoredMessage
from p2pdm.errors import StoreError
from p2pdm.node.messenger import Messenger
from p2pdm.store import SQLiteStore
from p2pdm.store.base import Store


class FailingOnce(SQLiteStore):
    """Refuses to store one message, once (as a full disk would)."""

    refuse: bytes | None = None

    def add_message(self, message: StoredMessage) -> StoredMessage:
        if message.id == self.refuse:
            self.refuse = None
            raise StoreError("storing it failed")
        return super().add_message(message)


def test_a_failed_message_in_a_burst_leaves_the_session_as_the_one_before_it(
    tmp_path: Path,
) -> None:
    alice_id, bob_id = Identity(os.urandom(32)), Identity(os.urandom(32))
    alice = Messenger(alice_id, SQLiteStore(tmp_path / "alice.sqlite"), request_stamp_bits=0)
    bob_store = FailingOnce(tmp_path / "bob.sqlite", synchronous="NORMAL")
    bob = Messenger(bob_id, bob_store, request_stamp_bits=0)
    alice.add_contact(bob_id.peer_id, "bob", bob.bundle())
    bob.add_contact(alice_id.peer_id, "alice", alice.bundle())
    first = alice.send_text(bob_id.peer_id, "hello")
    bob.receive(first.outbox.envelope)  # the session is set up
    outs = [alice.send_text(bob_id.peer_id, f"message {n}") for n in range(4)]
    assert outs[1].message is not None
    bob_store.refuse = outs[1].message.id
    with bob_store.group():
        bob.receive(outs[0].outbox.envelope)
        with pytest.raises(StoreError, match="storing it failed"):
            bob.receive(outs[1].outbox.envelope)
        for out in outs[2:]:
            bob.receive(out.outbox.envelope)
    bob.receive(outs[1].outbox.envelope)  # its retry
    texts = {m.body for m in _stored(bob_store)}
    assert len(texts) == 5
    bob_store.close()
    reopened = SQLiteStore(tmp_path / "bob.sqlite")
    bob = Messenger(bob_id, reopened, request_stamp_bits=0)
    later = alice.send_text(bob_id.peer_id, "after the restart")
    bob.receive(later.outbox.envelope)
    assert len(_stored(reopened)) == 6
    reopened.close()
    alice.store.close()


def _stored(store: Store) -> list[StoredMessage]:
    [conversation] = store.list_conversations()
    return list(store.messages(conversation.id, limit=50).messages)


def test_a_failed_send_in_a_group_never_takes_the_session_back_further(tmp_path: Path) -> None:
    """Sends committed together (as concurrent API calls are): one fails
    after it encrypted; the next sends go on from the state the send before
    it left, so no message key is used twice and every envelope decrypts."""
    alice_id, bob_id = Identity(os.urandom(32)), Identity(os.urandom(32))
    alice_store = FailingOnce(tmp_path / "alice.sqlite", synchronous="NORMAL")
    alice = Messenger(alice_id, alice_store, request_stamp_bits=0)
    bob = Messenger(bob_id, SQLiteStore(tmp_path / "bob.sqlite"), request_stamp_bits=0)
    alice.add_contact(bob_id.peer_id, "bob", bob.bundle())
    bob.add_contact(alice_id.peer_id, "alice", alice.bundle())
    bob.receive(alice.send_text(bob_id.peer_id, "hello").outbox.envelope)
    # Bob answers, so Alice's next sends start a new sending chain.
    alice.receive(bob.send_text(alice_id.peer_id, "hi").outbox.envelope)
    original = alice_store.add_message
    seen: list[bytes] = []

    def refuse_the_second(message: StoredMessage) -> StoredMessage:
        seen.append(message.id)
        if len(seen) == 2:
            alice_store.refuse = message.id
        return original(message)

    alice_store.add_message = refuse_the_second  # type: ignore[method-assign]
    sent = []
    with alice_store.group():
        for n in range(4):
            with contextlib.suppress(StoreError):  # the second
                sent.append(alice.send_text(bob_id.peer_id, f"message {n}"))
    assert len(sent) == 3
    for out in sent:
        bob.receive(out.outbox.envelope)
    alice_store.close()
    reopened = SQLiteStore(tmp_path / "alice.sqlite")
    alice = Messenger(alice_id, reopened, request_stamp_bits=0)
    bob.receive(alice.send_text(bob_id.peer_id, "after the restart").outbox.envelope)
    assert len(_stored(bob.store)) == 6
    reopened.close()
