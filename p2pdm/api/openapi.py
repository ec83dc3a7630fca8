"""The OpenAPI 3.1 description of the local API, served at ``/v1/openapi.json``.

How this works: nothing is described here. Each route's row in
:data:`~p2pdm.api.app.ROUTES` carries its :class:`~p2pdm.api.schema.Doc`
(summary, parameters, request body, responses); each record's schema sits
beside the function that writes it (:mod:`p2pdm.api.views`), each request
body's beside the handler that reads it. :func:`build_document` assembles them,
adding what every operation shares: the bearer token, and the errors any
request can get (401, 403, 400, 413, 500). Tests check that every route of the
app is documented with its method, and run schemathesis against a live node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from p2pdm import __version__
from p2pdm.api.guard import MAX_API_BODY_BYTES
from p2pdm.api.payload import JSON_MEDIA_TYPE
from p2pdm.api.schema import Route, Schema, ref
from p2pdm.node.events import MAX_EVENT_LISTENERS
from p2pdm.node.node import DEFAULT_API_PORT

__all__ = ["COMMON_ERRORS", "ERROR_RESPONSES", "OPENAPI_VERSION", "build_document"]

OPENAPI_VERSION: Final = "3.1.0"

#: The shared wording of each error status: (component name, description).
ERROR_RESPONSES: Final[dict[str, tuple[str, str]]] = {
    "400": (
        "BadRequest",
        "the request is malformed or a value is invalid (an unknown query parameter, "
        "a path parameter or a field that does not match its schema)",
    ),
    "401": ("Unauthorized", "missing or wrong bearer token"),
    "403": (
        "ForbiddenHost",
        "the Host header is not a loopback name (forbidden_host), an Origin header names "
        "another origin than the API's own (forbidden_origin), the token's scope is too low "
        "(forbidden_scope), or it may not use that contact (forbidden_contact)",
    ),
    "404": ("NotFound", "no such contact, conversation, message or token"),
    "413": ("TooLarge", f"the body is over {MAX_API_BODY_BYTES} bytes"),
    "415": ("UnsupportedMediaType", f"the body is not {JSON_MEDIA_TYPE}"),
    "500": ("InternalError", "a bug or a store failure in the node; see its log"),
    "503": (
        "TooManyListeners",
        f"{MAX_EVENT_LISTENERS} clients are already waiting for events; retry",
    ),
}
#: Errors any request can get: the guard's (a bad Content-Length, a body over the
#: cap, no token, a foreign Host or Origin), an unknown query parameter, a bug.
COMMON_ERRORS: Final = ("400", "401", "403", "413", "500")


def _content(schema: Schema, media_type: str = JSON_MEDIA_TYPE) -> Schema:
    return {media_type: {"schema": schema}}


def _responses(route: Route) -> dict[str, Schema]:
    doc = route.doc
    status, schema, description = doc.ok
    ok: Schema = {"description": description}
    if schema is not None:
        ok["content"] = _content(schema, doc.ok_media_type)
    out = {status: ok}
    for also, (schema, description) in doc.also.items():
        also_type = doc.ok_media_type if also.startswith("2") else JSON_MEDIA_TYPE
        out[also] = {"description": description, "content": _content(schema, also_type)}
    errors = {**dict.fromkeys(COMMON_ERRORS, ""), **doc.errors}
    for code in sorted(errors):
        described = errors[code]
        if described:
            out[code] = {"description": described, "content": _content(ref("Error"))}
        else:
            out[code] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[code][0]}"}
    return out


def _operation(route: Route) -> Schema:
    doc = route.doc
    op: Schema = {
        "operationId": doc.operation_id,
        "summary": doc.summary,
        "responses": _responses(route),
    }
    if doc.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": _content(doc.body, doc.body_media_type),
        }
    if doc.parameters:
        op["parameters"] = list(doc.parameters)
    return op


def build_document(routes: Iterable[Route], schemas: Mapping[str, Schema]) -> dict[str, Any]:
    """The OpenAPI document of ``routes``; ``schemas`` are the shared components."""
    paths: dict[str, dict[str, Schema]] = {}
    components = dict(schemas)
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
        for name, schema in route.doc.schemas.items():
            if components.setdefault(name, schema) is not schema:
                raise ValueError(f"two schemas named {name!r}")
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "p2pdm local API",
            "version": __version__,
            "description": (
                "The API of one running p2pdm node, on the loopback interface only. "
                "Every request needs 'Authorization: Bearer <token>' (the token is in "
                "<home>/api_token) and a Host of localhost, 127.0.0.1 or [::1]. "
                "A token made with `p2pdm token create` may be limited to a scope "
                "(read, send, admin) and to some contacts. "
                f"Request bodies are JSON, at most {MAX_API_BODY_BYTES} bytes. "
                'Errors are {"error": {"code": …, "message": …}}.'
            ),
        },
        "servers": [{"url": f"http://127.0.0.1:{DEFAULT_API_PORT}"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components,
            "responses": {
                name: {"description": description, "content": _content(ref("Error"))}
                for name, description in ERROR_RESPONSES.values()
            },
        },
    }
