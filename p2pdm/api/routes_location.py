"""The route rows of live location (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers_location import (
    LIVE_LOCATION_SCHEMAS,
    get_live_location,
    share_live,
    stop_live,
)
from p2pdm.api.schema import Doc, Route, path_param, ref
from p2pdm.core.model import TokenScope

__all__ = ["LOCATION_ROUTES"]

_PATH: Final = "/v1/conversations/{conversation}/live-location"
_CONVERSATION: Final = path_param(
    "conversation",
    {"type": "string", "minLength": 1},
    "the conversation id (32 hex characters; a group's id for a group); or, for the "
    "one-to-one conversation, the contact's name or PeerID",
)
_NOT_FOUND: Final = {"404": ""}  # the shared wording

LOCATION_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        _PATH,
        "POST",
        share_live,
        TokenScope.SEND,
        Doc(
            "shareLiveLocation",
            "Start sharing your live location for 15 minutes, 1 hour or 8 hours "
            "(duration_s), or move a running share: each update goes at once over an open "
            "connection to the contact (in a group: to each member connected now), never "
            "queued or stored, at most one every few seconds; a start dials a contact not "
            "connected yet (a few seconds at most)",
            ("200", ref("LiveLocationResult"), "the share, and whether the update went now"),
            {**_NOT_FOUND, "413": "", "415": "", "422": "a group you are not in"},
            parameters=(_CONVERSATION,),
            body=ref("LiveLocationUpdate"),
            schemas=LIVE_LOCATION_SCHEMAS,
        ),
    ),
    Route(
        _PATH,
        "DELETE",
        stop_live,
        TokenScope.SEND,
        Doc(
            "stopLiveLocation",
            "Stop sharing your live location in the conversation; the contact (a group's "
            "members) is told if connected (else its copy ends with the period)",
            ("200", ref("LiveLocationStopped"), "whether a share was running"),
            {**_NOT_FOUND, "422": "a group you are not in"},
            parameters=(_CONVERSATION,),
        ),
    ),
    Route(
        _PATH,
        "GET",
        get_live_location,
        TokenScope.READ,
        Doc(
            "getLiveLocations",
            "The live locations shown in the conversation now (yours and the contact's, or "
            "each group member's)",
            ("200", ref("LiveLocationList"), "the running shares (maybe none)"),
            _NOT_FOUND,
            parameters=(_CONVERSATION,),
        ),
    ),
)
