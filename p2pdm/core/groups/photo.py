"""What a group photo is, as a member shows it (docs/protocol.md §19.1).

How this works: a ``photo`` change carries the picture's bytes inline (at
most MAX_GROUP_PHOTO_BYTES), so every member has it with the log. Any bytes
are a valid change (the fold must not depend on decoding pictures); a
member *shows* a photo only when its first bytes say WebP or JPEG, the two
types the reference node makes and a browser renders without running
anything. :func:`photo_type` says which; :func:`photo_tag` is a short hash
that names one photo (for caching and for telling changes apart).
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["PHOTO_TAG_BYTES", "PHOTO_TYPES", "photo_tag", "photo_type"]

#: The types a group photo is shown as (others are kept in the log, not shown).
PHOTO_TYPES: Final = ("image/webp", "image/jpeg")
#: Bytes of the hash that names a photo: enough to tell a group's photos apart.
PHOTO_TAG_BYTES: Final = 8


def photo_type(data: bytes) -> str | None:
    """The media type of a group photo by its first bytes; None when it is no
    WebP or JPEG (then it is not shown)."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    return None


def photo_tag(data: bytes) -> str:
    """A short hex hash naming the photo ``data``."""
    return hashlib.blake2b(data, digest_size=PHOTO_TAG_BYTES).hexdigest()
