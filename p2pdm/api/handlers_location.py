"""The local API's handlers of live location: start, move, stop and read a
share in a conversation (docs/api.md, live location).

How this works: each handler checks the token may see the conversation,
reads its body, and calls :mod:`p2pdm.node.live_location`; a share lives in
the node's memory only, and :func:`live_location_json` shows it.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.handlers import _visible_conversation
from p2pdm.api.handlers_media import location_fields
from p2pdm.api.payload import JSONObject
from p2pdm.api.schema import Schema, obj, ref
from p2pdm.api.views_location import LIVE_LOCATION, live_location_json, live_locations_of
from p2pdm.limits import LIVE_LOCATION_PERIODS_S
from p2pdm.node.live_location import recipients_of, share_live_location, stop_live_location
from p2pdm.node.media_ops import location_body
from p2pdm.node.node import Node

__all__ = [
    "LIVE_LOCATION_SCHEMAS",
    "get_live_location",
    "share_live",
    "stop_live",
]


#: The fields of a live location update (no label: it moves).
_LIVE_FIELDS: Final = frozenset({"lat", "lon", "accuracy_m"})


def _recipients(request: Request, node: Node) -> tuple[bytes, list[Any]]:
    """The conversation and who its share goes to: the contact, or a group's
    other members (GroupRefused, 422, in a group you are not in)."""
    conversation_id = _visible_conversation(request, node)
    _, peer = node.find_conversation(str(request.path_params["conversation"]))
    return conversation_id, recipients_of(node, conversation_id, peer)


async def share_live(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    fields = body.rest()
    duration_s = body.opt_int("duration_s")
    fields.pop("duration_s", None)
    conversation_id, recipients = _recipients(request, node)
    lat, lon, accuracy, _ = location_fields(fields, "", _LIVE_FIELDS)
    where = location_body(lat, lon, accuracy)
    share, why_not = await share_live_location(
        node,
        conversation_id,
        recipients,
        where.lat_e7,
        where.lon_e7,
        where.accuracy_m,
        duration_s,
    )
    return JSONResponse(
        {"live_location": live_location_json(share), "sent": why_not is None, "reason": why_not}
    )


async def stop_live(request: Request, node: Node) -> Response:
    conversation_id, recipients = _recipients(request, node)
    stopped = await stop_live_location(node, conversation_id, recipients)
    return JSONResponse({"stopped": stopped})


async def get_live_location(request: Request, node: Node) -> Response:
    conversation_id = _visible_conversation(request, node)
    return JSONResponse({"live_locations": live_locations_of(node, conversation_id)})


LIVE_LOCATION_UPDATE: Final[Schema] = obj(
    {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "accuracy_m": {"type": "number", "minimum": 0, "maximum": 1_000_000},
        "duration_s": {
            "type": "integer",
            "enum": list(LIVE_LOCATION_PERIODS_S),
            "description": "start (or restart) a share of this long from now; leave it "
            "out to move a share that runs",
        },
    },
    optional=("accuracy_m", "duration_s"),
)
LIVE_LOCATION_RESULT: Final[Schema] = obj(
    {
        "live_location": ref("LiveLocation"),
        "sent": {"type": "boolean", "description": "the peer took the update now"},
        "reason": {
            "type": ["string", "null"],
            "description": "why no update went now (not a contact, not connected, sent "
            "less than the interval ago); null when sent. It is never queued",
        },
    }
)
LIVE_LOCATION_LIST: Final[Schema] = obj(
    {"live_locations": {"type": "array", "items": ref("LiveLocation")}}
)
LIVE_LOCATION_STOPPED: Final[Schema] = obj(
    {"stopped": {"type": "boolean", "description": "a share of yours was running and stopped"}}
)
LIVE_LOCATION_SCHEMAS: Final[dict[str, Schema]] = {
    "LiveLocation": LIVE_LOCATION,
    "LiveLocationUpdate": LIVE_LOCATION_UPDATE,
    "LiveLocationResult": LIVE_LOCATION_RESULT,
    "LiveLocationList": LIVE_LOCATION_LIST,
    "LiveLocationStopped": LIVE_LOCATION_STOPPED,
}
