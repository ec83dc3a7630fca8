"""The Python SDK of a running node's local API: async for bots, sync for scripts and the CLI.

How this works: :class:`AsyncClient` (httpx over anyio, so it runs under
trio and asyncio alike) and :class:`Client` (its synchronous twin, which the
CLI uses, on the standard library's ``http.client`` with keep-alive: see
:mod:`p2pdm.client._wire`) share everything but the I/O. Their API methods
(``send``, ``contacts``, ``messages``, …) are not written twice: each is one
row of the table in :mod:`p2pdm.client._operations` (name, HTTP method, path
template, parameters, which field of the answer is the result), and each
client only sends. :meth:`Client.for_home` / :meth:`AsyncClient.for_home`
find the node of a home the way ``ipfs`` finds its daemon: the address the
running node wrote to ``<home>/api_addr`` (``host:port``; absent means
127.0.0.1 on :data:`~p2pdm.homefiles.DEFAULT_API_PORT`) and the owner's
token in ``<home>/api_token`` (or a scoped token you pass). No token file,
or nothing listening, means no node is running:
:class:`~p2pdm.errors.NodeNotRunning`. A refusal from the API (4xx/5xx) is
an :class:`APIError` carrying the API's own one-line message, status and
code.

``events()`` long-polls ``/v1/events/poll`` and yields events one by one; its
``cursor`` is the id of the last event handed out, so a bot that saves it and
passes it back as ``since`` after a restart misses nothing. While the node is
down or busy it waits and retries (:data:`RETRY_MAX_S` apart at most)::

    async with AsyncClient.for_home(Home()) as node:
        events = node.events(since=saved_cursor, types=["message.received"])
        async for event in events:
            ...
            save(events.cursor)

Types: a row of the table is a typed function, and the descriptor it
becomes is generic over that function's parameters (a ``ParamSpec``) and
its result; its ``__get__`` is overloaded so that mypy reads
``Client().send`` as ``(to: str, text: str, *, idempotency_key: str | None
= None) -> Message`` and ``AsyncClient().send`` as the same returning an
awaitable. The signature mypy checks callers against is therefore the one
that runs: there are no stubs or protocol to drift from it.
``inspect.signature`` and ``help()`` show it too.

Light: this package imports the light :mod:`p2pdm.homefiles`,
:mod:`p2pdm.hints` and :mod:`p2pdm.errors`, and httpx and anyio only when
:class:`AsyncClient` is first used (``from p2pdm.client import
AsyncClient``); never libp2p, the session libraries, PyNaCl, SQLite or the
node. So a blocking client, and every CLI command, runs without httpx,
httpcore, anyio or trio. A :class:`~p2pdm.daemon.home.Home` (which loads
those) may be passed to ``for_home``, or just the home's directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from p2pdm.client._events import EVENTS_POLL_S, RETRY_MAX_S, RETRY_MIN_S, EventStream
from p2pdm.client._events import _Cursor as _Cursor  # not public; tests drive it without I/O
from p2pdm.client._http import DEFAULT_TIMEOUT_S, APIError
from p2pdm.client._http import _Call as _Call  # not public; the type of Client.call's argument
from p2pdm.client._records import (
    AddedContact,
    BlockedPeer,
    Claimant,
    Contact,
    Conversation,
    DhtStats,
    Directory,
    Event,
    EventPage,
    Group,
    GroupDelivery,
    GroupMember,
    GroupPhoto,
    Message,
    MessagePage,
    MessageRequest,
    NodeInfo,
    Profile,
    ReachabilityInfo,
    Reacted,
    SearchHit,
)
from p2pdm.client._sync import Client
from p2pdm.homefiles import (
    API_ADDR_FILE,
    MAX_API_ADDR_CHARS,
    api_addr_path,
    format_api_addr,
    parse_api_addr,
    read_api_addr,
    write_api_addr,
)

if TYPE_CHECKING:
    from p2pdm.client._async import AsyncClient


def __getattr__(name: str) -> Any:
    """``AsyncClient``, imported on first use: it brings httpx and anyio."""
    if name == "AsyncClient":
        from p2pdm.client._async import AsyncClient

        return AsyncClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "API_ADDR_FILE",
    "DEFAULT_TIMEOUT_S",
    "EVENTS_POLL_S",
    "MAX_API_ADDR_CHARS",
    "RETRY_MAX_S",
    "RETRY_MIN_S",
    "APIError",
    "AddedContact",
    "AsyncClient",
    "BlockedPeer",
    "Claimant",
    "Client",
    "Contact",
    "Conversation",
    "DhtStats",
    "Directory",
    "Event",
    "EventPage",
    "EventStream",
    "Group",
    "GroupDelivery",
    "GroupMember",
    "GroupPhoto",
    "Message",
    "MessagePage",
    "MessageRequest",
    "NodeInfo",
    "Profile",
    "ReachabilityInfo",
    "Reacted",
    "SearchHit",
    "api_addr_path",
    "format_api_addr",
    "parse_api_addr",
    "read_api_addr",
    "write_api_addr",
]
