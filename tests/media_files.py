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


def ogg_page(granule: int, payload: bytes, seq: int) -> bytes:
    """One Ogg page (CRC left zero: readers of voice notes here do not check it)."""
    table = bytes([255] * (len(payload) // 255) + [len(payload) % 255])
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, 0, granule, 1, seq, 0, len(table))
    return header + table + payload


def opus_voice_note(seconds: int, loud_from: int) -> bytes:
    """An Ogg Opus file's structure: head, tags, one page per second of audio
    (payloads stand in for Opus packets: louder seconds take more bytes)."""
    head = (
        b"OpusHead" + bytes([1, 1]) + struct.pack("<H", 312) + struct.pack("<I", 48_000) + bytes(3)
    )
    pages = [ogg_page(0, head, 0), ogg_page(0, b"OpusTags" + bytes(8), 1)]
    for second in range(seconds):
        payload = bytes(2000 if second >= loud_from else 200)
        pages.append(ogg_page(312 + (second + 1) * 48_000, payload, second + 2))
    return b"".join(pages)
