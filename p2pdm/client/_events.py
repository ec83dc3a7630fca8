"""``events()``: every event after a cursor, forever, resumed where it stopped.

How this works: :class:`_Cursor` is the bookkeeping without I/O (pages in,
events out, one at a time); :class:`EventStream` (async) and
:meth:`Client.events <p2pdm.client.Client.events>` (sync) feed it long
polls. ``cursor`` is the id of the last event handed out (or, once a page is
used up, the page's cursor), so a bot that saves it and passes it back as
``since`` after a restart misses nothing. While the node is down or busy
they wait and retry, :data:`RETRY_MIN_S` doubling up to :data:`RETRY_MAX_S`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Final

from p2pdm.client._http import APIError
from p2pdm.client._records import Event, EventPage
from p2pdm.errors import NodeNotRunning

if TYPE_CHECKING:
    from p2pdm.client._async import AsyncClient

__all__ = ["EVENTS_POLL_S", "RETRY_MAX_S", "RETRY_MIN_S", "EventStream"]

#: Seconds one long poll of ``events()`` waits on the node (the API allows 50).
EVENTS_POLL_S: Final = 25
#: ``events()`` retries a node that is down or busy after this long, doubling
#: up to RETRY_MAX_S: a restarting node is picked up within seconds, and a
#: node that stays down costs one request every half minute.
RETRY_MIN_S: Final = 0.5
RETRY_MAX_S: Final = 30.0


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
        if not self._pending:
            self.cursor = self._page_cursor
        elif event["id"] is not None:  # an ephemeral event (typing) is not a cursor
            self.cursor = event["id"]
        return event


def _retry_delays() -> Iterator[float]:
    delay = RETRY_MIN_S
    while True:
        yield delay
        delay = min(delay * 2, RETRY_MAX_S)


def _worth_retrying(exc: NodeNotRunning | APIError) -> bool:
    """True if the node is down or busy; a refusal (a revoked token, a bad type) is not."""
    return not isinstance(exc, APIError) or exc.transient


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
                if not _worth_retrying(exc):
                    raise
                import anyio  # here: the blocking client, which shares this module, never needs it

                await anyio.sleep(next(delays))
                continue
            delays = _retry_delays()
            self._state.feed(page)
        return event
