"""The Python SDK of a running node's local API: async for bots, sync for scripts and the CLI.

How this works: :class:`AsyncClient` (httpx over anyio, so it runs under
trio and asyncio alike) and :class:`Client` (its synchronous twin, which the
CLI's chat commands use) share everything but the I/O: each endpoint is a
:class:`_Call` built once by a function below, and each client only sends it.
:meth:`Client.for_home` / :meth:`AsyncClient.for_home` find the node of a
home the way ``ipfs`` finds its daemon: the address the running node wrote
to ``<home>/api_addr`` (``host:port``; absent means 127.0.0.1 on
:data:`~p2pdm.node.DEFAULT_API_PORT`) and the owner's token in
``<home>/api_token`` (or a scoped token you pass). No token file, or nothing
listening, means no node is running: :class:`~p2pdm.errors.NodeNotRunning`.
A refusal from the API (4xx/5xx) is an :class:`APIError` carrying the API's
own one-line message, status and code.

``events()`` long-polls ``/v1/events/poll`` and yields events one by one; its
``cursor`` is the id of the last event handed out, so a bot that saves it and
passes it back as ``since`` after a restart misses nothing. While the node is
down or busy it waits and retries (:data:`RETRY_MAX_S` apart at most)::

    async with AsyncClient.for_home(Home()) as node:
        events = node.events(since=saved_cursor, types=["message.received"])
        async for event in events:
            ...
            save(events.cursor)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Generic, Self, TypedDict, TypeVar, cast
from urllib.parse import quote

import anyio
import httpx

from p2pdm import hints
from p2pdm.errors import HomeError, NodeNotRunning, P2PDMError
from p2pdm.home import Home, write_private_file
from p2pdm.node import DEFAULT_API_PORT

__all__ = [
    "API_ADDR_FILE",
    "DEFAULT_TIMEOUT_S",
    "APIError",
    "AddedContact",
    "AsyncClient",
    "Client",
    "Contact",
    "Conversation",
    "Event",
    "EventStream",
    "Message",
    "MessagePage",
    "format_api_addr",
    "parse_api_addr",
    "read_api_addr",
    "write_api_addr",
]

#: File in the home where the running node writes its API address (host:port).
API_ADDR_FILE: Final = "api_addr"
#: A node answers local calls from its store in milliseconds; this long
#: without an answer means it is stuck, and the CLI should say so, not hang.
DEFAULT_TIMEOUT_S: Final = 10.0
#: ``api_addr`` is one short line; anything longer is not ours.
MAX_API_ADDR_CHARS: Final = 300
#: Host names the client sends the token to (the API only listens on loopback).
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
#: Seconds one long poll of ``events()`` waits on the node (the API allows 50).
EVENTS_POLL_S: Final = 25
#: ``events()`` retries a node that is down or busy after this long, doubling
#: up to RETRY_MAX_S: a restarting node is picked up within seconds, and a
#: node that stays down costs one request every half minute.
RETRY_MIN_S: Final = 0.5
RETRY_MAX_S: Final = 30.0


class APIError(P2PDMError):
    """The node refused a request; the message is the node's own explanation.

    ``status`` is the HTTP status (0 if the node never answered), ``code`` the
    API's error code (``not_found``, ``forbidden_scope``, …).
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def transient(self) -> bool:
        """True for failures worth retrying later: no answer, or the node busy."""
        return self.status in (0, 503)


# --- the records (see docs/api.md, "Records") ------------------------------------


class Message(TypedDict):
    id: str
    conversation_id: str
    peer: str
    direction: str
    kind: str
    text: str | None
    sent_at_ms: int
    stored_at_ms: int
    status: str
    #: For ``deposited``: how many mailboxes hold it and until when; for
    #: ``failed``/``expired``: why. Empty otherwise.
    status_detail: str
    request: bool


class Contact(TypedDict):
    peer_id: str
    name: str
    added_at_ms: int
    addrs: list[str]
    last_seen_ms: int | None
    verified: bool
    blocked: bool
    has_prekeys: bool
    #: The name is the contact's own (from its invite): show ``fingerprint`` beside it.
    name_from_invite: bool
    fingerprint: str


class AddedContact(Contact):
    #: The invite's name when it was a PeerID or taken, and so was changed.
    renamed_from: str | None


