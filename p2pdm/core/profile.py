"""Profiles and handles: what a node may publish about its person, and how a handle is found.

How this works: a :class:`Profile` (display name, handle, bio, avatar) rides
in the node's signed DHT record (:mod:`p2pdm.core.records`), so only the key
that signs the record can say what its profile is. A handle is a *claim*,
not a name anyone owns: every node that has one provides the DHT key
:func:`handle_key` of its normalised handle, a lookup finds every claimant,
fetches and checks each one's record, and :func:`rank_claimants` orders what
remains for a person to choose from (docs/protocol.md §13).

Normalisation (:func:`normalise_handle`): surrounding blanks and one leading
``@`` are dropped, then Unicode NFKC, case folding and NFKC again
(``NFKC_Casefold`` as the Unicode standard defines it, near enough). What is
left must be 3 to 30 characters of ASCII ``[a-z0-9._]``; anything else is
refused, not mapped. So ``ALICE`` and ``alice`` in fullwidth forms
(U+FF41…) are ``alice``, while ``ALİCE`` (its capital I with dot above,
U+0130, folds to ``i`` and a combining dot U+0307) and ``alice`` spelt with
a Cyrillic a (U+0430) are refused: no look-alike of an ASCII handle can be
claimed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from p2pdm.core.cbor import Fields
from p2pdm.core.identity import PeerId
from p2pdm.errors import ProfileRefused, SchemaError
from p2pdm.limits import (
    HANDLE_MAX_CHARS,
    HANDLE_MIN_CHARS,
    MAX_AVATAR_BYTES,
    MAX_BIO_BYTES,
    MAX_BIO_CHARS,
    MAX_HANDLE_CLAIMANTS,
    MAX_HANDLE_INPUT_CHARS,
    MAX_NAME_BYTES,
)

__all__ = [
    "AVATAR_TYPES",
    "HANDLE_KEY_PREFIX",
    "Profile",
    "avatar_type_of",
    "check_bio",
    "check_display_name",
    "handle_key",
    "normalise_handle",
    "rank_claimants",
]

#: What a normalised handle is.
_HANDLE: Final = re.compile(f"[a-z0-9._]{{{HANDLE_MIN_CHARS},{HANDLE_MAX_CHARS}}}")
#: The provider key of a handle is this prefix and the normalised handle (ASCII);
#: on the wire it goes as its SHA-256 multihash, like every provider key.
HANDLE_KEY_PREFIX: Final = b"/p2pdm/handle/"
#: Avatar media types and the bytes each file starts with.
AVATAR_TYPES: Final = ("image/webp", "image/jpeg")


def normalise_handle(text: str) -> str:
    """The normalised form of a handle as typed; raises ProfileRefused, naming the problem."""
    if len(text) > MAX_HANDLE_INPUT_CHARS:
        raise ProfileRefused(f"a handle is at most {HANDLE_MAX_CHARS} characters")
    stripped = text.strip()
    stripped = stripped.removeprefix("@")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", stripped).casefold())
    for char in folded:
        if not (char.isascii() and (char.isalnum() or char in "._")):
            raise ProfileRefused(
                f"a handle may hold only a-z, 0-9, '.' and '_'; {char!r} "
                f"(U+{ord(char):04X}) is refused, so that no handle can look like another"
            )
    if not HANDLE_MIN_CHARS <= len(folded) <= HANDLE_MAX_CHARS:
        raise ProfileRefused(
            f"a handle is {HANDLE_MIN_CHARS} to {HANDLE_MAX_CHARS} characters, not {len(folded)}"
        )
    assert _HANDLE.fullmatch(folded)
    return folded


def handle_key(handle: str) -> bytes:
    """The DHT provider key of ``handle`` (normalised here); raises ProfileRefused."""
    return HANDLE_KEY_PREFIX + normalise_handle(handle).encode("ascii")


def check_display_name(name: str) -> str:
    """``name`` without surrounding blanks; raises ProfileRefused if over MAX_NAME_BYTES."""
    name = name.strip()
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ProfileRefused(f"a display name is at most {MAX_NAME_BYTES} bytes of UTF-8")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise ProfileRefused("a display name holds no control characters")
    return name


def check_bio(bio: str) -> str:
    """``bio`` without surrounding blanks; raises ProfileRefused if too long."""
    bio = bio.strip()
    if len(bio) > MAX_BIO_CHARS or len(bio.encode("utf-8", "surrogatepass")) > MAX_BIO_BYTES:
        raise ProfileRefused(f"a bio is at most {MAX_BIO_CHARS} characters")
    if any(unicodedata.category(c) == "Cs" for c in bio):
        raise ProfileRefused("a bio is text (no lone surrogates)")
    return bio


def avatar_type_of(data: bytes) -> str:
    """An avatar file's media type (WebP or JPEG, by its first bytes); raises ProfileRefused."""
    if len(data) > MAX_AVATAR_BYTES:
        raise ProfileRefused(f"an avatar is at most {MAX_AVATAR_BYTES} bytes")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    raise ProfileRefused("an avatar is a WebP or JPEG image")


