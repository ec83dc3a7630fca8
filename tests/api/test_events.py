"""``/v1/events`` over real HTTP: long poll, Server-Sent Events and WebSocket."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import wsproto.events as ws

from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import DeliveryStatus, EventType
from p2pdm.net.testing import wait_until
from p2pdm.node.node import Node
from p2pdm.store import MemoryStore, SQLiteStore
from tests.api.conftest import assert_error, check_documented, websocket
from tests.conftest import TOKEN, WAIT_S, Api, serving

OTHER = Identity.generate(b"\x07" * 32).peer_id


def introduce(alice: Node, bob: Node) -> str:
    """Alice adds Bob from his invite, sends him a message, Bob receives it; returns its id."""
    alice.add_contact_from_invite(bob.invite())
    sent = alice.send_text(bob.peer_id, "hello Bob")
    [item] = alice.store.outbox_for(bob.peer_id)
    bob.messenger.receive(item.envelope)
    return sent.id.hex()


async def poll(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.call("GET", "/v1/events/poll", params=params)
    assert response.status_code == 200, response.text
    await check_documented(api, response, "GET", "/v1/events/poll")
    body: dict[str, Any] = response.json()
    return body


async def test_poll_gives_events_in_order_with_a_cursor(alice: Api, bob: Api) -> None:
    message_id = introduce(alice.node, bob.node)
    page = await poll(bob)
    [request, received] = page["events"]
    assert (request["type"], request["peer"]) == ("contact.request", str(alice.node.peer_id))
    assert received["type"] == "message.received"
    assert received["message_id"] == message_id
    assert received["message"]["text"] == "hello Bob"
    assert received["message"]["request"] is True
    assert request["id"] < received["id"] == page["cursor"]
    assert page["gap"] is False
    assert await poll(bob, since=page["cursor"]) == {
        "events": [],
        "cursor": page["cursor"],
        "gap": False,
        "requests_gap": False,
    }
    # Alice's side: Bob became a contact; her message only makes status events.
    [added] = (await poll(alice))["events"]
    assert (added["type"], added["peer"]) == ("contact.added", str(bob.node.peer_id))
    alice.node.store.set_status(bytes.fromhex(message_id), DeliveryStatus.SENT, 5, "on the wire")
    [status] = (await poll(alice, since=added["id"]))["events"]
    assert (status["type"], status["status"], status["detail"]) == (
        "message.status",
        "sent",
        "on the wire",
    )
    assert status["message"] is None
    # Bob reads it: a status event on his side too.
    await bob.call("POST", f"/v1/conversations/{alice.node.peer_id}/read")
    [read] = (await poll(bob, since=page["cursor"]))["events"]
    assert (read["type"], read["status"], read["message_id"]) == (
        "message.status",
        "read",
        message_id,
    )


async def test_poll_filters_types_and_pages_with_limit(alice: Api) -> None:
    for n in range(5):
        alice.node.peer_online(PeerId.from_public_key(bytes([n + 1]) * 32))
    alice.node.peer_offline(PeerId.from_public_key(b"\x01" * 32))
    page = await poll(alice, limit=2)
    assert [e["id"] for e in page["events"]] == [1, 2] and page["cursor"] == 2
    page = await poll(alice, since=2, types="peer.offline,message.received")
    assert [e["type"] for e in page["events"]] == ["peer.offline"]
    assert page["cursor"] == 6
    # Nothing of these types yet: the cursor still moves past what was looked at.
    assert await poll(alice, types="contact.added") == {
        "events": [],
        "cursor": 6,
        "gap": False,
        "requests_gap": False,
    }
    response = await alice.call("GET", "/v1/events/poll", params={"types": "message.recieved"})
    assert "message.received" in assert_error(response, 400, "bad_request")
    for params in ({"since": -1}, {"timeout": 51}, {"limit": 0}, {"limit": 501}, {"x": 1}):
        response = await alice.call("GET", "/v1/events/poll", params=params)
        assert_error(response, 400, "bad_request")


async def test_peer_online_and_offline_are_recorded_once(alice: Api) -> None:
    node = alice.node
    node.peer_online(OTHER)
    node.peer_online(OTHER)
    node.peer_offline(OTHER)
    node.peer_offline(OTHER)
    events = (await poll(alice))["events"]
    assert [(e["type"], e["peer"]) for e in events] == [
        ("peer.online", str(OTHER)),
        ("peer.offline", str(OTHER)),
    ]


async def test_a_long_poll_wakes_when_an_event_arrives(alice: Api) -> None:
    result: dict[str, Any] = {}

    async def waiter() -> None:
        result.update(await poll(alice, timeout=30))

    with trio.fail_after(WAIT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.2)
            assert not result and alice.node.events.listeners == 1
            alice.node.peer_online(OTHER)
    assert [e["type"] for e in result["events"]] == ["peer.online"]
    assert alice.node.events.listeners == 0


async def test_a_long_poll_ends_empty_after_its_timeout(alice: Api) -> None:
    start = trio.current_time()
    with trio.fail_after(WAIT_S):
        page = await poll(alice, timeout=1, types="peer.offline")
    assert trio.current_time() - start > 0.9
    assert page == {"events": [], "cursor": 0, "gap": False, "requests_gap": False}


async def test_waiting_clients_are_bounded(alice: Api) -> None:
    alice.node.events.max_listeners = 1
    with trio.fail_after(WAIT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(poll, alice, timeout=30))
            await trio.sleep(0.2)
            response = await alice.call("GET", "/v1/events/poll", params={"timeout": 1})
            assert_error(response, 503, "too_many_listeners")
            await check_documented(alice, response, "GET", "/v1/events/poll")
            # A poll that needs no waiting does not take a slot.
            assert (await alice.call("GET", "/v1/events/poll")).status_code == 200
            alice.node.peer_online(OTHER)


async def test_a_cursor_survives_a_node_restart(tmp_path: Path) -> None:
    identity = Identity.generate(os.urandom(32))
    store = SQLiteStore(tmp_path / "store.sqlite")
    node = Node(identity, store)
    node.peer_online(OTHER)
    async with serving(node) as api:
        cursor = (await poll(api))["cursor"]
    store.close()
    store = SQLiteStore(tmp_path / "store.sqlite")
    node = Node(identity, store)
    node.peer_offline(OTHER)  # not online since the restart: nothing
    node.peer_online(OTHER)
    async with serving(node) as api:
        page = await poll(api, since=cursor)
    assert [(e["id"], e["type"]) for e in page["events"]] == [(cursor + 1, "peer.online")]
    store.close()


async def test_a_client_behind_the_retention_is_told_of_the_gap() -> None:
    node = Node(Identity.generate(os.urandom(32)), MemoryStore(max_events=3))
    for n in range(5):
        node.store.add_event(EventType.PEER_ONLINE, n, OTHER)
    async with serving(node) as api:
        page = await poll(api, since=1)
        assert page["gap"] is True and [e["id"] for e in page["events"]] == [3, 4, 5]
        assert (await poll(api, since=2))["gap"] is False
        # A cursor from a store that was replaced: told, and given the newest id.
        assert await poll(api, since=99, timeout=5) == {
            "events": [],
            "cursor": 5,
            "gap": True,
            "requests_gap": True,
        }


# --- Server-Sent Events --------------------------------------------------------------


async def sse_events(api: Api, count: int, **headers: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The first ``count`` events of an SSE stream: (id, event, data).

    Read with h11 over a trio stream: a client that stops reading an endless
    body mid-way and hangs up, as a bot does when it stops.
    """
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="GET",
        target="/v1/events",
        headers=[
            ("Host", "127.0.0.1"),
            ("Authorization", f"Bearer {TOKEN}"),
            ("Accept", "text/event-stream"),
            *headers.items(),
        ],
    )
    found: list[tuple[str, str, dict[str, Any]]] = []
    text = ""
    async with await trio.open_tcp_stream("127.0.0.1", api.port) as stream:
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        while len(found) < count:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                assert event.status_code == 200
                assert dict(event.headers)[b"content-type"].startswith(b"text/event-stream")
            elif isinstance(event, h11.Data):
                text += event.data.decode()
                *blocks, text = text.split("\n\n")
                for block in blocks:
                    fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
                    if "data" in fields and not block.startswith(":"):
                        data = json.loads(fields["data"])  # an ephemeral event has no id
                        found.append((fields.get("id", ""), fields["event"], data))
            else:
                raise AssertionError(event)
    return found[:count]


