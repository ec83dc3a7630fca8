"""The blocking client, for scripts and the CLI.

It speaks HTTP through :mod:`p2pdm.client._wire` (the standard library's
``http.client``, keep-alive), so a CLI command never imports httpx, its
connection pool, anyio or trio. Given an httpx transport (tests pass
``httpx.MockTransport``) it sends through httpx instead: :class:`_HttpxWire`
offers the same two calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from p2pdm.client._events import EVENTS_POLL_S, _Cursor, _retry_delays, _worth_retrying
from p2pdm.client._http import DEFAULT_TIMEOUT_S, APIError, _BaseClient, _Call
from p2pdm.client._media import MediaMethods
from p2pdm.client._operations import Operations
from p2pdm.client._records import Event
from p2pdm.client._wire import Pool, TransportError, encode_json, target
from p2pdm.errors import NodeNotRunning

if TYPE_CHECKING:
    import httpx

__all__ = ["Client"]

T = TypeVar("T")


class _Body(Protocol):
    """An answer being read: ``_wire.Streamed`` or :class:`_HttpxStreamed`."""

    @property
    def status_code(self) -> int: ...
    @property
    def is_success(self) -> bool: ...
    @property
    def headers(self) -> Any: ...
    def json(self) -> Any: ...
    def read(self) -> bytes: ...
    def iter_bytes(self, size: int) -> Iterator[bytes]: ...


class _Answer(Protocol):
    """A whole answer: ``_wire.Reply`` or ``httpx.Response``."""

    @property
    def status_code(self) -> int: ...
    @property
    def is_success(self) -> bool: ...
    @property
    def content(self) -> bytes: ...
    def json(self) -> Any: ...


class _Sender(Protocol):
    """What the blocking client sends through: a ``_wire.Pool`` or an :class:`_HttpxWire`."""

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Answer: ...
    def stream(self, method: str, url: str, *, timeout: float) -> AbstractContextManager[_Body]: ...
    def close(self) -> None: ...


class _HttpxStreamed:
    """An httpx answer being read, its failures as :class:`TransportError`."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = response.headers

    @property
    def is_success(self) -> bool:
        return self._response.is_success

    def json(self) -> Any:
        return self._response.json()

    def read(self) -> bytes:
        import httpx

        from p2pdm.client._async import httpx_failure

        try:
            return self._response.read()
        except httpx.HTTPError as exc:
            raise httpx_failure(exc) from None

    def iter_bytes(self, size: int) -> Iterator[bytes]:
        import httpx

        from p2pdm.client._async import httpx_failure

        try:
            yield from self._response.iter_bytes(size)
        except httpx.HTTPError as exc:
            raise httpx_failure(exc) from None


class _HttpxWire:
    """The blocking client's two calls on an httpx transport."""

    def __init__(self, transport: httpx.BaseTransport, options: dict[str, Any]) -> None:
        import httpx

        self._client = httpx.Client(transport=transport, **options)

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Answer:
        import httpx

        from p2pdm.client._async import httpx_failure

        try:
            return self._client.request(method, url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise httpx_failure(exc) from None

    @contextmanager
    def stream(self, method: str, url: str, *, timeout: float) -> Iterator[_Body]:
        import httpx

        from p2pdm.client._async import httpx_failure

        try:
            with self._client.stream(method, url, timeout=timeout) as response:
                yield _HttpxStreamed(response)
        except httpx.HTTPError as exc:
            raise httpx_failure(exc) from None

    def close(self) -> None:
        self._client.close()


class Client(_BaseClient, Operations, MediaMethods):
    """Blocking calls on one node's local API; raises NodeNotRunning or APIError."""

    #: The methods made from :class:`Operations` return their result.
    _awaits: ClassVar[bool] = False

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
        self._http: _Sender
        if transport is None:
            self._http = Pool(host, port, self._headers)
        else:
            self._http = _HttpxWire(transport, self._httpx_options())

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
        body = None if call.json is None else encode_json(call.json)
        try:
            response = self._http.request(
                call.method,
                target(call.path, call.params),
                timeout=self._timeout_s + call.wait_s,
                body=body,
                headers=None if body is None else {"Content-Type": "application/json"},
            )
        except TransportError as exc:
            raise self._transport_error(exc) from None
        return self._answer(call, response)

    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Any API call; returns the decoded JSON body (None for 204)."""
        return self.call(_Call[Any](method, path, json, params or {}))

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
                if not _worth_retrying(exc):
                    raise
                time.sleep(next(delays))
                continue
            delays = _retry_delays()
