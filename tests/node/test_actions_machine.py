"""Two people sending, reacting, editing, unsending, reading and changing the
disappearing timer at random, with envelopes lost (and sent again), duplicated
and reordered, and expired messages purged at any time, end up seeing the same
conversation with the same timer."""

from __future__ import annotations

import contextlib
import os

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from p2pdm.core.identity import Identity
from p2pdm.core.model import direct_conversation_id
from p2pdm.errors import ActionRefused, ReplayError
from p2pdm.limits import DISAPPEARING_TIMERS_S
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.store.memory import MemoryStore
from tests.node.conftest import Clock

EMOJI = st.sampled_from(["", "👍", "❤️", "😮"])
WORDS = st.sampled_from(["a", "b", "c", "d"])
#: Most messages one page shows in the comparison (far more than a run sends).
PAGE = 500

Visible = dict[bytes, tuple[str | None, int | None, int, tuple[tuple[str, tuple[str, ...]], ...]]]


def visible(node: Node, other: Node) -> tuple[Visible, set[bytes]]:
    """What ``node`` shows of its conversation with ``other``: each message still
    there (text, edit time, timer, reactions), and the ids shown as unsent."""
    messages = list(node.messages(other.peer_id, PAGE).messages)
    extras = node.extras(messages)
    shown: Visible = {}
    unsent = set()
    for m in messages:
        if m.unsent:
            unsent.add(m.id)
            continue
        reactions = tuple(
            sorted(
                (e, tuple(sorted(str(p) for p in peers)))
                for e, peers in extras[m.id].reactions.items()
            )
        )
        shown[m.id] = (message_text(m), m.edited_at_ms, m.timer_s, reactions)
    return shown, unsent


class TwoPeople(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.people = [
            Node(Identity(os.urandom(32)), MemoryStore(), now_ms=self.clock) for _ in range(2)
        ]
        a, b = self.people
        a.messenger.add_contact(b.peer_id, "b", b.messenger.bundle())
        b.messenger.add_contact(a.peer_id, "a", a.messenger.bundle())
        #: Envelopes on the way: (recipient index, bytes).
        self.wire: list[tuple[int, bytes]] = []
        self.ids: list[bytes] = []
        self._conversation = direct_conversation_id(a.peer_id, b.peer_id)
        # Sessions both ways first, so any later order decrypts.
        a.send_text(b.peer_id, "hi")
        self._flush(0)
        self._deliver_all()
        b.send_text(a.peer_id, "hello")
        self._flush(1)
        self._deliver_all()

    def _flush(self, who: int) -> None:
        me, other = self.people[who], self.people[1 - who]
        for item in me.store.outbox_for(other.peer_id):
            me.store.remove_outbox(item.envelope_id)
            self.wire.append((1 - who, item.envelope))

    def _receive(self, to: int, envelope: bytes) -> None:
        with contextlib.suppress(ReplayError):  # a duplicate: refused, changes nothing
            self.people[to].messenger.receive(envelope, "mailbox")

    def _deliver_all(self) -> None:
        while self.wire:
            self._receive(*self.wire.pop(0))

    def _pick(self, n: int) -> bytes | None:
        return self.ids[n % len(self.ids)] if self.ids else None

    @rule(who=st.integers(0, 1), text=WORDS, reply=st.integers(0, 50) | st.none())
    def send(self, who: int, text: str, reply: int | None) -> None:
        me, other = self.people[who], self.people[1 - who]
        target = None if reply is None else self._pick(reply)
        if target is not None and me.store.get_message(target) is None:
            target = None
        self.ids.append(me.send_text(other.peer_id, text, reply_to=target).id)

    @rule(who=st.integers(0, 1), n=st.integers(0, 50), emoji=EMOJI)
    def react(self, who: int, n: int, emoji: str) -> None:
        target = self._pick(n)
        if target is not None and self.people[who].store.get_message(target) is not None:
            with contextlib.suppress(ActionRefused):
                self.people[who].react(target, emoji)

    @rule(who=st.integers(0, 1), n=st.integers(0, 50), text=WORDS)
    def edit(self, who: int, n: int, text: str) -> None:
        target = self._pick(n)
        if target is not None and self.people[who].store.get_message(target) is not None:
            with contextlib.suppress(ActionRefused):
                self.people[who].edit(target, text)

    @rule(who=st.integers(0, 1), n=st.integers(0, 50))
    def unsend(self, who: int, n: int) -> None:
        target = self._pick(n)
        found = None if target is None else self.people[who].store.get_message(target)
        if found is not None and found.direction.value == "out":
            self.people[who].unsend(found.id)

    @rule(who=st.integers(0, 1), timer_s=st.sampled_from(DISAPPEARING_TIMERS_S))
    def timer(self, who: int, timer_s: int) -> None:
        me, other = self.people[who], self.people[1 - who]
        me.update_conversation(self._conversation, other.peer_id, timer_s=timer_s)

    @rule(who=st.integers(0, 1))
    def read(self, who: int) -> None:
        self.people[who].mark_read(self.people[1 - who].peer_id)

    @rule(who=st.integers(0, 1))
    def purge(self, who: int) -> None:
        self.people[who].purge_expired()

    @rule(ms=st.sampled_from([0, 1, 1000, 20 * 60 * 1000]))
    def tick(self, ms: int) -> None:
        self.clock.ms += ms

    @rule(who=st.integers(0, 1))
    def flush(self, who: int) -> None:
        self._flush(who)

    @rule(n=st.integers(0, 50))
    def deliver(self, n: int) -> None:
        if self.wire:
            self._receive(*self.wire.pop(n % len(self.wire)))

    @rule(n=st.integers(0, 50))
    def lose_and_resend(self, n: int) -> None:
        if self.wire:  # lost on the way; the sender's retry goes to the back
            self.wire.append(self.wire.pop(n % len(self.wire)))

    @rule(n=st.integers(0, 50))
    def duplicate(self, n: int) -> None:
        if self.wire:
            self.wire.append(self.wire[n % len(self.wire)])

    def teardown(self) -> None:
        for who in (0, 1):
            self._flush(who)
        self._deliver_all()
        a, b = self.people
        timers = [p.store.get_conversation(self._conversation) for p in self.people]
        assert timers[0] is not None and timers[1] is not None
        assert timers[0].timer_s == timers[1].timer_s
        # Everything read, the receipts delivered, the longest timer run out:
        # every message with a timer is gone from both sides.
        for who in (0, 1):
            self.read(who)
            self._flush(who)
        self._deliver_all()
        self.clock.ms += max(DISAPPEARING_TIMERS_S) * 1000 + 1
        for who in (0, 1):
            self.purge(who)
        (shown_a, unsent_a), (shown_b, unsent_b) = visible(a, b), visible(b, a)
        assert shown_a == shown_b
        # An unsent message is shown as unsent, or (never delivered) not at all.
        assert not (unsent_a | unsent_b) & (set(shown_a) | set(shown_b))
        assert not any(timer for _, _, timer, _ in shown_a.values())


TestTwoPeople = TwoPeople.TestCase
TestTwoPeople.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
