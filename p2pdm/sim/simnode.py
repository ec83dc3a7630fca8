"""One simulated node, what a probe sees of it, and what its store says at the end.

How this works: a :class:`SimNode` is an identity and a store that outlive the
node's runs (the network starts a fresh :class:`~p2pdm.node.node.Node` on the
store each time); a :class:`Probe` sees every node and delivery service
before they serve anything; :func:`collect` reads the stores after a run.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import trio

from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import DeliveryStatus
from p2pdm.daemon.runner import Serving
from p2pdm.errors import P2PDMError
from p2pdm.node.node import Node
from p2pdm.node.observer import NodeObserver
from p2pdm.services.dm import Delivery
from p2pdm.services.mailbox_server import MAILBOX_PURGE_INTERVAL_SECONDS
from p2pdm.sim.layout import fixed_count, identity_seeds
from p2pdm.store import MemoryStore, SQLiteStore, Store

__all__ = ["Collected", "Probe", "SimNode", "collect", "make_sim_nodes"]

#: Told apart from the identity seed it is joined to, it seeds a node's randomness.
RANDOM_SEED_PREFIX: Final = b"p2pdm-sim-random"
#: Mailbox envelopes kept per recipient and page when checking expiry.
MAILBOX_CHECK_PAGE: Final = 500


class Probe(Protocol):
    """Sees each node's parts before they serve anything (for measurements)."""

    def observer(self, sim_node: SimNode) -> NodeObserver: ...
    def delivery_created(self, sim_node: SimNode, delivery: Delivery) -> None: ...


@dataclass
class Collected:
    """What the nodes' stores say at the end of a run (added up over processes)."""

    undelivered: Counter[str] = field(default_factory=Counter)
    held_in_mailboxes: int = 0
    expired_in_mailboxes: int = 0
    restarts: int = 0

    def add(self, other: Collected) -> None:
        self.undelivered.update(other.undelivered)
        self.held_in_mailboxes += other.held_in_mailboxes
        self.expired_in_mailboxes += other.expired_in_mailboxes
        self.restarts += other.restarts


class SimNode:
    """One simulated node: an identity and a store that outlive its runs."""

    def __init__(self, index: int, seed: bytes, store: Store | None, *, mailbox: bool, fixed: bool):
        self.index = index
        self.identity = Identity(seed)
        #: None: the node runs in another worker process (``--workers``).
        self._store = store
        #: The node's randomness (message ids, nonces, jitter): seeded, kept across restarts.
        self.random = random.Random(RANDOM_SEED_PREFIX + seed)
        #: Offers the mailbox service.
        self.offers_mailbox = mailbox
        #: A bootstrap or mailbox node: never stopped by the simulation.
        self.fixed = fixed
        #: The node of the current run; the last one while stopped.
        self.node: Node | None = None
        self.serving: Serving | None = None
        self.starts = 0
        #: Record publications of the current run that have ended (succeeded or not).
        self.publications = 0
        #: Whether one of them reached a peer (a put every query of which
        #: failed stored the record only here; the node tries again later).
        self.published = False
        self._scope: trio.CancelScope | None = None
        self._done = trio.Event()

    @property
    def peer_id(self) -> PeerId:
        return self.identity.peer_id

    @property
    def local(self) -> bool:
        """Whether this process runs the node (else only its identity is known here)."""
        return self._store is not None

    @property
    def store(self) -> Store:
        """The node's store; raises RuntimeError for a node run by another process."""
        if self._store is None:
            raise RuntimeError(f"sim node {self.index} runs in another worker process")
        return self._store

    @property
    def online(self) -> bool:
        return self.serving is not None

    @property
    def running(self) -> Serving:
        """The running services; raises RuntimeError while stopped."""
        if self.serving is None:
            raise RuntimeError(f"sim node {self.index} is not running")
        return self.serving


def _store(store_dir: Path | None, index: int) -> Store:
    if store_dir is None:
        return MemoryStore()
    store_dir.mkdir(parents=True, exist_ok=True)
    path = store_dir / f"node{index:04d}.db"
    with suppress(FileNotFoundError):
        path.unlink()  # a new identity each run: never reuse an old store
    # A simulation need not survive power loss: fewer fsyncs (WAL).
    return SQLiteStore(path, synchronous="NORMAL")


def make_sim_nodes(
    count: int,
    rng: random.Random,
    *,
    store_dir: Path | None,
    mailboxes: int,
    local: Callable[[int], bool] = lambda index: True,
) -> list[SimNode]:
    """``count`` nodes with identities drawn from ``rng``, in order; a store
    only for those ``local`` says this process runs."""
    fixed = fixed_count(count, mailboxes)
    # Drawn for every node: the same identities in every process.
    seeds = identity_seeds(rng, count)
    return [
        SimNode(
            index,
            seeds[index],
            _store(store_dir, index) if local(index) else None,
            mailbox=index < mailboxes,
            fixed=index < fixed,
        )
        for index in range(count)
    ]


def collect(
    nodes: Sequence[SimNode],
    undelivered: Iterable[tuple[bytes, int, int]],
    now_ms: int,
    *,
    mailboxes: bool = True,
) -> Collected:
    """What this process's stores say at the end of a run.

    ``undelivered``: (message id, sender, recipient) of messages never
    committed, each explained by its sender's last status. With
    ``mailboxes``: also envelopes the mailbox nodes still hold, those
    held past expiry, and restarts.
    """
    collected = Collected()
    for message_id, sender, recipient in undelivered:
        store = nodes[sender].store
        try:
            message = store.get_message(message_id)
            history = store.status_history(message_id)
        except P2PDMError:
            message, history = None, []
        status = message.status if message is not None else DeliveryStatus.FAILED
        detail = history[-1].detail if history else ""
        outbox = [
            i for i in store.outbox_for(nodes[recipient].peer_id) if i.message_id == message_id
        ]
        last_error = outbox[0].last_error if outbox else ""
        reason = f"{status.value}: {detail or last_error or 'no detail'}"[:160]
        collected.undelivered[reason] += 1
    if not mailboxes:
        return collected
    grace_ms = int(MAILBOX_PURGE_INTERVAL_SECONDS * 1000)
    local = [n for n in nodes if n.local]
    for sim_node in local:
        if not sim_node.offers_mailbox:
            continue
        held, _ = sim_node.store.mailbox_usage()
        collected.held_in_mailboxes += held
        for other in nodes:
            page = sim_node.store.mailbox_fetch(other.peer_id, 0, 0, MAILBOX_CHECK_PAGE)
            # Purged every MAILBOX_PURGE_INTERVAL_SECONDS: expired past that is a breach.
            collected.expired_in_mailboxes += sum(
                1 for item in page if item.expires_at_ms + grace_ms < now_ms
            )
    collected.restarts = sum(n.starts - 1 for n in local if n.starts)
    return collected