async def test_sse_streams_events_and_resumes_from_last_event_id(alice: Api) -> None:
    alice.node.peer_online(OTHER)
    with trio.fail_after(WAIT_S):
        async with trio.open_nursery() as nursery:

            async def later() -> None:
                await trio.sleep(0.2)
                alice.node.peer_offline(OTHER)

            nursery.start_soon(later)
            first = await sse_events(alice, 2)
        assert [(i, e) for i, e, _ in first] == [("1", "peer.online"), ("2", "peer.offline")]
        assert first[1][2]["peer"] == str(OTHER)
        alice.node.peer_online(OTHER)
        [resumed] = await sse_events(alice, 1, **{"Last-Event-ID": "2"})
        assert resumed[:2] == ("3", "peer.online")
        await wait_until(lambda: alice.node.events.listeners == 0)


async def test_sse_needs_the_accept_header_and_a_good_cursor(alice: Api) -> None:
    response = await alice.call("GET", "/v1/events")
    assert_error(response, 406, "not_acceptable")
    await check_documented(alice, response, "GET", "/v1/events")
    sse = {"Accept": "text/event-stream"}
    response = await alice.call("GET", "/v1/events", headers={**sse, "Last-Event-ID": "x"})
    assert_error(response, 400, "bad_request")
    response = await alice.call("GET", "/v1/events?types=nope", headers=sse)
    assert_error(response, 400, "bad_request")


# --- WebSocket ------------------------------------------------------------------------


async def test_websocket_streams_events_from_a_cursor(alice: Api) -> None:
    alice.node.peer_online(OTHER)
    alice.node.peer_offline(OTHER)
    with trio.fail_after(WAIT_S):
        async with websocket(alice, "/v1/events?since=1&types=peer.online,peer.offline") as client:
            first = await client.json()
            assert (first["id"], first["type"]) == (2, "peer.offline")
            await client.send(ws.TextMessage("ignored"))
            alice.node.peer_online(OTHER)
            second = await client.json()
            assert (second["id"], second["type"]) == (3, "peer.online")
            assert alice.node.events.listeners == 1
            await client.send(ws.CloseConnection(1000))
            while not isinstance(await client.next(), ws.CloseConnection):
                pass
        await wait_until(lambda: alice.node.events.listeners == 0)


@pytest.mark.parametrize(
    ("target", "token"),
    [("/v1/events?types=nope", TOKEN), ("/v1/events?since=x", TOKEN), ("/v1/events", "wrong")],
)
async def test_websocket_refuses_bad_parameters_and_tokens(
    alice: Api, target: str, token: str
) -> None:
    with trio.fail_after(WAIT_S):
        async with websocket(alice, target, token) as client:
            event = await client.next()
            assert isinstance(event, ws.RejectConnection), event
    assert alice.node.events.listeners == 0
