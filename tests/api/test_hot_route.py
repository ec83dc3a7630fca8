"""``POST /v1/messages`` through its hot route (:class:`p2pdm.api.app.HotRoutes`)
answers exactly as through Starlette's router: the same status, headers and
body for every refusal, and the same message for a send (one node, two apps,
so an idempotency key used on one is replayed by the other)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from p2pdm.api import _hypercorn as hypercorn_patch
from p2pdm.api import app as app_module
from p2pdm.api.app import HOT_ROUTES, HotRoutes, create_app
from p2pdm.api.guard import MAX_API_BODY_BYTES
from p2pdm.node.node import Node
from p2pdm.node.tokens import create_token
from tests.conftest import TOKEN, WAIT_S, make_node, serving

Answer = tuple[int, dict[str, str], bytes]

#: Fields of a message's JSON that differ between two messages sent alike.
_PER_MESSAGE = ("id", "sent_at_ms", "stored_at_ms")


async def call(
    app: Any,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    path: str = "/v1/messages",
    query: bytes = b"",
    chunks: int = 1,
) -> Answer:
    """One request straight into the ASGI app; the body in ``chunks`` pieces."""
    sent: dict[str, str] = {"host": "127.0.0.1:8000", "content-type": "application/json"}
    if headers is not None:
        sent.update(headers)
    if chunks == 1 and "content-length" not in sent:
        sent["content-length"] = str(len(body))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in sent.items() if v is not None],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    size = max(1, -(-len(body) // chunks))
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]

    async def receive() -> dict[str, Any]:
        if pieces:
            piece = pieces.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}
        return {"type": "http.disconnect"}

    answer: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["headers"], answer["body"]


def _apps(node: Node) -> tuple[Any, Any]:
    """The app as served (hot route) and the same app without it (router only)."""
    hot = create_app(node, TOKEN)
    plain = create_app(node, TOKEN)
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not HotRoutes]  # type: ignore[comparison-overlap]
    return hot, plain


@pytest.fixture
def node() -> Node:
    alice = make_node("alice")
    alice.add_contact_from_invite(make_node("bob").invite(), "bob")
    return alice


def _reader(node: Node) -> str:
    return create_token(node.store, "read", name="reader", now_ms=node.now_ms())[1]


OWNER = {"authorization": f"Bearer {TOKEN}"}


HI = b'{"to": "bob", "text": "hi"}'


def _req(body: bytes = HI, headers: dict[str, str] | None = None, **more: Any) -> dict[str, Any]:
    return {"body": body, "headers": OWNER if headers is None else headers, **more}


def _refusals(reader: str) -> list[tuple[str, dict[str, Any]]]:
    big = b'{"to": "bob", "text": "' + b"x" * MAX_API_BODY_BYTES + b'"}'
    long_key = {"to": "bob", "text": "hi", "idempotency_key": "k" * 256}
    return [
        ("bad JSON", _req(b"{not json")),
        ("not UTF-8", _req(b'{"to": "\xff"}')),
        ("NaN", _req(b'{"to": "bob", "text": NaN}')),
        ("not an object", _req(b"[1]")),
        ("unknown field", _req(b'{"to": "bob", "text": "hi", "x": 1}')),
        ("missing to", _req(b'{"text": "hi"}')),
        ("missing text", _req(b'{"to": "bob"}')),
        ("wrong type", _req(b'{"to": "bob", "text": 5}')),
        ("blank text", _req(b'{"to": "bob", "text": "  "}')),
        ("unknown recipient", _req(b'{"to": "carol", "text": "hi"}')),
        ("bad reply_to", _req(b'{"to": "bob", "text": "hi", "reply_to": "zz"}')),
        ("long key", _req(json.dumps(long_key).encode())),
        ("not JSON media", _req(headers={**OWNER, "content-type": "text/plain"})),
        ("too large", _req(headers={**OWNER, "content-length": str(MAX_API_BODY_BYTES + 1)})),
        ("bad length", _req(headers={**OWNER, "content-length": "12x"})),
        ("chunked too large", _req(big, chunks=9)),
        ("no token", _req(headers={})),
        ("wrong token", _req(headers={"authorization": "Bearer nope"})),
        ("not bearer", _req(headers={"authorization": f"Basic {TOKEN}"})),
        ("read scope", _req(headers={"authorization": f"Bearer {reader}"})),
        ("unknown query", _req(query=b"x=1")),
        ("foreign host", _req(headers={**OWNER, "host": "evil.example"})),
        ("foreign origin", _req(headers={**OWNER, "origin": "http://evil.example"})),
        ("wrong method", _req(b"", method="PUT")),
        ("trailing slash", _req(path="/v1/messages/")),
    ]


def test_the_hot_route_is_the_send_route() -> None:
    assert {("POST", "/v1/messages")} == HOT_ROUTES
    assert {(r.method, r.path) for r in app_module.ROUTES} >= HOT_ROUTES


async def test_every_refusal_is_answered_alike(node: Node) -> None:
    hot, plain = _apps(node)
    for case, request in _refusals(_reader(node)):
        fast = await call(hot, **request)
        slow = await call(plain, **request)
        assert fast == slow, case
        assert fast[0] >= 300, case  # the slash: Starlette's redirect, as before
        assert fast[0] == 307 or "error" in json.loads(fast[2]), case
    assert node.store.counts()["messages"] == 0  # nothing was sent by any of them


async def test_a_send_is_answered_alike_and_its_key_replays_across_both(node: Node) -> None:
    hot, plain = _apps(node)
    for first, second in ((hot, plain), (plain, hot)):
        key = f"key-{id(first)}"
        body = json.dumps({"to": "bob", "text": "hi", "idempotency_key": key}).encode()
        made = await call(first, body, OWNER)
        again = await call(second, body, OWNER)
        assert made[0] == 201
        assert again[0] == 200 and again[1]["idempotent-replayed"] == "true"
        assert json.loads(made[2]) == json.loads(again[2])  # the same message, as stored
        assert made[1]["location"] == f"/v1/messages/{json.loads(made[2])['id']}"
        headers = {k: v for k, v in made[1].items() if k not in ("location", "content-length")}
        replayed = {
            k: v for k, v in again[1].items() if k not in ("idempotent-replayed", "content-length")
        }
        assert headers == replayed
        assert headers["content-security-policy"].startswith("default-src 'none'")
    fresh = [
        json.loads((await call(app, b'{"to": "bob", "text": "hello"}', OWNER))[2])
        for app in (hot, plain)
    ]
    for view in fresh:
        for field in _PER_MESSAGE:
            view.pop(field)
        for recipient in view["recipients"]:
            recipient.pop("at_ms")
    assert fresh[0] == fresh[1]
    assert fresh[0]["reactions"] == {} and fresh[0]["group"] is None
    assert fresh[0]["status"] == "queued" and fresh[0]["status_detail"] == ""


async def test_a_json_answer_is_one_write_and_the_event_stream_shows_its_head_first(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hypercorn writes a response's head and body together when the body's length
    is declared (``p2pdm.api._hypercorn``); the event stream's head still goes first."""
    writes: list[tuple[int, bytes]] = []
    original = trio.SocketStream.send_all

    async def send_all(self: trio.SocketStream, data: Any) -> None:
        if len(data):
            writes.append((self.socket.getsockname()[1], bytes(data)))
        await original(self, data)

    monkeypatch.setattr(trio.SocketStream, "send_all", send_all)
    async with serving(node) as api:
        for body in ({"to": "bob", "text": "hi"}, {"to": "nobody", "text": "hi"}):
            writes.clear()
            response = await api.call("POST", "/v1/messages", json=body)
            ours = [data for port, data in writes if port == api.port]
            assert len(ours) == 1 and ours[0].startswith(b"HTTP/1.1 ")
            assert ours[0].endswith(response.content) and response.status_code in (201, 404)
        writes.clear()
        with trio.fail_after(WAIT_S):
            async with api.http.stream(
                "GET", "/v1/events", headers={"Accept": "text/event-stream"}
            ) as stream:
                assert stream.status_code == 200  # its head, before any event
                assert stream.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize(
    ("release", "patched"),
    [("0.18.0", True), ("0.18.3", True), ("0.17.2", False), ("0.19.0", False), ("1.18", False)],
)
def test_hypercorn_is_changed_only_in_the_releases_it_was_checked_against(
    release: str, patched: bool
) -> None:
    assert hypercorn_patch.checked(release) is patched


def test_the_installed_hypercorn_is_one_the_change_was_checked_against() -> None:
    """pyproject allows only checked releases; the change is in place."""
    from hypercorn.protocol.h11 import H11Protocol

    assert hypercorn_patch.coalesce_response_head() is True
    assert getattr(H11Protocol.stream_send, "coalesces", False)