@dataclass(frozen=True, slots=True)
class Profile:
    """What a node publishes about its person; every field may be empty.

    ``handle`` is normalised; ``avatar`` is a WebP or JPEG file of at most
    MAX_AVATAR_BYTES with no metadata (the node makes it, :mod:`p2pdm.node.avatar`).
    """

    name: str = ""
    handle: str = ""
    bio: str = ""
    avatar: bytes = b""

    def __post_init__(self) -> None:
        if self.handle and normalise_handle(self.handle) != self.handle:
            raise ProfileRefused(f"handle {self.handle!r} is not normalised")
        if check_display_name(self.name) != self.name or check_bio(self.bio) != self.bio:
            raise ProfileRefused("a profile's name and bio carry no surrounding blanks")
        if self.avatar:
            avatar_type_of(self.avatar)

    @property
    def empty(self) -> bool:
        return not (self.name or self.handle or self.bio or self.avatar)

    @property
    def avatar_type(self) -> str | None:
        return avatar_type_of(self.avatar) if self.avatar else None

    def to_map(self) -> dict[str, Any]:
        """The CBOR map signed inside a node record; empty fields are left out."""
        fields = {"name": self.name, "handle": self.handle, "bio": self.bio, "avatar": self.avatar}
        return {key: value for key, value in fields.items() if value}

    @classmethod
    def from_fields(cls, f: Fields) -> Profile:
        """Decode a record's profile map; raises SchemaError for anything off-schema."""
        name = f.text("name", MAX_NAME_BYTES) if f.has("name") else ""
        handle = f.text("handle", HANDLE_MAX_CHARS) if f.has("handle") else ""
        bio = f.text("bio", MAX_BIO_BYTES) if f.has("bio") else ""
        avatar = f.opt_blob("avatar", max_size=MAX_AVATAR_BYTES) or b""
        f.done()
        try:
            profile = cls(name, handle, bio, avatar)
        except ProfileRefused as exc:
            raise SchemaError(f"{f.what}: {exc}") from None
        if profile.empty or profile.to_map() != f.raw():
            # One encoding per profile: no empty fields, no empty profile.
            raise SchemaError(f"{f.what}: empty fields are left out, and so is an empty profile")
        return profile


def rank_claimants(
    claimants: Sequence[PeerId],
    first_seen_ms: Mapping[PeerId, int],
    contacts: Collection[PeerId],
    limit: int = MAX_HANDLE_CLAIMANTS,
) -> list[PeerId]:
    """The claimants to show, likeliest first: contacts, then the longest seen.

    Ties go to the lower PeerID, so every node orders the same claims the
    same way. The order says who we have known longest, never who is real:
    a claim first seen today may be the real person's, new to p2pdm.
    """

    def order(peer: PeerId) -> tuple[bool, int, bytes]:
        return (peer not in contacts, first_seen_ms.get(peer, 1 << 62), peer.raw)

    return sorted(dict.fromkeys(claimants), key=order)[:limit]
