"""The async client: httpx over anyio, so it runs under trio and asyncio alike."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import httpx

from p2pdm.client._events import EventStream
from p2pdm.client._http import DEFAULT_TIMEOUT_S, _BaseClient, _Call
from p2pdm.client._operations import Operations
from p2pdm.client._wire import TransportError

__all__ = ["AsyncClient", "httpx_failure"]

T = TypeVar("T")


def httpx_failure(exc: httpx.HTTPError) -> TransportError:
    """What httpx's failure means for the clients: the node unreachable, slow, or failing."""
    if isinstance(exc, httpx.ConnectError):
        return TransportError("unreachable", str(exc))
    if isinstance(exc, httpx.TimeoutException):
        return TransportError("timeout", str(exc))
    return TransportError("failed", str(exc))


class AsyncClient(_BaseClient, Operations):
    """Async calls on one node's local API (trio or asyncio); raises NodeNotRunning or APIError."""

    #: The methods made from :class:`Operations` are coroutine functions.
    _awaits: ClassVar[bool] = True

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
        self._http = httpx.AsyncClient(transport=transport, **self._httpx_options())

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
            raise self._transport_error(httpx_failure(exc)) from None
        return self._answer(call, response)

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Any API call; returns the decoded JSON body (None for 204)."""
        return await self.call(_Call[Any](method, path, json, params or {}))

    def events(self, since: int = 0, types: Iterable[str] | None = None) -> EventStream:
        """Every event after ``since``, forever (see :class:`EventStream`)."""
        return EventStream(self, since, types)
