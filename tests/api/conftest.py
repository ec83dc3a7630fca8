"""Shared by the API tests: Alice's and Bob's served nodes, error and schema checks,
scoped tokens, and a small WebSocket client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import wsproto
import wsproto.events as ws

from tests.conftest import TOKEN, Api, make_node, serving


@pytest.fixture
async def alice() -> AsyncIterator[Api]:
    async with serving(make_node("alice")) as api:
        yield api


@pytest.fixture
async def bob() -> AsyncIterator[Api]:
    async with serving(make_node("bob")) as api:
        yield api


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return str(error["message"])


# --- a small JSON Schema check, enough for the shapes in openapi.py --------------


def conforms(schema: dict[str, Any], value: Any, doc: dict[str, Any], where: str = "$") -> None:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        conforms(doc["components"]["schemas"][name], value, doc, where)
        return
    if "not" in schema:
        try:
            conforms(schema["not"], value, doc, where)
        except AssertionError:
            pass
        else:
            raise AssertionError(f"{where}: {value!r} matches what 'not' excludes")
    if "anyOf" in schema:
        passed = 0
        for option in schema["anyOf"]:
            try:
                conforms(option, value, doc, where)
                passed += 1
            except AssertionError:
                pass
        assert passed, f"{where}: {value!r} matches none of anyOf"
    if "oneOf" in schema:
        matches = 0
        for option in schema["oneOf"]:
            try:
                conforms(option, value, doc, where)
                matches += 1
            except AssertionError:
                pass
        assert matches == 1, f"{where}: {value!r} matches {matches} of oneOf"
        return
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "null": lambda v: v is None,
        }
        assert any(checks[k](value) for k in kinds), f"{where}: {value!r} is not {kinds}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "pattern" in schema and isinstance(value, str):
        assert re.search(schema["pattern"], value), f"{where}: {value!r} !~ {schema['pattern']}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            assert key in value, f"{where}: missing {key!r}"
        for key, item in value.items():
            if key in properties:
                conforms(properties[key], item, doc, f"{where}.{key}")
            else:
                extra = schema.get("additionalProperties", True)
                assert extra is not False, f"{where}: unexpected {key!r}"
                if isinstance(extra, dict):
                    conforms(extra, item, doc, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            conforms(schema["items"], item, doc, f"{where}[{i}]")


async def check_documented(
    api: Api, response: httpx.Response, method: str, path: str, body: Any = None
) -> None:
    """The response (and the request body, if any) match the served OpenAPI document."""
    doc = (await api.call("GET", "/v1/openapi.json")).json()
    operation = doc["paths"][path][method.lower()]
    documented = operation["responses"][str(response.status_code)]
    if "$ref" in documented:
        documented = doc["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    if body is not None:
        conforms(operation["requestBody"]["content"]["application/json"]["schema"], body, doc)
    if "content" in documented:
        conforms(documented["content"]["application/json"]["schema"], response.json(), doc)
    else:
        assert response.content == b""


async def make_token(api: Api, **body: Any) -> tuple[str, dict[str, Any]]:
    response = await api.call("POST", "/v1/tokens", json=body)
    assert response.status_code == 201, response.text
    await check_documented(api, response, "POST", "/v1/tokens", body)
    made: dict[str, Any] = response.json()
    return made.pop("token"), made


def as_token(api: Api, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api.base, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )


@asynccontextmanager
async def websocket(
    api: Api, target: str, token: str = TOKEN, origin: str | None = None
) -> AsyncIterator[WS]:
    stream = await trio.open_tcp_stream("127.0.0.1", api.port)
    async with stream:
        client = WS(stream, wsproto.WSConnection(wsproto.ConnectionType.CLIENT))
        headers = [(b"authorization", f"Bearer {token}".encode())]
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        await client.send(ws.Request(host="127.0.0.1", target=target, extra_headers=headers))
        yield client


class WS:
    """A minimal WebSocket client over a trio stream (wsproto does the framing)."""

    def __init__(self, stream: trio.SocketStream, conn: wsproto.WSConnection) -> None:
        self.stream = stream
        self.conn = conn
        self.pending: list[ws.Event] = []

    async def send(self, event: ws.Event) -> None:
        await self.stream.send_all(self.conn.send(event))

    async def next(self) -> ws.Event:
        while not self.pending:
            data = await self.stream.receive_some()
            self.conn.receive_data(data or None)
            self.pending.extend(self.conn.events())
        return self.pending.pop(0)

    async def json(self) -> dict[str, Any]:
        event = await self.next()
        while isinstance(event, ws.AcceptConnection):
            event = await self.next()
        assert isinstance(event, ws.TextMessage), event
        data: dict[str, Any] = json.loads(event.data)
        return data
