"""How a live location looks in API answers (api/handlers_location.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from p2pdm.api.schema import Schema, obj
from p2pdm.core.kinds.location import E7
from p2pdm.node.live_location import LiveShare

if TYPE_CHECKING:
    from p2pdm.node.node import Node

__all__ = ["LIVE_LOCATION", "live_location_json", "live_locations_of"]


def live_location_json(share: LiveShare) -> dict[str, Any]:
    return {
        "peer": str(share.peer),
        "mine": share.mine,
        "lat": share.lat_e7 / E7,
        "lon": share.lon_e7 / E7,
        "accuracy_m": share.accuracy_m,
        "until_ms": share.until_ms,
        "updated_at_ms": share.updated_ms,
    }


def live_locations_of(node: Node, conversation_id: bytes) -> list[dict[str, Any]]:
    """The live locations shown in a conversation now (own first)."""
    return [
        live_location_json(s) for s in node.live_locations.active(conversation_id, node.now_ms())
    ]


LIVE_LOCATION: Final[Schema] = obj(
    {
        "peer": {"type": "string", "description": "who shares it (your own PeerID if mine)"},
        "mine": {"type": "boolean", "description": "your own share (you can stop it)"},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "accuracy_m": {"type": ["integer", "null"], "minimum": 0},
        "until_ms": {"type": "integer", "description": "when the share ends (unix ms)"},
        "updated_at_ms": {"type": "integer", "description": "when this position came"},
    }
)
