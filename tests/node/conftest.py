"""Shared fixtures of the node tests: messengers over both stores, a settable clock,
and nodes joined by hand for groups."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.kinds import BlobChunkBody, Body
from p2pdm.core.sealing import check_inner, open_envelope
from p2pdm.core.wire import Envelope
from p2pdm.errors import RateLimited
from p2pdm.node.messenger import Messenger
from p2pdm.node.node import Node
from p2pdm.node.request_stamps import RequestStamps
from p2pdm.store.base import Store
from p2pdm.store.memory import MemoryStore
from p2pdm.store.sqlite import SQLiteStore
from tests.conftest import make_node


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


# --- groups: nodes joined by hand (no network) ---------------------------------


def acquainted(*nodes: Node) -> None:
    """Make each of ``nodes`` a contact of every other, from their invites."""
    for a, b in itertools.permutations(nodes, 2):
        a.add_contact_from_invite(b.invite(), b.name)


#: What :func:`flush` saw refused, as the network would (kept for a look in a debugger).
refusals: list[Exception] = []


def chunks_for(sender: Node, to: Node) -> list[tuple[bytes, int]]:
    """The file chunks queued from ``sender`` to ``to``, in outbox order."""
    out = []
    for item in sender.store.outbox_for(to.peer_id):
        body = peek_body(item.envelope, to.messenger)
        if isinstance(body, BlobChunkBody):
            out.append((body.blob_id, body.index))
    return out


def flush(*nodes: Node, rounds: int = 6) -> int:
    """Deliver every queued envelope between ``nodes`` until none is left; how many."""
    moved = 0
    by_peer = {n.peer_id: n for n in nodes}
    for _ in range(rounds):
        busy = False
        for sender in nodes:
            for item in sender.store.outbox_page(b"", 1000):
                recipient = by_peer.get(item.recipient)
                if recipient is None:
                    continue
                try:
                    recipient.messenger.receive(item.envelope)
                except RateLimited:  # "retry": it stays in the outbox
                    continue
                except Exception as exc:  # a refusal, as the network would see it
                    refusals.append(exc)
                sender.store.remove_outbox(item.envelope_id)
                moved += 1
                busy = True
        if not busy:
            return moved
    raise AssertionError("envelopes kept coming")


@pytest.fixture
def four() -> tuple[Node, Node, Node, Node]:
    """Alice, Bob, Carol and Dave, each a contact of every other."""
    nodes = tuple(make_node(n) for n in ("alice", "bob", "carol", "dave"))
    acquainted(*nodes)
    return nodes  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class GroupOfThree:
    """Alice's group "bakers" with Bob and Carol (contacts of one another), its
    creation delivered to both."""

    alice: Node
    bob: Node
    carol: Node
    id: bytes

    @property
    def nodes(self) -> tuple[Node, Node, Node]:
        return self.alice, self.bob, self.carol


@pytest.fixture
async def group_of_three() -> GroupOfThree:
    alice, bob, carol = (make_node(n) for n in ("alice", "bob", "carol"))
    acquainted(alice, bob, carol)
    group = (await alice.create_group("bakers", [bob.peer_id, carol.peer_id])).row.id
    flush(alice, bob, carol)
    return GroupOfThree(alice, bob, carol, group)
