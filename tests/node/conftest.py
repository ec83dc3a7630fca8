"""Shared fixtures of the node tests: messengers over both stores, a settable clock."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.kinds import Body
from p2pdm.core.sealing import check_inner, open_envelope
from p2pdm.core.wire import Envelope
from p2pdm.node.messenger import Messenger
from p2pdm.node.node import Node
from p2pdm.node.request_stamps import RequestStamps
from p2pdm.store.base import Store
from p2pdm.store.memory import MemoryStore
from p2pdm.store.sqlite import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    counter = itertools.count()

    def make() -> MemoryStore | SQLiteStore:
        if request.param == "memory":
            return MemoryStore()
        return SQLiteStore(tmp_path / f"s{next(counter)}.sqlite")

    yield make


@pytest.fixture
def clock() -> Clock:
    return Clock()


def peek_body(envelope: bytes, to: Messenger) -> Body:
    """The body of the message ``envelope`` carries, as ``to`` opens it, leaving
    ``to``'s sessions and prekeys as they were (nothing is accepted)."""
    outer = open_envelope(to.identity, Envelope.decode(envelope))
    sessions = to._session(outer.sender)
    try:
        return check_inner(to.identity, outer, sessions.decrypt(to.own, outer)).body
    finally:
        to._forget_session(outer.sender)
        to.own = to._load_prekeys()


class FixedStamps(RequestStamps):
    """Request stamps that are always ``token`` (None: never a stamp)."""

    def __init__(self, real: RequestStamps, token: bytes | None) -> None:
        super().__init__(real.me, real.store, real.bits, real.now_ms)
        self.token = token

    def for_peer(self, peer: PeerId) -> bytes | None:
        return self.token


def make(name: str, store: Store, clock: Clock) -> Node:
    """A node named ``name`` on ``store`` with the settable ``clock``."""
    node = Node(Identity(os.urandom(32)), store, now_ms=clock)
    node.update_settings({"name": name})
    return node


@pytest.fixture
def nodes(make_store: Callable[[], Store], clock: Clock) -> tuple[Node, Node]:
    """Alice's and Bob's nodes, contacts of each other, on the same clock."""
    alice, bob = make("alice", make_store(), clock), make("bob", make_store(), clock)
    alice.add_contact_from_invite(bob.invite(), "bob")
    bob.add_contact_from_invite(alice.invite(), "alice")
    return alice, bob


@pytest.fixture
def pair(make_store, clock):  # type: ignore[no-untyped-def]
    alice = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    alice.add_contact(bob.peer_id, "bob", bob.bundle())
    bob.add_contact(alice.peer_id, "alice", alice.bundle())
    return alice, bob
