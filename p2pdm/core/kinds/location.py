"""The ``location`` kind: a place on the map (docs/protocol.md §17.3).

Coordinates travel as integers in units of 1e-7 degree (about a centimetre;
OpenStreetMap's unit), so the signed bytes are exact and need no floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.core.kinds.timer import decode_message_timer, encode_message_timer
from p2pdm.limits import MAX_EXT_BYTES, MAX_LOCATION_LABEL_BYTES

__all__ = ["E7", "MAX_ACCURACY_M", "SPEC", "LocationBody"]

#: Units per degree on the wire.
E7: Final = 10_000_000
#: Largest accuracy radius: a country; anything vaguer is no location.
MAX_ACCURACY_M: Final = 1_000_000
_MAX_BODY_BYTES: Final = MAX_LOCATION_LABEL_BYTES + MAX_EXT_BYTES + 128


@dataclass(frozen=True, slots=True)
class LocationBody:
    lat_e7: int
    lon_e7: int
    accuracy_m: int | None = None
    label: str | None = None
    ext: dict[str, Any] | None = None
    #: Disappearing-message timer in seconds (0: the message stays), as for a
    #: text (docs/protocol.md §6.7): its files or place go with it.
    timer_s: int = 0
    kind: Literal["location"] = field(default="location", init=False)

    @property
    def lat(self) -> float:
        return self.lat_e7 / E7

    @property
    def lon(self) -> float:
        return self.lon_e7 / E7


def decode(fields: Fields) -> LocationBody:
    """Raises SchemaError for coordinates off the globe, a bad accuracy or label."""
    lat = fields.integer("lat", -90 * E7, 90 * E7)
    lon = fields.integer("lon", -180 * E7, 180 * E7)
    accuracy = fields.integer("acc", 0, MAX_ACCURACY_M) if fields.has("acc") else None
    label = fields.text("label", MAX_LOCATION_LABEL_BYTES) if fields.has("label") else None
    timer_s = decode_message_timer(fields)
    ext = decode_ext(fields)
    fields.done()
    return LocationBody(lat, lon, accuracy, label, ext, timer_s)


def encode(body: LocationBody) -> dict[str, Any]:
    out: dict[str, Any] = {"lat": body.lat_e7, "lon": body.lon_e7}
    if body.accuracy_m is not None:
        out["acc"] = body.accuracy_m
    if body.label is not None:
        out["label"] = body.label
    return encode_ext(encode_message_timer(out, body.timer_s), body.ext)


SPEC: Final = KindSpec(
    name="location",
    body_type=LocationBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=True,
    targets=False,
    from_strangers=True,
    stored=True,
)
