"""The profile and the handle directory: handlers, their bodies, answers and schemas.

How this works: ``GET /v1/profile`` shows what this node publishes (nothing
until a profile is set), ``PATCH /v1/profile`` changes some fields (an empty
string clears one; the avatar is any picture, base64 in the JSON body, made
into a small WebP by the node), ``DELETE /v1/profile`` stops publishing one,
and ``GET /v1/directory?handle=`` returns the checked claimants of a handle,
likeliest first (:mod:`p2pdm.node.profiles`). The routes are rows of
``ROUTES`` in :mod:`p2pdm.api.app`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.payload import JSONObject, bad_request
from p2pdm.api.schema import BOOL, MS, PEER_ID, STRING, Schema, obj, ref
from p2pdm.core.identity import short_fingerprint
from p2pdm.core.profile import AVATAR_TYPES, Profile
from p2pdm.errors import ProfileRefused
from p2pdm.limits import (
    HANDLE_MAX_CHARS,
    MAX_AVATAR_BYTES,
    MAX_AVATAR_INPUT_BYTES,
    MAX_BIO_CHARS,
    MAX_HANDLE_CLAIMANTS,
    MAX_HANDLE_INPUT_CHARS,
    MAX_NAME_BYTES,
)
from p2pdm.node.node import Node
from p2pdm.node.profiles import UNCHANGED, Claimant

__all__ = [
    "DIRECTORY_PARAMETERS",
    "PROFILE_PATCH",
    "PROFILE_SCHEMAS",
    "claimant_json",
    "clear_profile",
    "find_handle",
    "get_profile",
    "patch_profile",
    "profile_json",
]

#: Longest base64 text of a picture: MAX_AVATAR_INPUT_BYTES encoded.
MAX_AVATAR_BASE64_CHARS: Final = (MAX_AVATAR_INPUT_BYTES + 2) // 3 * 4


def _avatar_json(profile: Profile) -> dict[str, Any]:
    return {
        "avatar": base64.b64encode(profile.avatar).decode() if profile.avatar else None,
        "avatar_type": profile.avatar_type,
    }


def profile_json(node: Node) -> dict[str, Any]:
    profile = node.profiles.current()
    shown = profile or Profile()
    return {
        "published": profile is not None,
        "peer_id": str(node.peer_id),
        "fingerprint": short_fingerprint(node.peer_id),
        "name": shown.name,
        "handle": shown.handle,
        "bio": shown.bio,
        **_avatar_json(shown),
    }


def claimant_json(claimant: Claimant, now_ms: int) -> dict[str, Any]:
    profile = claimant.profile
    return {
        "peer_id": str(claimant.peer),
        "name": profile.name,
        "bio": profile.bio,
        **_avatar_json(profile),
        "fingerprint": claimant.fingerprint,
        "first_seen_ms": claimant.first_seen_ms,
        "seen_for_s": max(0, now_ms - claimant.first_seen_ms) // 1000,
        "relation": claimant.relation,
    }


async def get_profile(request: Request, node: Node) -> Response:
    return JSONResponse(profile_json(node))


async def patch_profile(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    fields = {key: body.opt_text(key) for key in ("name", "handle", "bio", "avatar")}
    body.done()
    for key, value in fields.items():
        if value is None and key in body.data:
            raise bad_request(f"field {key!r} must be a string ('' clears it), not null")
    avatar = fields.pop("avatar")
    changes: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if avatar is not None:
        changes["avatar"] = _picture(avatar)
    if not changes:
        raise bad_request("give at least one of 'name', 'handle', 'bio' and 'avatar'")
    node.profiles.update(
        name=changes.get("name", UNCHANGED),
        handle=changes.get("handle", UNCHANGED),
        bio=changes.get("bio", UNCHANGED),
        avatar=changes.get("avatar", UNCHANGED),
    )
    return JSONResponse(profile_json(node))


def _picture(text: str) -> bytes:
    """The picture sent as base64 ('' clears the avatar); raises ProfileRefused."""
    if len(text) > MAX_AVATAR_BASE64_CHARS:
        raise ProfileRefused(f"the picture is over {MAX_AVATAR_INPUT_BYTES} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProfileRefused("'avatar' must be a picture in base64 (RFC 4648)") from None


async def clear_profile(request: Request, node: Node) -> Response:
    node.profiles.clear()
    return Response(status_code=204)


async def find_handle(request: Request, node: Node) -> Response:
    handle = request.query_params.get("handle")
    if handle is None:
        raise bad_request("missing query parameter 'handle'")
    normalised, claimants = await node.profiles.find(handle)
    now = node.now_ms()
    return JSONResponse(
        {"handle": normalised, "claimants": [claimant_json(c, now) for c in claimants]}
    )


# --- schemas ------------------------------------------------------------------------

_HANDLE_TYPED: Final[Schema] = {
    "type": "string",
    "maxLength": MAX_HANDLE_INPUT_CHARS,
    "description": f"3 to {HANDLE_MAX_CHARS} of a-z, 0-9, '.' and '_' after Unicode NFKC and "
    "case folding (a leading '@' and surrounding blanks are dropped); anything else, "
    "such as a Cyrillic look-alike, is refused with 422 profile_refused",
}
_AVATAR: Final[Schema] = {
    "type": ["string", "null"],
    "contentEncoding": "base64",
    "contentMediaType": f"{AVATAR_TYPES[0]}",
    "description": f"the avatar (WebP or JPEG, at most {MAX_AVATAR_BYTES} bytes), base64",
}
_AVATAR_TYPE: Final[Schema] = {"type": ["string", "null"], "enum": [*AVATAR_TYPES, None]}
_NAME: Final[Schema] = {
    "type": "string",
    "maxLength": MAX_NAME_BYTES,
    "description": f"the display name, at most {MAX_NAME_BYTES} bytes of UTF-8",
}
_BIO: Final[Schema] = {"type": "string", "maxLength": MAX_BIO_CHARS}

#: ``patch_profile``'s body: the fields to change (at least one); an empty string clears one.
PROFILE_PATCH: Final[Schema] = {
    "minProperties": 1,
    **obj(
        {
            "name": _NAME,
            "handle": {
                **_HANDLE_TYPED,
                "description": f"'' for none; {_HANDLE_TYPED['description']}",
            },
            "bio": _BIO,
            "avatar": {
                "type": "string",
                "maxLength": MAX_AVATAR_BASE64_CHARS,
                "pattern": "^[A-Za-z0-9+/]*={0,2}$",
                "contentEncoding": "base64",
                "description": f"any JPEG, PNG, WebP or GIF picture of at most "
                f"{MAX_AVATAR_INPUT_BYTES} bytes and 16 million pixels, base64; the node makes a "
                f"WebP of at most {MAX_AVATAR_BYTES} bytes from it with no metadata. '' clears it",
            },
        },
        optional=("name", "handle", "bio", "avatar"),
    ),
}

_PROFILE: Final[Schema] = obj(
    {
        "published": {
            **BOOL,
            "description": "false: no profile is set, nothing about this node is findable",
        },
        "peer_id": PEER_ID,
        "fingerprint": {
            **STRING,
            "description": "the first ten digits of this node's half of every safety number",
        },
        "name": STRING,
        "handle": {**STRING, "description": "normalised, or '' for none"},
        "bio": STRING,
        "avatar": _AVATAR,
        "avatar_type": _AVATAR_TYPE,
    }
)

_CLAIMANT: Final[Schema] = obj(
    {
        "peer_id": PEER_ID,
        "name": {**STRING, "description": "the name the claimant gave itself: not checked"},
        "bio": STRING,
        "avatar": _AVATAR,
        "avatar_type": _AVATAR_TYPE,
        "fingerprint": {
            **STRING,
            "description": "the first ten digits of the claimant's half of the safety number: "
            "compare the whole safety number with the person to know it is them",
        },
        "first_seen_ms": {**MS, "description": "when this node first saw the claim"},
        "seen_for_s": {"type": "integer", "minimum": 0, "description": "how long, in seconds"},
        "relation": {
            "type": "string",
            "enum": ["self", "contact", "stranger"],
            "description": "self: this node; contact: already a contact; stranger: anyone else",
        },
    }
)

#: The answers' schemas, by name in the document.
PROFILE_SCHEMAS: Final[dict[str, Schema]] = {
    "Profile": _PROFILE,
    "Claimant": _CLAIMANT,
    "Directory": obj(
        {
            "handle": {**STRING, "description": "the handle as looked up, normalised"},
            "claimants": {
                "type": "array",
                "maxItems": MAX_HANDLE_CLAIMANTS,
                "items": ref("Claimant"),
                "description": "contacts first, then the claims this node has seen longest; "
                "the order is no proof of who is real",
            },
        }
    ),
}

#: ``find_handle``'s query.
DIRECTORY_PARAMETERS: Final[tuple[Schema, ...]] = (
    {
        "name": "handle",
        "in": "query",
        "required": True,
        "description": "the handle to look up (exact: there is no prefix search)",
        "schema": {**_HANDLE_TYPED, "minLength": 1},
    },
)
