"""The local API over real HTTP: hypercorn on 127.0.0.1, a real Node, an in-memory store."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import trio

from p2pdm.api import MAX_API_BODY_BYTES, create_app, serve_api
from p2pdm.api.guard import host_is_loopback
from p2pdm.core.identity import Identity
from p2pdm.errors import ConfigError
from p2pdm.limits import MAX_TEXT_BYTES
from tests.api.conftest import assert_error, check_documented
from tests.conftest import TOKEN, WAIT_S, Api, make_node

# --- security ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN],
)
async def test_a_missing_or_wrong_token_is_401(alice: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(base_url=alice.base, timeout=WAIT_S) as anonymous:
        for method, path in [
            ("GET", "/v1/node"),
            ("GET", "/v1/nothing-here"),
            ("POST", "/v1/messages"),
        ]:
            response = await anonymous.request(method, path, headers=headers)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert alice.node.store.counts()["messages"] == 0


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("LOCALHOST:4780", True),
        ("127.0.0.1:1", True),
        ("[::1]", True),
        ("[::1]:4780", True),
        ("evil.example", False),
        ("evil.example:4780", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("localhost:80x", False),
        ("[::1]x", False),
        ("::1", False),
        ("", False),
    ],
)
def test_host_names(host: str, allowed: bool) -> None:
    assert host_is_loopback(host) is allowed


async def test_a_foreign_host_header_is_403(alice: Api) -> None:
    for host in ["evil.example", f"evil.example:{alice.port}", "10.0.0.1"]:
        response = await alice.call("GET", "/v1/node", headers={"Host": host})
        assert_error(response, 403, "forbidden_host")
    for host in [f"localhost:{alice.port}", "127.0.0.1", f"[::1]:{alice.port}"]:
        response = await alice.call("GET", "/v1/node", headers={"Host": host})
        assert response.status_code == 200, (host, response.text)


async def test_no_cors_headers_ever(alice: Api) -> None:
    origin = {"Origin": "http://evil.example"}
    responses = [
        await alice.call("GET", "/v1/node", headers=origin),
        await alice.call("OPTIONS", "/v1/messages", headers=origin),
        await alice.call(
            "OPTIONS",
            "/v1/messages",
            headers={**origin, "Access-Control-Request-Method": "POST", "Authorization": ""},
        ),
    ]
    # Another origin is refused outright (see test_api_wall.py), pre-flights too.
    for response in responses:
        assert_error(response, 403, "forbidden_origin")
    without_origin = await alice.call("OPTIONS", "/v1/messages")
    assert without_origin.status_code == 405
    for response in [*responses, without_origin]:
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_a_body_over_the_cap_is_413(alice: Api) -> None:
    big = b'{"to": "bob", "text": "' + b"a" * MAX_API_BODY_BYTES + b'"}'
    response = await alice.call(
        "POST", "/v1/messages", content=big, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "body_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 16 << 10):
            yield big[start : start + (16 << 10)]

    response = await alice.call(
        "POST", "/v1/messages", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "body_too_large")
    assert alice.node.store.counts()["messages"] == 0
    # The longest message fits, even with every character escaped as \uXXXX:
    # it gets past the cap to the node (which has no keys for this peer).
    longest = json.dumps({"to": PEER_ID, "text": "😀" * (MAX_TEXT_BYTES // 4)}).encode()
    assert len(longest) > MAX_TEXT_BYTES * 2
    response = await alice.call("POST", "/v1/messages", content=longest, headers=JSON)
    assert_error(response, 422, "no_session")


# --- input checking ------------------------------------------------------------------

PEER_ID = str(Identity.generate(b"\x01" * 32).peer_id)
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", "/v1/messages", {"content": b"{not json", "headers": JSON}, 400, "bad_request"),
        ("POST", "/v1/messages", {"content": b"\xff\xfe", "headers": JSON}, 400, "bad_request"),
        ("POST", "/v1/messages", {"content": b"", "headers": JSON}, 400, "bad_request"),
        ("POST", "/v1/messages", {"json": ["to", "text"]}, 400, "bad_request"),
        ("POST", "/v1/messages", {"json": {"to": PEER_ID}}, 400, "bad_request"),
        ("POST", "/v1/messages", {"json": {"to": PEER_ID, "text": 5}}, 400, "bad_request"),
        ("POST", "/v1/messages", {"json": {"to": None, "text": "hi"}}, 400, "bad_request"),
        (
            "POST",
            "/v1/messages",
            {"json": {"to": PEER_ID, "text": "hi", "txt": "hi"}},
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/messages",
            {"content": b'{"to": "a", "text": NaN}', "headers": JSON},
            400,
            "bad_request",
        ),
        ("POST", "/v1/messages", {"data": {"to": "a", "text": "b"}}, 415, None),
        ("POST", "/v1/messages", {"json": {"to": PEER_ID, "text": "  "}}, 400, "invalid"),
        (
            "POST",
            "/v1/messages",
            {"json": {"to": PEER_ID, "text": "é" * MAX_TEXT_BYTES}},
            400,
            "invalid",
        ),
        ("POST", "/v1/contacts", {"json": {}}, 400, "bad_request"),
        ("POST", "/v1/contacts", {"json": {"invite": "p2pdm:x", "peer_id": PEER_ID}}, 400, None),
        ("POST", "/v1/contacts", {"json": {"invite": "p2pdm:garbage"}}, 400, "bad_invite"),
        ("POST", "/v1/contacts", {"json": {"peer_id": "Qm-not-a-peer"}}, 400, "invalid"),
        ("POST", "/v1/contacts", {"json": {"peer_id": PEER_ID, "name": "n" * 200}}, 400, "invalid"),
        ("POST", "/v1/contacts", {"json": {"peer_id": PEER_ID, "name": 7}}, 400, "bad_request"),
        ("DELETE", "/v1/contacts/not-a-peer-id", {}, 404, "not_found"),
        ("GET", "/v1/messages/zz", {}, 400, "invalid"),
        ("GET", "/v1/messages/" + "ab" * 17, {}, 400, "invalid"),
        ("POST", "/v1/messages/" + "ab" * 3 + "/read", {}, 400, "invalid"),
        ("GET", f"/v1/conversations/{PEER_ID}/messages?limit=0", {}, 400, "bad_request"),
        ("GET", f"/v1/conversations/{PEER_ID}/messages?limit=x", {}, 400, "bad_request"),
        ("GET", f"/v1/conversations/{PEER_ID}/messages?limit=501", {}, 400, "bad_request"),
        ("GET", f"/v1/conversations/{PEER_ID}/messages?before=-1", {}, 400, "bad_request"),
        ("GET", f"/v1/conversations/{PEER_ID}/messages?befor=1", {}, 400, "bad_request"),
        ("GET", "/v1/node?verbose=1", {}, 400, "bad_request"),
        ("PATCH", "/v1/settings", {"json": {"colour": "blue"}}, 400, "invalid_setting"),
        ("PATCH", "/v1/settings", {"json": {"read_receipts": "no"}}, 400, "invalid_setting"),
        ("PATCH", "/v1/settings", {"json": {"read_receipts": 0}}, 400, "invalid_setting"),
        ("PATCH", "/v1/settings", {"json": {"name": ""}}, 400, "invalid"),
        ("PATCH", "/v1/settings", {"json": "name"}, 400, "bad_request"),
        ("PUT", "/v1/settings", {"json": {}}, 405, "method_not_allowed"),
        ("GET", "/v2/node", {}, 404, "not_found"),
    ],
)
async def test_bad_input_is_a_4xx_with_a_json_error(
    alice: Api, method: str, path: str, kwargs: dict[str, Any], status: int, code: str | None
) -> None:
    before = alice.node.settings()
    response = await alice.call(method, path, **kwargs)
    assert_error(response, status, code)
    assert alice.node.store.counts()["messages"] == 0
    assert alice.node.settings() == before


async def test_unknown_contacts_and_messages_are_404(alice: Api) -> None:
    message = assert_error(
        await alice.call("POST", "/v1/messages", json={"to": "nobody", "text": "hi"}),
        404,
        "not_found",
    )
    assert "nobody" in message
    assert_error(await alice.call("GET", "/v1/conversations/nobody/messages"), 404, "not_found")
    assert_error(await alice.call("POST", "/v1/conversations/nobody/read"), 404, "not_found")
    unknown = "ab" * 16  # a conversation id this node does not have
    message = assert_error(
        await alice.call("GET", f"/v1/conversations/{unknown}/messages"), 404, "not_found"
    )
    assert unknown in message
    assert_error(await alice.call("POST", f"/v1/conversations/{unknown}/read"), 404, "not_found")
    assert_error(await alice.call("DELETE", f"/v1/contacts/{PEER_ID}"), 404, "not_found")
    assert_error(await alice.call("GET", "/v1/messages/" + "00" * 16), 404, "not_found")
    assert_error(await alice.call("POST", "/v1/messages/" + "00" * 16 + "/read"), 404)


async def test_sending_to_a_contact_without_keys_is_422(alice: Api) -> None:
    response = await alice.call("POST", "/v1/contacts", json={"peer_id": PEER_ID, "name": "carol"})
    assert response.status_code == 201
    assert response.json()["has_prekeys"] is False
    response = await alice.call("POST", "/v1/messages", json={"to": "carol", "text": "hi"})
    assert_error(response, 422, "no_session")


async def test_a_bug_is_a_logged_json_500(
    alice: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> list[Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(alice.node, "conversations", broken)
    with caplog.at_level(logging.ERROR, logger="p2pdm.api"):
        response = await alice.call("GET", "/v1/conversations")
    message = assert_error(response, 500, "internal_error")
    assert "boom" not in message
    [record] = [r for r in caplog.records if r.name == "p2pdm.api"]
    assert "GET /v1/conversations" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


# --- the whole flow between two nodes ---------------------------------------------------


async def test_two_nodes_add_send_read_and_settings(alice: Api, bob: Api) -> None:
    # Bob's invite, from Bob's API.
    response = await bob.call("GET", "/v1/node")
    assert response.status_code == 200
    await check_documented(bob, response, "GET", "/v1/node")
    bob_info = response.json()
    assert bob_info["peer_id"] == str(bob.node.peer_id)
    assert bob_info["name"] == "bob"
    assert bob_info["invite"].startswith("p2pdm:")

    # Alice adds Bob from it.
    body = {"invite": bob_info["invite"]}
    response = await alice.call("POST", "/v1/contacts", json=body)
    assert response.status_code == 201, response.text
    await check_documented(alice, response, "POST", "/v1/contacts", body)
    assert response.json()["peer_id"] == bob_info["peer_id"]
    assert response.json()["name"] == "bob"
    assert response.json()["has_prekeys"] is True
    response = await alice.call("GET", "/v1/contacts")
    await check_documented(alice, response, "GET", "/v1/contacts")
    assert [c["name"] for c in response.json()["contacts"]] == ["bob"]

    # Alice writes to Bob by name: stored, queued.
    body = {"to": "bob", "text": "hi Bob 👋"}
    response = await alice.call("POST", "/v1/messages", json=body)
    assert response.status_code == 201, response.text
    await check_documented(alice, response, "POST", "/v1/messages", body)
    sent = response.json()
    assert sent["status"] == "queued"
    assert sent["direction"] == "out"
    assert sent["peer"] == bob_info["peer_id"]
    assert sent["text"] == "hi Bob 👋"
    assert sent["request"] is False
    assert response.headers["location"] == f"/v1/messages/{sent['id']}"

    response = await alice.call("GET", f"/v1/messages/{sent['id']}")
    await check_documented(alice, response, "GET", "/v1/messages/{message_id}")
    assert response.json()["status"] == "queued"
    assert response.json()["text"] == "hi Bob 👋"
    assert isinstance(response.json()["history"], list)

    response = await alice.call("GET", "/v1/conversations")
    await check_documented(alice, response, "GET", "/v1/conversations")
    [conversation] = response.json()["conversations"]
    assert conversation["peer"] == bob_info["peer_id"]
    assert conversation["name"] == "bob"
    assert conversation["unread"] == 0

    assert sent["conversation_id"] == conversation["id"]
    assert sent["recipients"] == [
        {
            "peer": bob_info["peer_id"],
            "status": "queued",
            "at_ms": sent["stored_at_ms"],
            "status_detail": "",
        }
    ]

    # The conversation by its id; its contact's name and PeerID are aliases of it.
    by_id = await alice.call("GET", f"/v1/conversations/{conversation['id']}/messages?limit=10")
    await check_documented(alice, by_id, "GET", "/v1/conversations/{conversation}/messages")
    assert [m["id"] for m in by_id.json()["messages"]] == [sent["id"]]
    for alias in ("bob", "BOB", bob_info["peer_id"]):
        response = await alice.call("GET", f"/v1/conversations/{alias}/messages?limit=10")
        assert response.json() == by_id.json()

    # Bob receives the envelope (as the delivery service would hand it over):
    # a message request, since Alice is not his contact.
    [item] = alice.node.store.outbox_for(bob.node.peer_id)
    bob.node.messenger.receive(item.envelope)
    response = await bob.call("GET", "/v1/conversations")
    [conversation] = response.json()["conversations"]
    assert conversation["peer"] == str(alice.node.peer_id)
    assert conversation["name"] is None
    assert (conversation["unread"], conversation["request"]) == (1, True)
    response = await bob.call("GET", f"/v1/conversations/{alice.node.peer_id}/messages")
    [received] = response.json()["messages"]
    assert received["id"] == sent["id"]
    assert (received["direction"], received["request"]) == ("in", True)
    assert received["text"] == "hi Bob 👋"

    assert received["conversation_id"] == conversation["id"] == sent["conversation_id"]
    assert received["recipients"] == []
    response = await bob.call("GET", "/v1/events/poll?types=message.received")
    [event] = response.json()["events"]
    assert event["conversation_id"] == conversation["id"]

    response = await bob.call("POST", f"/v1/conversations/{conversation['id']}/read")
    await check_documented(bob, response, "POST", "/v1/conversations/{conversation}/read")
    assert response.json() == {"read": [sent["id"]]}
    response = await bob.call("POST", f"/v1/messages/{sent['id']}/read")
    await check_documented(bob, response, "POST", "/v1/messages/{message_id}/read")
    assert response.json()["status"] == "read"
    assert (await bob.call("GET", "/v1/conversations")).json()["conversations"][0]["unread"] == 0

    # Settings.
    response = await alice.call("GET", "/v1/settings")
    await check_documented(alice, response, "GET", "/v1/settings")
    settings = response.json()
    assert (settings["read_receipts"], settings["name"], settings["demo_offer"]) == (
        True,
        "alice",
        True,
    )
    assert (settings["media_strip_metadata"], settings["media_auto_download_bytes"]) == (
        True,
        25 << 20,
    )
    body = {"read_receipts": False}
    response = await alice.call("PATCH", "/v1/settings", json=body)
    await check_documented(alice, response, "PATCH", "/v1/settings", body)
    assert response.json() == {**settings, "read_receipts": False}
    response = await alice.call("PATCH", "/v1/settings", json={"read_receipts": True, "nope": 1})
    assert_error(response, 400, "invalid_setting")
    assert (await alice.call("GET", "/v1/settings")).json()["read_receipts"] is False

    # Deleting the contact.
    response = await alice.call("DELETE", f"/v1/contacts/{bob_info['peer_id']}")
    assert response.status_code == 204
    await check_documented(alice, response, "DELETE", "/v1/contacts/{peer_id}")
    assert (await alice.call("GET", "/v1/contacts")).json() == {"contacts": []}


async def test_errors_match_the_document(alice: Api) -> None:
    response = await alice.call("POST", "/v1/messages", json={"to": "nobody", "text": "x"})
    await check_documented(alice, response, "POST", "/v1/messages")
    response = await alice.call("GET", "/v1/node", headers={"Host": "evil.example"})
    await check_documented(alice, response, "GET", "/v1/node")


# --- the OpenAPI document -------------------------------------------------------------


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


async def test_openapi_documents_every_route_and_nothing_else(alice: Api) -> None:
    response = await alice.call("GET", "/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    served = set()
    api_routes = [
        route
        for route in create_app(alice.node, TOKEN).routes
        if getattr(route, "path", "").startswith("/v1/")  # not the web app's files and /login
    ]
    for route in api_routes:
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                served.add((route.path, method.lower()))  # type: ignore[attr-defined]
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert {"401", "403", "500"} <= set(op["responses"]), (path, method)
            assert any(code.startswith("2") for code in op["responses"]), (path, method)
            for name in re.findall(r"{(\w+)}", path):
                assert name in [p["name"] for p in op.get("parameters", [])], (path, name)
    for ref in set(_refs(doc)):
        _, _, section, name = ref.split("/")
        assert name in doc["components"][section], ref


# --- serving ------------------------------------------------------------------------------


async def test_serve_api_refuses_a_non_loopback_host() -> None:
    node = make_node("alice")
    for host in ["0.0.0.0", "192.0.2.1", "::"]:
        with pytest.raises(ConfigError, match="loopback"), trio.fail_after(WAIT_S):
            await serve_api(node, TOKEN, host, 0)


async def test_serve_api_reports_a_busy_port_in_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"), trio.fail_after(WAIT_S):
            await serve_api(make_node("alice"), TOKEN, "127.0.0.1", port)


async def test_serve_api_on_localhost_and_stops_when_cancelled() -> None:
    node = make_node("alice")
    async with trio.open_nursery() as nursery:
        with trio.fail_after(WAIT_S):
            host, port = await nursery.start(serve_api, node, TOKEN, "localhost", 0)
        assert host in ("127.0.0.1", "::1")
        nursery.cancel_scope.cancel()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe, pytest.raises(ConnectionRefusedError):
        probe.connect((host, port))
