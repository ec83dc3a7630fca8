"""The Python SDK (p2pdm.client) against a node serving its real API: trio, asyncio, sync."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from p2pdm.api import serve_api
from p2pdm.api.payload import RequestError, parse_event_types
from p2pdm.client import APIError, AsyncClient, Client, EventPage, _Cursor
from p2pdm.client._wire import Pool
from p2pdm.core.identity import Identity
from p2pdm.core.model import EventType
from p2pdm.errors import NodeNotRunning
from tests.conftest import TOKEN, WAIT_S, Api, make_node, serving, serving_in_thread

OTHER = Identity.generate(b"\x08" * 32).peer_id


@pytest.fixture
async def alice() -> AsyncIterator[Api]:
    node = make_node("alice")
    node.add_contact_from_invite(make_node("bob").invite())
    async with serving(node) as api:
        yield api


def sdk(api: Api, token: str = TOKEN) -> AsyncClient:
    return AsyncClient("127.0.0.1", api.port, token, timeout_s=WAIT_S)


async def test_the_async_client_under_trio(alice: Api) -> None:
    async with sdk(alice) as node:
        [bob] = await node.contacts()
        assert bob["name"] == "bob" and bob["has_prekeys"] is True
        sent = await node.send("bob", "hi", idempotency_key="once")
        assert (await node.send("bob", "hi", idempotency_key="once"))["id"] == sent["id"]
        assert sent["status"] == "queued" and sent["text"] == "hi"
        [conversation] = await node.conversations()
        assert conversation["name"] == "bob"
        page = await node.messages("bob", limit=5)
        assert [m["id"] for m in page["messages"]] == [sent["id"]]
        assert page["next_before"] is None
        assert (await node.message(sent["id"]))["history"][0]["status"] == "queued"
        assert await node.mark_read("bob") == []  # nothing incoming
        with pytest.raises(APIError) as refused:
            await node.send("nobody", "hi")
        assert (refused.value.status, refused.value.code) == (404, "not_found")
        assert "nobody" in str(refused.value) and refused.value.message == str(refused.value)
        made = await node.create_token("read", ["bob"], name="watcher")
        assert [t["name"] for t in await node.tokens()] == ["watcher"]
        assert (await node.profile())["published"] is False
        shown = await node.update_profile(handle="ALICE.K", name="Alice K")
        assert (shown["handle"], shown["name"], shown["published"]) == ("alice.k", "Alice K", True)
        await node.clear_profile()
        assert (await node.profile())["published"] is False
        with pytest.raises(APIError) as refused:
            await node.find("alice")  # this node is not on a network
        assert (refused.value.status, refused.value.code) == (503, "not_connected")
    async with sdk(alice, made["token"]) as watcher:
        assert len(await watcher.conversations()) == 1
        with pytest.raises(APIError) as refused:
            await watcher.send("bob", "hi")
        assert refused.value.code == "forbidden_scope"


async def test_events_yield_in_order_and_keep_the_cursor(alice: Api) -> None:
    alice.node.peer_online(OTHER)
    async with sdk(alice) as node:
        events = node.events()
        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:

                async def later() -> None:
                    await trio.sleep(0.2)
                    alice.node.peer_offline(OTHER)

                nursery.start_soon(later)
                seen = []
                async for event in events:
                    seen.append((event["id"], event["type"]))
                    assert events.cursor == event["id"]
                    if len(seen) == 3:
                        break
        assert seen == [(1, "contact.added"), (2, "peer.online"), (3, "peer.offline")]
        alice.node.peer_online(OTHER)
        resumed = node.events(since=events.cursor, types=["peer.online"])
        with trio.fail_after(WAIT_S):
            event = await resumed.__anext__()
        assert (event["id"], event["type"]) == (4, "peer.online")
        with pytest.raises(APIError, match="unknown event type"):
            await node.events(types=["nope"]).__anext__()


async def test_events_wait_for_a_node_that_is_not_up_yet() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = make_node("alice")
    node.peer_online(OTHER)
    async with AsyncClient("127.0.0.1", port, TOKEN, timeout_s=WAIT_S) as client:
        with pytest.raises(NodeNotRunning):
            await client.contacts()
        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:

                async def start_later() -> None:
                    await trio.sleep(0.3)
                    await nursery.start(serve_api, node, TOKEN, "127.0.0.1", port)

                nursery.start_soon(start_later)
                event = await client.events().__anext__()
                nursery.cancel_scope.cancel()
    assert event["type"] == "peer.online"


def test_the_async_client_under_asyncio() -> None:
    node = make_node("alice")
    node.add_contact_from_invite(make_node("bob").invite())
    node.peer_online(OTHER)
    with serving_in_thread(node) as port:

        async def bot() -> tuple[str, list[str]]:
            async with AsyncClient("127.0.0.1", port, TOKEN, timeout_s=WAIT_S) as client:
                sent = await client.send("bob", "from asyncio")
                types = []
                async for event in client.events():
                    types.append(event["type"])
                    if len(types) == 2:
                        break
                return sent["text"] or "", types

        text, types = asyncio.run(asyncio.wait_for(bot(), WAIT_S))
    assert text == "from asyncio"
    assert types == ["contact.added", "peer.online"]


def test_the_sync_client_and_its_events() -> None:
    node = make_node("alice")
    node.add_contact_from_invite(make_node("bob").invite())
    with serving_in_thread(node) as port, Client("127.0.0.1", port, TOKEN) as client:
        assert client.send("bob", "sync", idempotency_key="s")["text"] == "sync"
        events = client.events(types=["contact.added"])
        assert next(events)["peer"] == client.contacts()[0]["peer_id"]
        page = client.poll_events(since=0, limit=1)
        assert len(page["events"]) == 1 and page["cursor"] == 1
        with pytest.raises(APIError, match="'since' must be between"):
            client.poll_events(since=-1)


# --- the pieces without I/O -----------------------------------------------------------


def test_the_cursor_never_skips_an_event_it_has_not_handed_out() -> None:
    state = _Cursor(5)
    assert state.pop() is None and state.cursor == 5
    page: EventPage = {
        "events": [event(6), event(8)],
        "cursor": 9,
        "gap": False,
        "requests_gap": False,
    }
    state.feed(page)
    assert state.cursor == 5  # nothing handed out yet
    assert state.pop() == event(6) and state.cursor == 6
    assert state.pop() == event(8) and state.cursor == 9  # the page looked past 8
    state.feed({"events": [], "cursor": 12, "gap": True, "requests_gap": False})
    assert state.cursor == 12 and state.gaps == 1


def event(n: int) -> Any:
    return {"id": n, "type": "peer.online", "at_ms": 0, "peer": None, "message_id": None,
            "status": None, "detail": "", "message": None}  # fmt: skip


@given(st.text(max_size=80))
def test_event_type_lists_parse_or_are_refused_with_a_400(text: str) -> None:
    try:
        found = parse_event_types(text)
    except RequestError as exc:
        assert exc.status == 400 and "unknown event type" in exc.message
        return
    assert found is None or found <= set(EventType)


@given(st.sets(st.sampled_from(EventType), min_size=1))
def test_event_type_lists_round_trip(types: set[EventType]) -> None:
    assert parse_event_types(",".join(t.value for t in types)) == frozenset(types)


# --- docs/api.md, "Your first bot" -----------------------------------------------------


async def echo_bot(node: AsyncClient, cursor_file: Any, stop_after: int) -> None:
    """The echo bot of docs/api.md, stopping after ``stop_after`` events."""
    since = int(cursor_file.read_text()) if cursor_file.exists() else 0
    events = node.events(since=since, types=["message.received"])
    handled = 0
    async for event in events:
        message = event["message"]
        if message and message["text"]:
            await node.send(
                message["peer"],
                f"you said: {message['text']}",
                idempotency_key=f"echo-{event['id']}",
            )
        cursor_file.write_text(str(events.cursor))
        handled += 1
        if handled == stop_after:
            return


async def test_the_first_bot_answers_each_message_once(tmp_path: Any) -> None:
    alice, bob = make_node("alice"), make_node("bob")
    alice.add_contact_from_invite(bob.invite())
    bob.add_contact_from_invite(alice.invite())

    def bob_says(text: str) -> None:
        bob.send_text(alice.peer_id, text)
        for item in bob.store.outbox_for(alice.peer_id):
            bob.store.remove_outbox(item.envelope_id)
            alice.messenger.receive(item.envelope)

    cursor = tmp_path / "echo-bot.cursor"
    async with serving(alice) as api, sdk(api) as owner:
        made = await owner.create_token("send", ["bob"], name="echo-bot")
        bob_says("one")
        async with sdk(api, made["token"]) as node:
            with trio.fail_after(WAIT_S):
                await echo_bot(node, cursor, 1)
                # The bot crashes after sending but before saving its cursor:
                cursor.write_text("0")
                bob_says("two")
                await echo_bot(node, cursor, 2)  # sees "one" again, then "two"
        page = await owner.messages("bob")
    replies = [m["text"] for m in page["messages"] if m["direction"] == "out"]
    assert replies == ["you said: two", "you said: one"]  # newest first, each once


def test_the_sdk_keeps_its_connection_open_between_calls() -> None:
    """Keep-alive by default: one TCP connection for many calls of one client."""
    node = make_node("alice")
    client_ports: list[int] = []

    def note(client: Client) -> None:
        assert isinstance(client._http, Pool)
        client_ports.extend(c.sock.getsockname()[1] for c in client._http._idle if c.sock)

    with serving_in_thread(node) as port, Client("127.0.0.1", port, TOKEN) as client:
        for _ in range(5):
            client.contacts()
            note(client)
            client.node()
            note(client)
    assert len(client_ports) == 10 and len(set(client_ports)) == 1


async def test_message_actions_and_conversation_settings_through_the_sdk(alice: Api) -> None:
    async with sdk(alice) as node:
        first = await node.send("bob", "lunch tomorrow?")
        reply = await node.send("bob", "at the usual place", reply_to=first["id"])
        assert reply["reply_to"] == {
            "id": first["id"],
            "text": "lunch tomorrow?",
            "available": True,
        }
        # A forwarded copy is a new message of its own, not a reply.
        copy = await node.forward(reply["id"], "bob")
        assert (copy["text"], copy["direction"], copy["reply_to"]) == (
            "at the usual place",
            "out",
            None,
        )
        assert copy["id"] != reply["id"]
        reacted = await node.react(first["id"], "👍")
        assert list(reacted["reactions"]) == ["👍"]
        edited = await node.edit(first["id"], "lunch at 1 tomorrow?")
        assert (edited["text"], edited["edited"]) == ("lunch at 1 tomorrow?", True)
        [hit] = await node.search("lunch", peer="bob")
        assert hit["message_id"] == first["id"] and "[lunch]" in hit["snippet"]
        await node.unsend(first["id"])
        gone = await node.message(first["id"])
        assert (gone["unsent"], gone["text"], gone["reactions"]) == (True, None, {})
        assert await node.search("lunch") == []
        page = await node.messages("bob")
        quoted = next(m for m in page["messages"] if m["id"] == reply["id"])
        assert quoted["reply_to"] == {"id": first["id"], "text": None, "available": False}
        await node.delete_for_me(reply["id"])
        with pytest.raises(APIError) as missing:
            await node.message(reply["id"])
        assert missing.value.status == 404
        settings = await node.update_conversation(
            "bob", timer_s=300, muted=True, archived=True, pinned=True
        )
        assert (settings["timer_s"], settings["muted"], settings["archived"]) == (300, True, True)
        assert settings["pinned"] is True
        assert [c["pinned"] for c in await node.conversations()] == [True]
        assert (await node.typing("bob"))["sent"] is False  # bob's node is not connected
        blocked = await node.block("bob")
        assert [b["peer_id"] for b in await node.blocked()] == [blocked["peer_id"]]
        with pytest.raises(APIError) as refused:
            await node.send("bob", "hello?")
        assert (refused.value.status, refused.value.code) == (409, "peer_blocked")
        await node.unblock("bob")
        assert await node.blocked() == [] and await node.requests() == []


async def test_groups_through_the_sdk(alice: Api) -> None:
    async with sdk(alice) as node:
        made = await node.create_group("Bakers", ["bob"])
        assert (made["name"], made["state"], made["me_admin"]) == ("Bakers", "active", True)
        assert [(m["name"], m["me"]) for m in made["members"]] == [(None, True), ("bob", False)]
        assert [g["id"] for g in await node.groups()] == [made["id"]]
        assert (await node.group("bakers"))["id"] == made["id"]  # a name, any case
        bob = next(m["peer"] for m in made["members"] if not m["me"])
        renamed = await node.update_group(made["id"], name="Night bakers", add_admins=[bob])
        assert renamed["name"] == "Night bakers" and all(m["admin"] for m in renamed["members"])
        assert renamed["log_length"] == 3
        sent = await node.send("Night bakers", "ovens on")
        assert sent["group"] == made["id"]
        assert sent["delivery"] == {"members": 1, "delivered": 0, "read": 0, "failed": 0}
        [conversation] = await node.conversations()
        assert conversation["group"] == {"id": made["id"], "name": "Night bakers"}
        page = await node.messages(made["conversation"])
        assert page["messages"][0]["id"] == sent["id"]
        assert [m["notice"] for m in page["messages"][1:]] == [
            "made bob an admin",
            "renamed the group to 'Night bakers'",
            "created the group 'Bakers'",
        ]
        assert (await node.leave_group(made["id"]))["state"] == "left"
        with pytest.raises(APIError) as refused:
            await node.send("Night bakers", "still there?")
        assert (refused.value.status, refused.value.code) == (422, "group_refused")
        with pytest.raises(APIError) as refused:
            await node.group("nobody's")
        assert refused.value.status == 404


def test_a_group_photo_and_keyed_group_files_through_the_sdk(tmp_path: Path) -> None:
    """``set_group_photo_file`` uploads a picture and makes it the photo,
    ``group_photo_bytes`` reads it back, ``set_group_photo(g, None)`` removes
    it; a keyed group file sent twice is one message."""
    node = make_node("alice")
    bob = make_node("bob")
    node.add_contact_from_invite(bob.invite(), "bob")
    picture = tmp_path / "bakery.png"
    Image.new("RGB", (400, 300), (240, 200, 40)).save(picture)
    with serving_in_thread(node) as port, Client("127.0.0.1", port, TOKEN) as client:
        made = client.create_group("Bakers", ["bob"])
        shown = client.set_group_photo_file(made["id"], picture)
        photo = shown["photo"]
        assert photo is not None and photo["type"] == "image/webp"
        assert len(client.group_photo_bytes("Bakers")) == photo["size"]
        assert client.set_group_photo("Bakers", None)["photo"] is None
        with pytest.raises(APIError) as none:
            client.group_photo_bytes("Bakers")
        assert none.value.status == 404
        uploaded = client.upload_file(picture)
        first = client.send_media("Bakers", [uploaded["id"]], idempotency_key="k")
        again = client.send_media("Bakers", [uploaded["id"]], idempotency_key="k")
        assert again["id"] == first["id"]
        here = client.send_location("Bakers", 1.0, 2.0, idempotency_key="where")
        assert client.send_location("Bakers", 1.0, 2.0, idempotency_key="where")["id"] == here["id"]
