"""Routes the web app needs beyond the messaging API: the invite as a QR code.

How this works: ``GET /v1/invite`` makes a fresh invite and draws it as an
SVG QR code with segno (error correction L: the smallest symbol; screens are
not crumpled labels), so the app can show the same invite as text and as a
code to scan. The SVG is our own drawing of our own invite: no text from a
peer is ever in it.
"""

from __future__ import annotations

import io
from typing import Final

import segno
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.schema import STRING, Schema, obj
from p2pdm.node.node import Node

__all__ = ["INVITE", "get_invite", "invite_svg"]

#: Size of one QR module in the SVG, in SVG units (the app scales it).
QR_SCALE: Final = 4


def invite_svg(invite: str) -> str:
    out = io.BytesIO()
    segno.make(invite, error="L").save(
        out, kind="svg", scale=QR_SCALE, xmldecl=False, svgns=True, omitsize=True, light="#fff"
    )
    return out.getvalue().decode("utf-8")


async def get_invite(request: Request, node: Node) -> Response:
    invite = node.invite()
    return JSONResponse({"invite": invite, "svg": invite_svg(invite)})


INVITE: Final[Schema] = obj(
    {
        "invite": {**STRING, "description": "a fresh p2pdm: invite"},
        "svg": {**STRING, "description": "the same invite as a QR code (an SVG document)"},
    }
)
