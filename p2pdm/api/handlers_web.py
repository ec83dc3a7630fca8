"""Routes the web app needs beyond the messaging API: the invite as a QR code, the demo bot.

How this works: ``GET /v1/invite`` makes a fresh invite and draws it as an
SVG QR code with segno (error correction L: the smallest symbol; screens are
not crumpled labels), so the app can show the same invite as text and as a
code to scan. The SVG is our own drawing of our own invite: no text from a
peer is ever in it. segno (and the XML modules it writes SVG with) is
imported on the first invite drawn, not with the node.

``/v1/demo`` starts (``POST``), shows (``GET``) and removes (``DELETE``) a
local demo bot, so a newcomer can chat before they have a friend on p2pdm;
the daemon runs it (:class:`DemoControl`), and a node served without one
(tests, simulations) offers none.
"""

from __future__ import annotations

import io
from typing import Any, Final, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.payload import RequestError
from p2pdm.api.schema import STRING, Schema, obj
from p2pdm.node.node import Node

__all__ = [
    "DEMO",
    "INVITE",
    "DemoControl",
    "delete_demo",
    "get_demo",
    "get_invite",
    "invite_svg",
    "start_demo",
]

#: Size of one QR module in the SVG, in SVG units (the app scales it).
QR_SCALE: Final = 4


def invite_svg(invite: str) -> str:
    import segno

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


# --- the demo contact ------------------------------------------------------------


class DemoControl(Protocol):
    """The local demo bot, run by the daemon beside the node (:mod:`p2pdm.daemon.demo`)."""

    def status(self) -> dict[str, Any]: ...

    async def start(self) -> dict[str, Any]: ...

    async def remove(self) -> dict[str, Any]: ...


def _no_demo(node: Node) -> dict[str, Any]:
    return {"offered": False, "running": False, "peer_id": None, "name": None}


def _demo(request: Request) -> DemoControl | None:
    demo: DemoControl | None = getattr(request.app.state, "demo", None)
    return demo


async def get_demo(request: Request, node: Node) -> Response:
    demo = _demo(request)
    return JSONResponse(_no_demo(node) if demo is None else demo.status())


async def start_demo(request: Request, node: Node) -> Response:
    demo = _demo(request)
    if demo is None:
        raise RequestError(
            422, "no_demo", "this node runs without the demo bot (it runs only under `p2pdm run`)"
        )
    return JSONResponse(await demo.start(), status_code=201)


async def delete_demo(request: Request, node: Node) -> Response:
    demo = _demo(request)
    return JSONResponse(_no_demo(node) if demo is None else await demo.remove())


DEMO: Final[Schema] = obj(
    {
        "offered": {
            "type": "boolean",
            "description": "whether the app offers a newcomer the demo contact "
            "(off with `p2pdm run --no-demo` or the demo_offer setting)",
        },
        "running": {"type": "boolean", "description": "whether the demo bot runs now"},
        "peer_id": {"type": ["string", "null"], "description": "the demo bot's PeerID"},
        "name": {"type": ["string", "null"], "description": "its contact name"},
    }
)
