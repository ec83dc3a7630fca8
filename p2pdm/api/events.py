"""``/v1/events``: the node's event log as a long poll, Server-Sent Events or a WebSocket.

How this works: all three read the same log from the store
(:meth:`Node.event_page`) after a cursor, the id of the last event the client
has, and wait on the node's :class:`~p2pdm.node.events.EventBus` while there is
nothing new. A client that saves the cursor resumes after its own restart or
the node's, missing nothing the log still holds (``gap`` says when it fell
behind the log's retention; ``requests_gap`` says the same of the request
events, kept and pruned apart so that strangers never cause a ``gap``). A
token limited to some contacts gets only the events about them. Every
waiting client holds one of the bus's bounded slots; when they are all
taken the answer is 503 (WebSocket: close 1013).

Ephemeral events (``typing``) are never stored: a client gets them only
while it is connected (an SSE stream, a WebSocket, a long poll while it
waits), from its slot's bounded queue (:meth:`Listener.follow`). They have
``id: null`` (SSE: no ``id:`` line, so ``Last-Event-ID`` stays on the last
stored event), do not move the cursor, and no ``since`` brings them back.

- ``GET /v1/events/poll?since=&timeout=&limit=&types=``: JSON, at once if
  there are events, else after the first one or ``timeout`` seconds.
- ``GET /v1/events?since=&types=`` with ``Accept: text/event-stream``: one
  SSE message per event (``id`` = event id, so a browser ``EventSource``
  resumes by itself with ``Last-Event-ID``), and a comment line every
  :data:`SSE_KEEPALIVE_S` so proxies and clients see the stream is alive.
- ``/v1/events?since=&types=`` over WebSocket: one JSON text frame per
  event; whatever the client sends is ignored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Collection
from contextlib import aclosing
from typing import Any, Final

import trio
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from p2pdm.api.guard import grant_of
from p2pdm.api.payload import (
    MAX_CURSOR,
    RequestError,
    bad_request,
    check_query,
    parse_event_types,
    query_int,
)
from p2pdm.api.schema import Schema
from p2pdm.api.schema import query_int as query_int_param
from p2pdm.api.views import event_json, group_of
from p2pdm.api.views_groups import group_json
from p2pdm.core.identity import PeerId
from p2pdm.core.model import Event, EventType, LogEvent
from p2pdm.errors import P2PDMError
from p2pdm.limits import MAX_PAGE_SIZE
from p2pdm.node.events import Listener, TooManyListeners
from p2pdm.node.node import EventPage, Node

__all__ = [
    "DEFAULT_EVENTS_PAGE",
    "MAX_POLL_TIMEOUT_S",
    "POLL_PARAMETERS",
    "SSE_KEEPALIVE_S",
    "STREAM_PARAMETERS",
    "poll_events",
    "stream_events",
    "websocket_events",
]

#: Events per long-poll answer unless the client says (Telegram's default).
DEFAULT_EVENTS_PAGE: Final = 100
#: Longest long poll, in seconds: under the usual 60 s idle timeouts of HTTP
#: clients and proxies, so the answer (maybe empty) always gets through.
MAX_POLL_TIMEOUT_S: Final = 50
#: Seconds between SSE keep-alive comments on an idle stream.
SSE_KEEPALIVE_S: Final = 15.0
#: Events sent per store read on a stream; one read stays quick.
STREAM_BATCH: Final = 100
#: WebSocket close code when every listener slot is taken ("try again later").
WS_TRY_AGAIN_LATER: Final = 1013
#: WebSocket close code for bad query parameters (RFC 6455 "policy violation").
WS_POLICY_VIOLATION: Final = 1008
SSE_MEDIA_TYPE: Final = "text/event-stream"

#: ``since`` and ``types``, as the document gives them to every form of ``/v1/events``.
STREAM_PARAMETERS: Final[tuple[Schema, ...]] = (
    query_int_param("since", "the cursor: events with a larger id", 0, MAX_CURSOR, 0),
    {
        "name": "types",
        "in": "query",
        "required": False,
        "description": "comma-separated event types to get (absent or empty: all)",
        "style": "form",
        "explode": False,
        "schema": {
            "type": "array",
            "anyOf": [
                {"items": {"type": "string", "enum": [t.value for t in EventType]}},
                {"maxItems": 1, "items": {"const": ""}},  # "types=": every type
            ],
        },
    },
)
#: The long poll's parameters: the stream's, a wait and a page size.
POLL_PARAMETERS: Final[tuple[Schema, ...]] = (
    *STREAM_PARAMETERS,
    query_int_param("timeout", "seconds to wait when there is nothing", 0, MAX_POLL_TIMEOUT_S, 0),
    query_int_param("limit", "most events to return", 1, MAX_PAGE_SIZE, DEFAULT_EVENTS_PAGE),
)


def _group(node: Node, event: Event) -> dict[str, Any] | None:
    """A ``group.*`` event's group as it is now (None if gone, or another event)."""
    if not event.type.value.startswith("group.") or event.conversation_id is None:
        return None
    if node.store.get_group(event.conversation_id) is None:
        return None
    return group_json(node, node.group_info(event.conversation_id))


