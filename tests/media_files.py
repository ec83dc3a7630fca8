"""Files the media tests send: photos with GPS tags, decompression bombs."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

#: The EXIF tag of the GPS block, and of the orientation.
GPS_IFD = 0x8825
ORIENTATION = 0x0112


def photo_with_gps(width: int = 64, height: int = 32, orientation: int = 6) -> bytes:
    """A JPEG with a GPS position and an orientation tag (rotate 90 degrees to show)."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"  # Make
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def has_gps(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return bool(image.getexif().get_ifd(GPS_IFD)) or b"PhoneMaker" in data


def bomb_png(side: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes that claims ``side`` x ``side`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grey
    rows = zlib.compress(b"\x00" * 1024, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
