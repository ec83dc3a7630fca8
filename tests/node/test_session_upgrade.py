"""A store whose sessions were saved by the version before the compact session
state: its conversations go on, and each session is rewritten compact."""

from __future__ import annotations

import os
from pathlib import Path

from p2pdm.core import cbor
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.session import PeerSessions
from p2pdm.core.wire import TextBody
from p2pdm.node.messenger import Messenger
from p2pdm.store.base import Store
from p2pdm.store.sqlite import SQLiteStore
from tests.legacy_sessions import legacy_bytes
from tests.node.conftest import Clock


def _version(store: Store, peer: PeerId) -> int:
    data = store.get_session(peer)
    assert data is not None
    return int(cbor.decode(data, 1 << 20)["v"])


def test_sessions_saved_before_the_compact_form_go_on(tmp_path: Path) -> None:
    clock = Clock()
    ids = Identity(os.urandom(32)), Identity(os.urandom(32))
    paths = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    alice, bob = (
        Messenger(i, SQLiteStore(p), now_ms=clock) for i, p in zip(ids, paths, strict=True)
    )
    alice.add_contact(bob.peer_id, "bob", bob.bundle())
    bob.add_contact(alice.peer_id, "alice", alice.bundle())
    bob.receive(alice.send_text(bob.peer_id, "before").outbox.envelope)
    alice.receive(bob.send_text(alice.peer_id, "reply").outbox.envelope)
    in_flight = alice.send_text(bob.peer_id, "sent before the upgrade").outbox.envelope
    # Both stores as the previous version left them.
    for m, peer in ((alice, bob.peer_id), (bob, alice.peer_id)):
        data = m.store.get_session(peer)
        sessions = PeerSessions.from_bytes(peer, data)
        with m.store.transaction():
            m.store.put_session(peer, legacy_bytes(sessions), clock())
        assert _version(m.store, peer) == 1
        m.store.close()

    alice, bob = (
        Messenger(i, SQLiteStore(p), now_ms=clock) for i, p in zip(ids, paths, strict=True)
    )
    got = bob.receive(in_flight)
    assert got.inner.body == TextBody("sent before the upgrade")
    for text in ("after", "and after"):
        bob.receive(alice.send_text(bob.peer_id, text).outbox.envelope)
        alice.receive(bob.send_text(alice.peer_id, text + "!").outbox.envelope)
    assert _version(alice.store, bob.peer_id) == 2
    assert _version(bob.store, alice.peer_id) == 2
    assert bob.store.counts()["messages"] == alice.store.counts()["messages"] == 7