def _events_json(
    node: Node, page: EventPage, ephemeral: Collection[LogEvent] = ()
) -> list[dict[str, Any]]:
    """The page's stored events, then the ephemeral ones (``id: null``)."""
    out = []
    for event in page.events:
        message = None
        if event.type in _WITH_MESSAGE and event.message_id is not None:
            message = node.store.get_message(event.message_id)
        extras = None if message is None else node.extras([message])[message.id]
        group = None if message is None else group_of(node, message)
        out.append(
            event_json(event, message, extras, node.store.get_blob, group, _group(node, event))
        )
    out.extend(event_json(event, None) for event in ephemeral)
    return out


#: Events that carry their message as stored now.
_WITH_MESSAGE: Final = frozenset(
    {
        EventType.MESSAGE_RECEIVED,
        EventType.MESSAGE_REACTION,
        EventType.MESSAGE_EDITED,
        EventType.MESSAGE_UNSENT,
    }
)


def _filters(
    request: HTTPConnection,
) -> tuple[frozenset[EventType] | None, frozenset[PeerId] | None]:
    """The event types the client asked for, and the contacts its token may see."""
    types = parse_event_types(request.query_params.get("types"))
    return types, grant_of(request.scope).contacts


def _wanted(
    types: Collection[EventType] | None, peers: Collection[PeerId] | None
) -> Callable[[LogEvent], bool]:
    """Which ephemeral events a client gets: the same filters as the log's."""

    def wants(event: LogEvent) -> bool:
        if types is not None and event.type not in types:
            return False
        return peers is None or (event.peer is not None and event.peer in peers)

    return wants


async def poll_events(request: Request, node: Node) -> Response:
    since = query_int(request, "since", 0, 0, MAX_CURSOR)
    timeout = query_int(request, "timeout", 0, 0, MAX_POLL_TIMEOUT_S)
    limit = query_int(request, "limit", DEFAULT_EVENTS_PAGE, 1, MAX_PAGE_SIZE)
    assert since is not None and timeout is not None and limit is not None
    types, peers = _filters(request)
    page = node.event_page(since, limit, types, peers)
    ephemeral: list[LogEvent] = []
    if not page.events and not page.gap and timeout > 0:
        slot = node.events.listener().follow(_wanted(types, peers))
        with slot, trio.move_on_after(timeout):
            while not page.events and not ephemeral:
                await node.events.wait(timeout)
                page = node.event_page(since, limit, types, peers)
                ephemeral = slot.take()
    return JSONResponse(
        {
            "events": _events_json(node, page, ephemeral),
            "cursor": page.cursor,
            "gap": page.gap,
            "requests_gap": page.requests_gap,
        }
    )


def _stream_cursor(request: HTTPConnection) -> int:
    """``Last-Event-ID`` (an SSE client resuming) wins over ``since``."""
    last = request.headers.get("last-event-id")
    if last is not None:
        if not (last.isascii() and last.isdigit() and int(last) <= MAX_CURSOR):
            raise bad_request("Last-Event-ID must be an event id")
        return int(last)
    since = query_int(request, "since", 0, 0, MAX_CURSOR)
    assert since is not None
    return since


