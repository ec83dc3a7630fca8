"""The route rows of the event stream and its long poll (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.events import (
    POLL_PARAMETERS,
    SSE_MEDIA_TYPE,
    STREAM_PARAMETERS,
    poll_events,
    stream_events,
)
from p2pdm.api.routes_common import READ
from p2pdm.api.schema import STRING, Doc, Route, ref

__all__ = ["EVENT_ROUTES"]


EVENT_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/events",
        "GET",
        stream_events,
        READ,
        Doc(
            "streamEvents",
            f"Events as Server-Sent Events (send 'Accept: {SSE_MEDIA_TYPE}': anything else "
            "is 406); the same path over WebSocket sends each event as a JSON text frame",
            (
                "200",
                STRING,
                "an endless text/event-stream: 'id', 'event' (the type) and "
                "'data' (the Event as JSON) per event; 'Last-Event-ID' resumes",
            ),
            {"406": f"the request's Accept header does not name {SSE_MEDIA_TYPE}", "503": ""},
            parameters=STREAM_PARAMETERS,
            ok_media_type=SSE_MEDIA_TYPE,
        ),
    ),
    Route(
        "/v1/events/poll",
        "GET",
        poll_events,
        READ,
        Doc(
            "pollEvents",
            "Events after 'since', oldest first; waits up to 'timeout' seconds for the first",
            ("200", ref("EventPage"), "the events (maybe none) and the next cursor"),
            {"503": ""},
            parameters=POLL_PARAMETERS,
        ),
    ),
)
