"""The ``live_location`` kind: where the sender is now, while it shares its
location for a chosen period (docs/protocol.md §6.9).

Ephemeral like ``typing``: sent only over a dm stream to a peer already
connected, never queued, stored or deposited. An update carries the
position and the time (unix seconds) the share ends; a stop carries
``stop: true`` and no position. The receiver keeps the last position in
memory until ``until`` at the latest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.core.kinds.location import E7, MAX_ACCURACY_M
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_EXT_BYTES

__all__ = ["MAX_UNTIL_S", "SPEC", "LiveLocationBody"]

#: Latest ``until`` a decoder takes (the year 2286): a bound, not a policy;
#: the receiver checks it against its clock.
MAX_UNTIL_S: Final = 10**10
_MAX_BODY_BYTES: Final = MAX_EXT_BYTES + 96


@dataclass(frozen=True, slots=True)
class LiveLocationBody:
    #: When the share ends, unix seconds.
    until_s: int
    #: The position (None with ``stop``).
    lat_e7: int | None = None
    lon_e7: int | None = None
    accuracy_m: int | None = None
    #: The sharer stopped: the receiver forgets the position now.
    stop: bool = False
    ext: dict[str, Any] | None = None
    kind: Literal["live_location"] = field(default="live_location", init=False)


def decode(fields: Fields) -> LiveLocationBody:
    """Raises SchemaError for coordinates off the globe, a stop with a position,
    an update without one, or any other field."""
    until = fields.integer("until", 0, MAX_UNTIL_S)
    stop = fields.has("stop")  # present only as true
    has_position = fields.has("lat") or fields.has("lon") or fields.has("acc")
    if stop:
        if not fields.boolean("stop") or has_position:
            raise SchemaError(f"{fields.what}: a stop carries 'stop': true and no position")
        ext = decode_ext(fields)
        fields.done()
        return LiveLocationBody(until, stop=True, ext=ext)
    lat = fields.integer("lat", -90 * E7, 90 * E7)
    lon = fields.integer("lon", -180 * E7, 180 * E7)
    accuracy = fields.integer("acc", 0, MAX_ACCURACY_M) if fields.has("acc") else None
    ext = decode_ext(fields)
    fields.done()
    return LiveLocationBody(until, lat, lon, accuracy, ext=ext)


def encode(body: LiveLocationBody) -> dict[str, Any]:
    out: dict[str, Any] = {"until": body.until_s}
    if body.stop:
        out["stop"] = True
    else:
        out["lat"], out["lon"] = body.lat_e7, body.lon_e7
        if body.accuracy_m is not None:
            out["acc"] = body.accuracy_m
    return encode_ext(out, body.ext)


SPEC: Final = KindSpec(
    name="live_location",
    body_type=LiveLocationBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=False,
    targets=False,
    # Only contacts: a stranger's carries no request stamp and is refused.
    from_strangers=False,
    stored=False,
)
