"""The local API's wall against clients that misbehave: over real HTTP and WebSocket.

A client that hangs up mid-body is not a bug in the node; a page of another
origin may not open the event stream (or anything else).
"""

from __future__ import annotations

import logging

import pytest
import trio
from wsproto import events as ws

from p2pdm.api.guard import is_own_origin
from tests.api.conftest import assert_error, check_documented, websocket
from tests.conftest import TOKEN, WAIT_S, Api


async def test_a_client_hanging_up_mid_body_is_no_bug(
    alice: Api, caplog: pytest.LogCaptureFixture
) -> None:
    head = (
        "POST /v1/messages HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{alice.port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    with caplog.at_level(logging.DEBUG, logger="p2pdm"), trio.fail_after(WAIT_S):
        for _ in range(3):
            stream = await trio.open_tcp_stream("127.0.0.1", alice.port)
            await stream.send_all(head.encode() + b'{"to": "bob", "te')
            await trio.sleep(0.05)  # the handler is reading the body now
            await stream.aclose()
        while sum("disconnected" in r.getMessage() for r in caplog.records) < 3:  # noqa: ASYNC110
            await trio.sleep(0.01)
        response = await alice.call("GET", "/v1/node")  # and the node still answers
    assert response.status_code == 200
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r for r in caplog.records if r.exc_info] == []
    assert alice.node.store.counts()["messages"] == 0


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}", ""],
)
async def test_a_foreign_origin_is_refused(alice: Api, origin: str) -> None:
    origin = origin.format(port=alice.port)
    with trio.fail_after(WAIT_S):
        async with websocket(alice, "/v1/events", origin=origin) as client:
            event = await client.next()
            assert isinstance(event, ws.RejectConnection), event
            assert event.status_code == 403
    assert alice.node.events.listeners == 0
    sse = {"Accept": "text/event-stream", "Origin": origin}
    response = await alice.call("GET", "/v1/events", headers=sse)
    assert_error(response, 403, "forbidden_origin")
    await check_documented(alice, response, "GET", "/v1/events")
    response = await alice.call("GET", "/v1/node", headers={"Origin": origin})
    assert_error(response, 403, "forbidden_origin")


@pytest.mark.parametrize(
    "origin", [None, "http://127.0.0.1:{port}", "http://localhost:{port}", "http://[::1]:{port}"]
)
async def test_no_origin_or_the_apis_own_is_accepted(alice: Api, origin: str | None) -> None:
    origin = None if origin is None else origin.format(port=alice.port)
    alice.node.peer_online(alice.node.peer_id)  # one event to see
    with trio.fail_after(WAIT_S):
        async with websocket(alice, "/v1/events", origin=origin) as client:
            assert (await client.json())["type"] == "peer.online"
            await client.send(ws.CloseConnection(1000))
    headers = {} if origin is None else {"Origin": origin}
    assert (await alice.call("GET", "/v1/node", headers=headers)).status_code == 200


def test_own_origin_rules() -> None:
    server = ("127.0.0.1", 4780)
    assert is_own_origin("http://127.0.0.1:4780", server)
    assert is_own_origin("HTTP://LOCALHOST:4780", server)
    assert is_own_origin("http://localhost", ("127.0.0.1", 80))
    for foreign in (
        "http://127.0.0.1:4781",
        "http://127.0.0.1:",
        "http://127.0.0.1:4780/",
        "http://evil.example:4780",
        "ws://127.0.0.1:4780",
        "127.0.0.1:4780",
        "null",
    ):
        assert not is_own_origin(foreign, server), foreign
    assert not is_own_origin("http://127.0.0.1:4780", None)