async def _follow(
    node: Node,
    slot: Listener,
    cursor: int,
    types: Collection[EventType] | None,
    peers: Collection[PeerId] | None,
    idle_s: float,
) -> AsyncGenerator[tuple[list[dict[str, Any]], list[str]], None]:
    """Batches of events after ``cursor`` and of the ephemeral events ``slot``
    follows, forever; an empty batch after ``idle_s`` without any. The second
    value names the page's gaps (``gap``, ``requests_gap``)."""
    while True:
        page = node.event_page(cursor, STREAM_BATCH, types, peers)
        ephemeral = slot.take()  # no checkpoint between these reads and the wait
        cursor = page.cursor
        gaps = ["gap"] * page.gap + ["requests_gap"] * page.requests_gap
        if page.events or gaps or ephemeral:
            yield _events_json(node, page, ephemeral), gaps
        elif not await node.events.wait(idle_s):
            yield [], []


class _EventStream(StreamingResponse):
    """An SSE response that gives its listener slot back however it ends."""

    def __init__(self, body: AsyncGenerator[str, None], slot: Listener) -> None:
        super().__init__(
            body,
            media_type=SSE_MEDIA_TYPE,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._slot = slot
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self._slot:
            async with aclosing(self._body):  # closed now, not whenever it is collected
                await super().__call__(scope, receive, send)


async def stream_events(request: Request, node: Node) -> Response:
    accept = request.headers.get("accept", "")
    if SSE_MEDIA_TYPE not in accept:
        raise RequestError(
            406,
            "not_acceptable",
            f"GET /v1/events is a stream: send 'Accept: {SSE_MEDIA_TYPE}', "
            "connect over WebSocket, or use /v1/events/poll",
        )
    cursor = _stream_cursor(request)
    types, peers = _filters(request)
    slot = node.events.listener().follow(_wanted(types, peers))

    async def body() -> AsyncGenerator[str, None]:
        yield f"retry: {int(SSE_KEEPALIVE_S * 1000)}\n\n"
        batches = _follow(node, slot, cursor, types, peers, SSE_KEEPALIVE_S)
        async with aclosing(batches):
            async for events, gaps in batches:
                for gap in gaps:
                    yield f"event: {gap}\ndata: {{}}\n\n"
                if not events:
                    yield ": keep-alive\n\n"
                for event in events:
                    data = json.dumps(event, separators=(",", ":"))
                    # An ephemeral event has no id line: Last-Event-ID stays put.
                    line = "" if event["id"] is None else f"id: {event['id']}\n"
                    yield f"{line}event: {event['type']}\ndata: {data}\n\n"

    return _EventStream(body(), slot)


async def websocket_events(websocket: WebSocket) -> None:
    node: Node = websocket.app.state.node
    try:
        check_query(websocket, frozenset(p["name"] for p in STREAM_PARAMETERS))
        cursor = _stream_cursor(websocket)
        types, peers = _filters(websocket)
        slot = node.events.listener().follow(_wanted(types, peers))
    except RequestError as exc:
        await websocket.close(WS_POLICY_VIOLATION, exc.message[:120])
        return
    except TooManyListeners as exc:
        await websocket.close(WS_TRY_AGAIN_LATER, str(exc)[:120])
        return
    with slot:
        await websocket.accept()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_closed, websocket, nursery.cancel_scope)
            batches = _follow(node, slot, cursor, types, peers, SSE_KEEPALIVE_S)
            try:
                async with aclosing(batches):
                    async for events, gaps in batches:
                        for gap in gaps:
                            await websocket.send_json({"type": gap})
                        for event in events:
                            await websocket.send_json(event)
            except (WebSocketDisconnect, P2PDMError):
                nursery.cancel_scope.cancel()


async def _until_closed(websocket: WebSocket, scope: trio.CancelScope) -> None:
    """Read and drop what the client sends; stop everything when it closes."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    finally:
        scope.cancel()
