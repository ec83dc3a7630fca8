"""The blocking client, for scripts and the CLI's chat commands."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import httpx

from p2pdm.client._events import EVENTS_POLL_S, _Cursor, _retry_delays, _worth_retrying
from p2pdm.client._http import DEFAULT_TIMEOUT_S, APIError, _BaseClient, _Call
from p2pdm.client._media import MediaMethods
from p2pdm.client._operations import Operations
from p2pdm.client._records import Event
from p2pdm.errors import NodeNotRunning

__all__ = ["Client"]

T = TypeVar("T")


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
