"""Photos through Pillow: metadata stripped, orientation applied, bombs refused,
thumbnails made (docs/protocol.md §17.4).

How this works: :func:`prepare_image` reads an image's header first and
refuses one whose pixel count exceeds MAX_IMAGE_PIXELS before decoding any
pixel (a small PNG can claim gigapixels: a decompression bomb). A JPEG, PNG
or WebP is then turned upright by its EXIF orientation and, when metadata
is to be stripped (the default), encoded again without EXIF, GPS, XMP or
comments; other formats (GIF, HEIC without a codec) are sent as they are.
The sender makes a JPEG thumbnail of at most MAX_THUMBNAIL_BYTES; a
recipient checks a thumbnail with :func:`check_thumbnail` (same pixel cap)
before anything shows it.

Pillow is imported on the first image, not with the node: an idle node,
and one that never handles a photo, does not hold its 2 MiB of modules.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from p2pdm.errors import MediaRefused
from p2pdm.limits import MAX_THUMBNAIL_BYTES

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "IMAGE_TYPES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "PreparedImage",
    "check_thumbnail",
    "prepare_image",
    "shows_safely",
    "thumbnail_of",
]

#: Most pixels a photo may decode to: a 64-megapixel camera's full frame;
#: about 256 MiB of RGBA in memory, the most one send may cost.
MAX_IMAGE_PIXELS: Final = 64_000_000
#: Largest photo file read into memory to strip and resize; a bigger image
#: is refused as a photo (send it as a file of another type).
MAX_IMAGE_BYTES: Final = 50 << 20
#: Longest side of a thumbnail, in pixels, and the smallest tried.
THUMBNAIL_SIDE: Final = 160
MIN_THUMBNAIL_SIDE: Final = 48
#: Most pixels a thumbnail may claim on receipt (a 1024x1024 square).
MAX_THUMBNAIL_PIXELS: Final = 1 << 20

#: MIME types read as photos, and the Pillow format each is written back in.
IMAGE_TYPES: Final = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": None,  # kept as it is (animation)
    # What phones take: converted to JPEG on send (few browsers show HEIC).
    "image/heic": "JPEG",
    "image/heif": "JPEG",
}
#: Types read through pillow-heif, whose opener is registered on first use.
HEIF_TYPES: Final = frozenset({"image/heic", "image/heif"})


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF (pillow-heif), once, only when a HEIC photo comes."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


@dataclass(frozen=True, slots=True)
class PreparedImage:
    data: bytes
    width: int
    height: int
    thumbnail: bytes | None
    #: The type of ``data`` (a HEIC photo becomes a JPEG).
    mime: str = "image/jpeg"


def _open(data: bytes, max_pixels: int, what: str) -> Image.Image:
    """The image, header read and pixel count checked; raises MediaRefused."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaRefused(
            f"{what} claims more pixels than {max_pixels:,} (a decompression bomb)"
        ) from None
    except UnidentifiedImageError:
        raise MediaRefused(f"{what} is not an image this node can read") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaRefused(f"{what} does not decode: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise MediaRefused(
            f"{what} is {width}x{height} pixels, more than {max_pixels:,} "
            "(a decompression bomb, or a photo too large to show)"
        )
    return image


def _load(image: Image.Image, what: str) -> Image.Image:
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            return ImageOps.exif_transpose(image) or image
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MediaRefused(f"{what} does not decode: {exc}") from None
    except Image.DecompressionBombWarning:
        raise MediaRefused(f"{what} decompresses to too many pixels") from None


def thumbnail_of(image: Image.Image) -> bytes | None:
    side = THUMBNAIL_SIDE
    while side >= MIN_THUMBNAIL_SIDE:
        small = image.copy()
        small.thumbnail((side, side))
        small = small.convert("RGB")
        for quality in (70, 50, 30):
            out = io.BytesIO()
            small.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= MAX_THUMBNAIL_BYTES:
                return out.getvalue()
        side //= 2
    return None


def prepare_image(data: bytes, mime: str, *, strip: bool = True) -> PreparedImage:
    """The photo to send, its size on screen and thumbnail; raises MediaRefused
    for a file over MAX_IMAGE_BYTES, a bomb, or bytes that do not decode."""
    if len(data) > MAX_IMAGE_BYTES:
        raise MediaRefused(f"a photo is at most {MAX_IMAGE_BYTES >> 20} MiB")
    converted = mime in HEIF_TYPES
    if converted:
        _register_heif()
    image = _open(data, MAX_IMAGE_PIXELS, "the photo")
    fmt = IMAGE_TYPES.get(mime)
    upright = _load(image, "the photo")
    out_data = data
    if fmt is not None and (strip or converted or upright is not image):
        out = io.BytesIO()
        keep = upright
        if fmt == "JPEG" and keep.mode not in ("RGB", "L", "CMYK"):
            keep = keep.convert("RGB")
        options: dict[str, object] = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
        if not strip and "exif" in image.info:
            exif = image.getexif()
            exif.pop(0x0112, None)  # the orientation is applied now
            options["exif"] = exif.tobytes()
        keep.save(out, fmt, **options)
        out_data = out.getvalue()
    width, height = upright.size
    sent_as = "image/jpeg" if converted else mime
    return PreparedImage(out_data, width, height, thumbnail_of(upright), sent_as)


def check_thumbnail(data: bytes) -> bool:
    """True if a received thumbnail decodes within MAX_THUMBNAIL_PIXELS."""
    try:
        image = _open(data, MAX_THUMBNAIL_PIXELS, "the thumbnail")
        _load(image, "the thumbnail")
    except MediaRefused:
        return False
    return True


def shows_safely(head: bytes) -> bool:
    """True if ``head`` (a file's first bytes) is an image whose header claims
    at most MAX_IMAGE_PIXELS: safe to hand a browser inline. A bomb, or
    bytes that do not read as an image, is served as an attachment."""
    try:
        _open(head, MAX_IMAGE_PIXELS, "the image")
    except MediaRefused:
        return False
    return True