class Conversation(TypedDict):
    id: str
    peer: str
    name: str | None
    last_message_at_ms: int
    unread: int
    request: bool


class MessagePage(TypedDict):
    messages: list[Message]
    next_before: int | None


class Event(TypedDict):
    """One event; ignore types you do not know (later versions add some)."""

    id: int
    type: str
    at_ms: int
    peer: str | None
    message_id: str | None
    status: str | None
    detail: str
    message: Message | None


class EventPage(TypedDict):
    events: list[Event]
    cursor: int
    gap: bool
    requests_gap: bool


# --- the address file ----------------------------------------------------------


def format_api_addr(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_api_addr(
    text: str, where: str = "the API address", *, any_port: bool = False
) -> tuple[str, int]:
    """Parse ``host:port``; raises :class:`HomeError` unless it is a loopback address.

    ``any_port`` also accepts port 0 (listen on a free port)."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]").lower()
    lowest = 0 if any_port else 1
    if not sep or not port_text.isdigit() or not lowest <= int(port_text) < 2**16:
        raise HomeError(f"{where} is not host:port: {text[:60]!r}")
    if host not in _LOOPBACK_HOSTS and not host.startswith("127."):
        if any_port:  # the address to listen on, as the user gave it
            fix = (
                f"use 127.0.0.1:{port_text}; the local API serves this machine only "
                "(from another machine, forward the port with `ssh -L`)"
            )
        else:  # a file the node wrote: someone else did
            fix = "delete it"
        raise HomeError(f"{where} names {host!r}, not a loopback address; {fix}")
    return host, int(port_text)


def api_addr_path(home: Home) -> Path:
    return home.path / API_ADDR_FILE


def read_api_addr(home: Home) -> tuple[str, int]:
    """The API address of the home's node; the default one if the file is absent."""
    path = api_addr_path(home)
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            text = file.read(MAX_API_ADDR_CHARS + 1)
    except FileNotFoundError:
        return "127.0.0.1", DEFAULT_API_PORT
    except OSError as exc:
        raise HomeError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_api_addr(text, str(path))


def write_api_addr(home: Home, host: str, port: int) -> None:
    """Record where the running node's API listens (atomically, mode 0600)."""
    data = (format_api_addr(host, port) + "\n").encode("ascii")
    write_private_file(api_addr_path(home), data, replace=True)


# --- the endpoints, once for both clients ---------------------------------------

T = TypeVar("T")


@dataclass(frozen=True)  # no slots: ``_Call[X](...)`` sets __orig_class__
class _Call(Generic[T]):
    """One API request, and which field of the answer is the result."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    #: The answer's field that holds the result; None: the whole body.
    pick: str | None = None
    #: Extra seconds to allow for the answer (a long poll waits on purpose).
    wait_s: float = 0.0

    def result(self, body: Any) -> T:
        return cast(T, body if self.pick is None or body is None else body[self.pick])


def _segment(value: str) -> str:
    """``value`` quoted as one URL path segment (names may hold spaces, '?', '#')."""
    return quote(value, safe="")


def _send(to: str, text: str, idempotency_key: str | None) -> _Call[Message]:
    body = {"to": to, "text": text}
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    return _Call("POST", "/v1/messages", json=body)


def _add_contact(invite_or_peer_id: str, name: str | None) -> _Call[AddedContact]:
    key = "invite" if invite_or_peer_id.strip().lower().startswith("p2pdm:") else "peer_id"
    body: dict[str, Any] = {key: invite_or_peer_id.strip()}
    if name is not None:
        body["name"] = name
    return _Call("POST", "/v1/contacts", json=body)


def _messages(who: str, limit: int | None, before: int | None) -> _Call[MessagePage]:
    params = {k: v for k, v in (("limit", limit), ("before", before)) if v is not None}
    return _Call("GET", f"/v1/conversations/{_segment(who)}/messages", params=params)


def _poll(
    since: int, timeout_s: int, limit: int | None, types: Iterable[str] | None
) -> _Call[EventPage]:
    params: dict[str, Any] = {"since": since, "timeout": timeout_s}
    if limit is not None:
        params["limit"] = limit
    if types is not None:
        params["types"] = ",".join(types)
    return _Call("GET", "/v1/events/poll", params=params, wait_s=timeout_s)


def _create_token(scope: str, contacts: Iterable[str], name: str | None) -> _Call[dict[str, Any]]:
    body: dict[str, Any] = {"scope": scope, "contacts": list(contacts)}
    if name is not None:
        body["name"] = name
    return _Call("POST", "/v1/tokens", json=body)


class _Base:
    """What both clients share: the address, the token, and reading answers."""

    def __init__(
        self, host: str, port: int, token: str, home: Path | None, timeout_s: float
    ) -> None:
        self.address = format_api_addr(host, port)
        self.home = home
        self._timeout_s = timeout_s
        self._options: dict[str, Any] = {
            "base_url": f"http://{self.address}",
            "headers": {"Authorization": f"Bearer {token}", "Accept": "application/json"},
            "timeout": timeout_s,
            "trust_env": False,  # never send the token through an HTTP proxy
        }

    def _request(self, call: _Call[Any]) -> dict[str, Any]:
        """The arguments of httpx's ``request`` for ``call``."""
        return {
            "method": call.method,
            "url": call.path,
            "json": call.json,
            "params": call.params,
            "timeout": self._timeout_s + call.wait_s,
        }

    @classmethod
    def for_home(
        cls, home: Home, *, token: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> Self:
        """A client for the node running on ``home`` (with ``token``, else the owner's).

        Raises :class:`NodeNotRunning` if no token is given and the home has
        no API token file.
        """
        if token is None:
            if not home.api_token_path.is_file():
                raise _not_running(home.path)
            token = home.api_token()
        host, port = read_api_addr(home)
        return cls(host, port, token, home=home.path, timeout_s=timeout_s)

    def _transport_error(self, exc: httpx.HTTPError) -> P2PDMError:
        if isinstance(exc, httpx.ConnectError):
            return _not_running(self.home)
        if isinstance(exc, httpx.TimeoutException):
            return APIError(0, "timeout", f"the node at {self.address} did not answer in time")
        return APIError(0, "transport", f"the node at {self.address} failed: {exc}")

    def _answer(self, call: _Call[T], response: httpx.Response) -> T:
        if not response.is_success:
            raise self._error(response)
        if response.status_code == 204:
            return call.result(None)
        try:
            body = response.json()
        except ValueError:
            raise APIError(
                response.status_code, "bad_response", f"{self.address} did not answer in JSON"
            ) from None
        return call.result(body)

    def _error(self, response: httpx.Response) -> APIError:
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", f"HTTP {response.status_code} from {self.address}"
        if response.status_code == 401:
            token = f"{self.home}/api_token" if self.home else "its token"
            message = f"the node at {self.address} did not accept {token}: {message}"
        return APIError(response.status_code, code, message)


def _not_running(home: Path | None) -> NodeNotRunning:
    where = f" for {home}" if home is not None else ""
    start = hints.command(home, "run")
    return NodeNotRunning(f"no p2pdm node is running{where}; start one with `{start}`")


class _Cursor:
    """The bookkeeping of ``events()``, without I/O: pages in, events out, one at a time.

    ``cursor`` is the id of the last event handed out (or, once a page is
    used up, the page's cursor), so saving it never skips an event.
    """

    def __init__(self, since: int) -> None:
        self.cursor = since
        self.gaps = 0
        self._pending: deque[Event] = deque()
        self._page_cursor = since

    def feed(self, page: EventPage) -> None:
        self._pending.extend(page["events"])
        self._page_cursor = page["cursor"]
        self.gaps += int(page["gap"])
        if not self._pending:
            self.cursor = self._page_cursor

    def pop(self) -> Event | None:
        if not self._pending:
            return None
        event = self._pending.popleft()
        self.cursor = event["id"] if self._pending else self._page_cursor
        return event


def _retry_delays() -> Iterator[float]:
    delay = RETRY_MIN_S
    while True:
        yield delay
        delay = min(delay * 2, RETRY_MAX_S)


# --- the async client ------------------------------------------------------------


class AsyncClient(_Base):
    """Async calls on one node's local API (trio or asyncio); raises NodeNotRunning or APIError."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        *,
        home: Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(host, port, token, home, timeout_s)
        self._http = httpx.AsyncClient(transport=transport, **self._options)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def call(self, call: _Call[T]) -> T:
        """Send one prepared call; returns its result."""
        try:
            response = await self._http.request(**self._request(call))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._answer(call, response)

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Any API call; returns the decoded JSON body (None for 204)."""
        return await self.call(_Call[Any](method, path, json, params or {}))

    async def node(self) -> dict[str, Any]:
        return await self.call(_Call[dict[str, Any]]("GET", "/v1/node"))

    async def contacts(self) -> list[Contact]:
        return await self.call(_Call[list[Contact]]("GET", "/v1/contacts", pick="contacts"))

    async def add_contact(self, invite_or_peer_id: str, name: str | None = None) -> AddedContact:
        """Add a contact from a ``p2pdm:`` invite, or else a PeerID."""
        return await self.call(_add_contact(invite_or_peer_id, name))

    async def delete_contact(self, peer_id: str) -> None:
        await self.call(_Call[None]("DELETE", f"/v1/contacts/{_segment(peer_id)}"))

    async def send(self, to: str, text: str, *, idempotency_key: str | None = None) -> Message:
        """Queue a text message; with ``idempotency_key``, a retry never sends twice."""
        return await self.call(_send(to, text, idempotency_key))

    async def message(self, message_id: str) -> dict[str, Any]:
        return await self.call(_Call[dict[str, Any]]("GET", f"/v1/messages/{_segment(message_id)}"))

    async def conversations(self) -> list[Conversation]:
        return await self.call(
            _Call[list[Conversation]]("GET", "/v1/conversations", pick="conversations")
        )

    async def messages(
        self, who: str, limit: int | None = None, before: int | None = None
    ) -> MessagePage:
        """A page of a conversation, newest first."""
        return await self.call(_messages(who, limit, before))

    async def mark_read(self, who: str) -> list[str]:
        """Mark a conversation read (sends read receipts if on); returns the ids marked."""
        return await self.call(
            _Call[list[str]]("POST", f"/v1/conversations/{_segment(who)}/read", pick="read")
        )

    async def mark_message_read(self, message_id: str) -> Message:
        return await self.call(_Call[Message]("POST", f"/v1/messages/{_segment(message_id)}/read"))

    async def settings(self) -> dict[str, Any]:
        return await self.call(_Call[dict[str, Any]]("GET", "/v1/settings"))

    async def update_settings(self, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.call(_Call[dict[str, Any]]("PATCH", "/v1/settings", json=patch))

    async def poll_events(
        self,
        since: int = 0,
        timeout_s: int = 0,
        limit: int | None = None,
        types: Iterable[str] | None = None,
    ) -> EventPage:
        """One long poll: events after ``since``, waiting up to ``timeout_s`` for the first."""
        return await self.call(_poll(since, timeout_s, limit, types))

    def events(self, since: int = 0, types: Iterable[str] | None = None) -> EventStream:
        """Every event after ``since``, forever (see :class:`EventStream`)."""
        return EventStream(self, since, types)

    async def create_token(
        self, scope: str, contacts: Iterable[str] = (), name: str | None = None
    ) -> dict[str, Any]:
        """Make a scoped token (admin tokens only); the answer's ``token`` is the secret."""
        return await self.call(_create_token(scope, contacts, name))

    async def tokens(self) -> list[dict[str, Any]]:
        return await self.call(_Call[list[dict[str, Any]]]("GET", "/v1/tokens", pick="tokens"))

    async def revoke_token(self, name: str) -> None:
        await self.call(_Call[None]("DELETE", f"/v1/tokens/{_segment(name)}"))


class EventStream:
    """``async for event in client.events(since)``: long polls, resumed from ``cursor``.

    Waits and retries while the node is down or busy (:attr:`APIError.transient`);
    any other refusal (a revoked token, a bad type) is raised. ``gaps`` counts
    the times the node said events were dropped before they could be read.
    """

    def __init__(self, client: AsyncClient, since: int, types: Iterable[str] | None) -> None:
        self._client = client
        self._types = None if types is None else tuple(types)
        self._state = _Cursor(since)

    @property
    def cursor(self) -> int:
        return self._state.cursor

    @property
    def gaps(self) -> int:
        return self._state.gaps

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        delays = _retry_delays()
        while (event := self._state.pop()) is None:
            try:
                page = await self._client.poll_events(
                    self._state.cursor, EVENTS_POLL_S, types=self._types
                )
            except (NodeNotRunning, APIError) as exc:
                if isinstance(exc, APIError) and not exc.transient:
                    raise
                await anyio.sleep(next(delays))
                continue
            delays = _retry_delays()
            self._state.feed(page)
        return event


# --- the sync client ---------------------------------------------------------------


class Client(_Base):
    """Blocking calls on one node's local API; raises NodeNotRunning or APIError."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        *,
        home: Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(host, port, token, home, timeout_s)
        self._http = httpx.Client(transport=transport, **self._options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(self, call: _Call[T]) -> T:
        """Send one prepared call; returns its result."""
        try:
            response = self._http.request(**self._request(call))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._answer(call, response)

    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Any API call; returns the decoded JSON body (None for 204)."""
        return self.call(_Call[Any](method, path, json, params or {}))

    def node(self) -> dict[str, Any]:
        return self.call(_Call[dict[str, Any]]("GET", "/v1/node"))

    def contacts(self) -> list[Contact]:
        return self.call(_Call[list[Contact]]("GET", "/v1/contacts", pick="contacts"))

    def add_contact(self, invite_or_peer_id: str, name: str | None = None) -> AddedContact:
        """Add a contact from a ``p2pdm:`` invite, or else a PeerID."""
        return self.call(_add_contact(invite_or_peer_id, name))

    def delete_contact(self, peer_id: str) -> None:
        self.call(_Call[None]("DELETE", f"/v1/contacts/{_segment(peer_id)}"))

    def send(self, to: str, text: str, *, idempotency_key: str | None = None) -> Message:
        """Queue a text message; with ``idempotency_key``, a retry never sends twice."""
        return self.call(_send(to, text, idempotency_key))

    def message(self, message_id: str) -> dict[str, Any]:
        return self.call(_Call[dict[str, Any]]("GET", f"/v1/messages/{_segment(message_id)}"))

    def conversations(self) -> list[Conversation]:
        return self.call(
            _Call[list[Conversation]]("GET", "/v1/conversations", pick="conversations")
        )

    def messages(
        self, who: str, limit: int | None = None, before: int | None = None
    ) -> MessagePage:
        """A page of a conversation, newest first."""
        return self.call(_messages(who, limit, before))

    def mark_read(self, who: str) -> list[str]:
        """Mark a conversation read (sends read receipts if on); returns the ids marked."""
        return self.call(
            _Call[list[str]]("POST", f"/v1/conversations/{_segment(who)}/read", pick="read")
        )

    def mark_message_read(self, message_id: str) -> Message:
        return self.call(_Call[Message]("POST", f"/v1/messages/{_segment(message_id)}/read"))

    def settings(self) -> dict[str, Any]:
        return self.call(_Call[dict[str, Any]]("GET", "/v1/settings"))

    def update_settings(self, patch: dict[str, Any]) -> dict[str, Any]:
        return self.call(_Call[dict[str, Any]]("PATCH", "/v1/settings", json=patch))

    def poll_events(
        self,
        since: int = 0,
        timeout_s: int = 0,
        limit: int | None = None,
        types: Iterable[str] | None = None,
    ) -> EventPage:
        """One long poll: events after ``since``, waiting up to ``timeout_s`` for the first."""
        return self.call(_poll(since, timeout_s, limit, types))

    def events(self, since: int = 0, types: Iterable[str] | None = None) -> Iterator[Event]:
        """Every event after ``since``, forever; retries while the node is down or busy.

        A generator: its cursor is the id of the last event it gave you.
        """
        state = _Cursor(since)
        kinds = None if types is None else tuple(types)
        delays = _retry_delays()
        while True:
            event = state.pop()
            if event is not None:
                yield event
                continue
            try:
                state.feed(self.poll_events(state.cursor, EVENTS_POLL_S, types=kinds))
            except (NodeNotRunning, APIError) as exc:
                if isinstance(exc, APIError) and not exc.transient:
                    raise
                time.sleep(next(delays))
                continue
            delays = _retry_delays()

    def create_token(
        self, scope: str, contacts: Iterable[str] = (), name: str | None = None
    ) -> dict[str, Any]:
        """Make a scoped token (admin tokens only); the answer's ``token`` is the secret."""
        return self.call(_create_token(scope, contacts, name))

    def tokens(self) -> list[dict[str, Any]]:
        return self.call(_Call[list[dict[str, Any]]]("GET", "/v1/tokens", pick="tokens"))

    def revoke_token(self, name: str) -> None:
        self.call(_Call[None]("DELETE", f"/v1/tokens/{_segment(name)}"))
