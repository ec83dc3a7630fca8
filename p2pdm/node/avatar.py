"""Making a profile's avatar from any picture: small, WebP, with no metadata.

How this works: :func:`make_avatar` refuses a file over MAX_AVATAR_INPUT_BYTES,
opens it with Pillow restricted to a few common formats, reads the canvas size
from the header and refuses more than MAX_AVATAR_INPUT_PIXELS *before*
decoding (a decompression bomb is a few kilobytes claiming a huge canvas),
turns it upright (EXIF orientation), scales it to fit AVATAR_SIDE pixels and
copies the pixels alone into a fresh image, so no EXIF (GPS, camera), XMP,
ICC or comment survives. It is then encoded as WebP at falling qualities and
sizes until it fits MAX_AVATAR_BYTES.

:func:`make_group_photo` is the same with a group photo's bounds: the
picture cropped to a centred square first (a group's avatar is a circle or
square in every list), the result at most MAX_GROUP_PHOTO_BYTES, and errors
raised as MediaRefused (the picture was an upload, not a profile field).

Pillow is imported on the first picture, not with the node.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Final

from p2pdm.errors import MediaRefused, P2PDMError, ProfileRefused
from p2pdm.limits import (
    MAX_AVATAR_BYTES,
    MAX_AVATAR_INPUT_BYTES,
    MAX_AVATAR_INPUT_PIXELS,
    MAX_GROUP_PHOTO_BYTES,
    MAX_GROUP_PHOTO_INPUT_BYTES,
)

__all__ = ["AVATAR_SIDE", "make_avatar", "make_group_photo"]

#: The longest side of an avatar, in pixels: sharp in a list and a header,
#: and small enough that WebP fits it in MAX_AVATAR_BYTES.
AVATAR_SIDE: Final = 256
#: The formats a picture may be in: what phones and cameras write and browsers
#: show. Fewer decoders, fewer ways in for a hostile file.
INPUT_FORMATS: Final = ("JPEG", "PNG", "WEBP", "GIF")
#: WebP qualities tried in turn, then the same at half the size.
_QUALITIES: Final = (80, 65, 50, 35)
_MIN_SIDE: Final = 32

if TYPE_CHECKING:
    from PIL import Image


def make_avatar(
    data: bytes,
    *,
    max_input_bytes: int = MAX_AVATAR_INPUT_BYTES,
    max_pixels: int = MAX_AVATAR_INPUT_PIXELS,
    max_bytes: int = MAX_AVATAR_BYTES,
    square: bool = False,
    refused: type[P2PDMError] = ProfileRefused,
) -> bytes:
    """A WebP avatar made from the picture ``data``; raises ``refused``
    (ProfileRefused) saying why.

    The caps are the node's for pictures from API clients; the CLI shrinks the
    user's own photo with larger ones before sending it. ``square`` crops the
    picture to its centred square first.
    """
    if len(data) > max_input_bytes:
        raise refused(
            f"the picture is {len(data)} bytes; at most {max_input_bytes} "
            "(the p2pdm CLI shrinks larger ones before sending)"
        )
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=INPUT_FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise refused(
                        f"the picture is {width} x {height} pixels; at most "
                        f"{max_pixels} pixels are decoded (a larger canvas "
                        "can be a decompression bomb)"
                    )
                image.draft("RGB", (AVATAR_SIDE, AVATAR_SIDE))  # JPEG: decode at a smaller scale
                upright = ImageOps.exif_transpose(image)
                pixels = upright.convert("RGBA")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise refused(f"the picture is refused as a decompression bomb: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise refused(
            f"the picture is not a readable {', '.join(INPUT_FORMATS)} image: {exc}"
        ) from None
    if square:
        edge = min(pixels.size)
        pixels = ImageOps.fit(pixels, (edge, edge), Image.Resampling.LANCZOS)
    side = AVATAR_SIDE
    while side >= _MIN_SIDE:
        encoded = _encode(pixels, side, max_bytes)
        if encoded is not None:
            return encoded
        side //= 2
    raise refused(f"the picture does not fit a picture of {max_bytes} bytes")


def make_group_photo(data: bytes) -> bytes:
    """A square WebP group photo (at most MAX_GROUP_PHOTO_BYTES, no metadata)
    made from the picture ``data``; raises MediaRefused saying why."""
    return make_avatar(
        data,
        max_input_bytes=MAX_GROUP_PHOTO_INPUT_BYTES,
        max_bytes=MAX_GROUP_PHOTO_BYTES,
        square=True,
        refused=MediaRefused,
    )


def _encode(pixels: Image.Image, side: int, max_bytes: int) -> bytes | None:
    """``pixels`` fitted in ``side`` pixels as metadata-free WebP, if some quality fits."""
    from PIL import Image

    scaled = pixels.copy()
    scaled.thumbnail((side, side), Image.Resampling.LANCZOS)
    # Only the pixels: a new image carries none of the original's info.
    flat = Image.new("RGB", scaled.size, (255, 255, 255))
    flat.paste(scaled, mask=scaled.getchannel("A"))
    for quality in _QUALITIES:
        out = io.BytesIO()
        flat.save(out, "WEBP", quality=quality, method=4, exif=b"", icc_profile=None)
        if out.tell() <= max_bytes:
            return out.getvalue()
    return None
