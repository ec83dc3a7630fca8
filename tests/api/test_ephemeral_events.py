"""Typing reaches the clients following ``/v1/events`` live and is never stored."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import trio

from p2pdm.core.identity import Identity
from p2pdm.core.model import EventType, LogEvent, direct_conversation_id
from p2pdm.net.testing import wait_until
from p2pdm.node.events import MAX_EPHEMERAL_QUEUED, EventBus
from p2pdm.node.messenger import wall_ms
from p2pdm.node.node import Node
from p2pdm.store import SQLiteStore
from tests.api.conftest import websocket
from tests.api.test_events import poll, sse_events
from tests.conftest import WAIT_S, make_node, serving


class Clock:
    def __init__(self) -> None:
        self.ms = wall_ms()

    def __call__(self) -> int:
        return self.ms


def _typing_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM events WHERE type = 'typing'").fetchone()
    return int(count)


async def test_typing_goes_live_to_sse_websocket_and_long_poll_and_is_never_stored(
    tmp_path: Path,
) -> None:
    clock = Clock()
    path = tmp_path / "bob.sqlite"
    store = SQLiteStore(path)
    bob = Node(Identity.generate(os.urandom(32)), store, now_ms=clock)
    bob.update_settings({"name": "bob"})
    alice = make_node("alice")
    alice.add_contact_from_invite(bob.invite(), "bob")
    bob.add_contact_from_invite(alice.invite(), "alice")
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id).hex()
    async with serving(bob) as api:
        stored = bob.store.event_bounds()[1]
        got: dict[str, Any] = {}

        async def over_sse() -> None:
            [got["sse"]] = await sse_events(api, 1, **{"Last-Event-ID": str(stored)})

        async def over_websocket() -> None:
            async with websocket(api, "/v1/events?types=typing") as client:
                got["ws"] = await client.json()

        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(over_sse)
                nursery.start_soon(over_websocket)
                await wait_until(lambda: len(bob.events.followers) == 2)
                bob.messenger.receive(alice.messenger.seal_typing(bob.peer_id))
        sse_id, sse_type, sse_event = got["sse"]
        assert (sse_id, sse_type) == ("", "typing")  # no id line: not a place to resume from
        for event in (sse_event, got["ws"]):
            assert event["type"] == "typing" and event["id"] is None
            assert event["peer"] == str(alice.peer_id)
            assert event["conversation_id"] == conversation
        await wait_until(lambda: bob.events.listeners == 0)

        # A long poll gets it while it waits; the cursor stays on the stored log.
        result: dict[str, Any] = {}

        async def waiter() -> None:
            result.update(await poll(api, since=stored, timeout=30))

        clock.ms += 10_000  # past the interval at which a peer's typing is shown
        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                await wait_until(lambda: len(bob.events.followers) == 1)
                bob.messenger.receive(alice.messenger.seal_typing(bob.peer_id))
        [typing] = result["events"]
        assert (typing["type"], typing["id"]) == ("typing", None)
        assert result["cursor"] == stored

        # Nothing to replay: not in the log, not in the file.
        assert [e["type"] for e in (await poll(api, since=0))["events"]].count("typing") == 0
        assert bob.event_page(0, 100, types=[EventType.TYPING]).events == ()
        assert _typing_rows(path) == 0
    store.close()


async def test_a_client_filtering_other_types_gets_no_typing() -> None:
    alice, bob = make_node("alice"), make_node("bob")
    alice.add_contact_from_invite(bob.invite(), "bob")
    bob.add_contact_from_invite(alice.invite(), "alice")
    async with serving(bob) as api:
        result: dict[str, Any] = {}

        async def waiter() -> None:
            result.update(await poll(api, timeout=1, types="message.received"))

        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                await wait_until(lambda: len(bob.events.followers) == 1)
                bob.messenger.receive(alice.messenger.seal_typing(bob.peer_id))
        assert result["events"] == []


async def test_a_slow_client_keeps_only_the_newest_ephemeral_events() -> None:
    bus = EventBus()
    peer = Identity.generate(os.urandom(32)).peer_id
    with bus.listener().follow() as slow, bus.listener() as stored_only:
        for at_ms in range(MAX_EPHEMERAL_QUEUED + 5):
            bus.publish(LogEvent(EventType.TYPING, at_ms, peer))
        kept = slow.take()
        assert [e.at_ms for e in kept] == list(range(5, MAX_EPHEMERAL_QUEUED + 5))
        assert slow.dropped == 5 and slow.take() == []
        assert stored_only.take() == []
    assert bus.followers == set() and bus.listeners == 0
