"""A burst of envelopes on a dm stream is opened in a worker thread; the
session work and the acks keep the order they came in."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable

import pytest
import trio
import trio.testing

from p2pdm.core import sealing
from p2pdm.core.dm import DM_PROTOCOL, Ack, Deliver, decode_ack
from p2pdm.core.identity import Identity
from p2pdm.core.sealing import Opened
from p2pdm.net.frames import encode_frame
from p2pdm.net.stream import Stream
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.services.dm import Delivery
from p2pdm.services.dm import receiver as receiver_module
from p2pdm.services.limits import MIN_THREADED_OPENING
from p2pdm.store.memory import MemoryStore
from tests.fakenet import FakeNetwork, _Raw

BURST = 3 * MIN_THREADED_OPENING


class _Peer:
    def __init__(self, net: FakeNetwork) -> None:
        self.node = Node(Identity(os.urandom(32)), MemoryStore())
        self.host = net.host(self.node.peer_id)
        self.delivery = Delivery(self.node, self.host, rng=random.Random(1))


def _recording(threads: list[str]) -> Callable[[Identity, bytes], Opened]:
    opener = sealing.open_ahead

    def record(identity: Identity, data: bytes) -> Opened:
        threads.append(threading.current_thread().name)
        return opener(identity, data)

    return record


async def test_a_burst_is_opened_off_the_event_loop_and_kept_in_order(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = FakeNetwork(nursery)
    alice, bob = _Peer(net), _Peer(net)
    alice.node.add_contact_from_invite(bob.node.invite())
    bob.node.add_contact_from_invite(alice.node.invite())
    threads: list[str] = []
    monkeypatch.setattr(receiver_module, "open_ahead", _recording(threads))
    envelopes = [
        alice.node.messenger.send_text(bob.node.peer_id, f"m{i}").outbox.envelope
        for i in range(BURST)
    ]
    # A forged envelope and a replay among them are refused in their turn.
    envelopes[5] = os.urandom(len(envelopes[5]))
    envelopes[9] = envelopes[8]
    ours, theirs = trio.testing.memory_stream_pair()
    nursery.start_soon(
        bob.delivery.receiver.handle_stream, Stream(_Raw(theirs), alice.node.peer_id, DM_PROTOCOL)
    )
    # All frames at once: the receiver finds them buffered together.
    await ours.send_all(
        b"".join(encode_frame(Deliver(i, e).encode()) for i, e in enumerate(envelopes))
    )
    stream = Stream(_Raw(ours), bob.node.peer_id, DM_PROTOCOL)
    acks: list[Ack] = []
    with trio.fail_after(30):
        while len(acks) < BURST:
            frame = await stream.read_frame(1 << 14, 30)
            assert frame is not None
            acks.append(decode_ack(frame))
    assert [a.seq for a in acks] == list(range(BURST))
    assert [a.result for a in acks[4:10]] == ["ok", "rejected", "ok", "ok", "ok", "ok"]
    assert acks[9].detail == "already stored"
    stored = bob.node.messages(alice.node.peer_id, limit=BURST).messages
    expected = [f"m{i}" for i in range(BURST) if i not in (5, 9)]
    # Newest first: stored in the order they came.
    assert [message_text(m) for m in reversed(stored)] == expected
    main = threading.current_thread().name
    assert threads and all(name != main for name in threads)
