"""The node's local API: JSON over HTTP on the loopback interface.

:func:`create_app` builds the ASGI app for one :class:`~p2pdm.node.node.Node`;
:func:`serve_api` serves it with hypercorn inside the node's trio loop. See
``docs/api.md`` for the endpoints and ``/v1/openapi.json`` for the schema.
"""

from __future__ import annotations

from p2pdm.api.app import ROUTES, create_app, openapi_document
from p2pdm.api.guard import MAX_API_BODY_BYTES, LocalGuard
from p2pdm.api.server import serve_api

__all__ = [
    "MAX_API_BODY_BYTES",
    "ROUTES",
    "LocalGuard",
    "create_app",
    "openapi_document",
    "serve_api",
]
