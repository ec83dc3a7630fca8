"""`p2pdm read` lists messages in receipt order, with the sender's time where it differs much."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import pytest
import trio

from p2pdm.api import serve_api
from p2pdm.cli.chat import SENT_TIME_SHOWN_AFTER_MS
from p2pdm.client import write_api_addr
from p2pdm.core.identity import Identity
from p2pdm.daemon.home import Home
from p2pdm.node.node import Node
from p2pdm.store.memory import MemoryStore
from tests.cli.conftest import WAIT_S, cli
from tests.conftest import home_with_identity as make_home

#: Noon today, local time: the times below stay on one day wherever the tests run.
NOON_MS = int(time.mktime((*time.localtime()[:3], 12, 0, 0, 0, 0, -1))) * 1000
MINUTE_MS = 60 * 1000


class Clock:
    def __init__(self) -> None:
        self.ms = NOON_MS

    def __call__(self) -> int:
        return self.ms


@asynccontextmanager
async def alice_serving(path: Path, clock: Clock) -> AsyncIterator[tuple[Node, Home]]:
    home = make_home(path, "alice")
    with closing(home.open_store()) as store:
        node = Node(home.load_identity(), store, now_ms=clock)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(WAIT_S):
                host, port = await nursery.start(serve_api, node, home.api_token(), "127.0.0.1", 0)
            write_api_addr(home, host, port)
            yield node, home
            nursery.cancel_scope.cancel()


def hand_over(sender: Node, recipient: Node, message_id: bytes) -> None:
    """Give the recipient one queued message of the sender, as delivery would."""
    [item] = [i for i in sender.store.outbox_for(recipient.peer_id) if i.message_id == message_id]
    recipient.messenger.receive(item.envelope)
    sender.store.remove_outbox(item.envelope_id)


def hhmm(ms: int) -> str:
    return time.strftime("%H:%M", time.localtime(ms / 1000))


def when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


async def test_a_message_received_later_is_listed_later_with_its_sent_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    clock = Clock()
    bob = Node(Identity(b"\x0b" * 32), MemoryStore(), now_ms=clock)
    bob.update_settings({"name": "bob"})
    async with alice_serving(tmp_path / "alice", clock) as (alice, home):
        alice.add_contact_from_invite(bob.invite())
        bob.add_contact_from_invite(alice.invite())
        written_offline = bob.send_text(alice.peer_id, "written on the train")
        sent_at = clock.ms
        clock.ms += 10 * MINUTE_MS
        reply = bob.send_text(alice.peer_id, "back home")
        hand_over(bob, alice, reply.id)  # arrives first
        clock.ms += 1 * MINUTE_MS
        welcome = alice.send_text(bob.peer_id, "welcome back")  # within the threshold of itself
        clock.ms += 5 * MINUTE_MS
        hand_over(bob, alice, written_offline.id)  # through a mailbox, much later
        received_late_at = clock.ms

        code, out, err = await cli(capsys, "--home", str(home.path), "read", "bob")
        assert (code, err) == (0, ""), err
        lines = out.splitlines()
        assert len(lines) == 3, out
        assert lines[0].endswith("bob  back home")
        assert lines[1].endswith("you  welcome back  [queued]")
        late_line = f"bob  written on the train  (sent {hhmm(sent_at)})"
        assert lines[2] == f"{when(received_late_at)}  {late_line}"
        # The API lists the same order (newest first), with both times.
        page = alice.messages(bob.peer_id)
        assert [m.id for m in page.messages] == [written_offline.id, welcome.id, reply.id]
        late = page.messages[0]
        assert late.stored_at_ms - late.sent_at_ms == 16 * MINUTE_MS > SENT_TIME_SHOWN_AFTER_MS
