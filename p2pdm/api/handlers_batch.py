"""The local API's batch send: many messages in one request and one commit.

How this works: the whole body is checked first, as the document describes it
(an array of 1 to :data:`~p2pdm.node.batch_send.MAX_BATCH_MESSAGES` closed
objects, each text not blank, each idempotency key 1 to 255 characters); a
body that does not match is refused whole (400) and nothing is sent. Then
each message is resolved, checked against the token's contacts and sent on
its own (:meth:`~p2pdm.node.batch_send.BatchSend.submit_many`): the answer
lists, in order, each message's id and status or the error that refused it,
exactly as ``POST /v1/messages`` would have refused it alone. An
``idempotency_key`` works per message, as it does there.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.handlers import MAX_IDEMPOTENCY_KEY_CHARS, SEND_MESSAGE, _idempotency, _visible_peer
from p2pdm.api.handlers_media import MEDIA_FIELDS
from p2pdm.api.payload import (
    JSONObject,
    RequestError,
    bad_request,
    error_message,
    p2pdm_error_status,
)
from p2pdm.api.schema import Doc, Route, Schema, obj, ref
from p2pdm.core.model import TokenScope
from p2pdm.errors import P2PDMError
from p2pdm.limits import MAX_TEXT_BYTES
from p2pdm.node.batch_send import MAX_BATCH_MESSAGES, SendItem, Sent
from p2pdm.node.node import Node

__all__ = ["BATCH_ROUTE", "BATCH_SCHEMAS", "send_batch"]


def _item(index: int, raw: object) -> tuple[str, str, str | None]:
    """``(to, text, idempotency_key)`` of the body's message ``index``; RequestError 400."""
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object")
    try:
        item = JSONObject(raw)
        to, text, key = item.text("to"), item.text("text"), item.opt_text("idempotency_key")
        item.done()
    except RequestError as exc:
        raise bad_request(f"{where}: {exc.message}") from None
    if not text.strip() or len(text) > MAX_TEXT_BYTES:
        raise bad_request(f"{where}: 'text' is not blank and at most {MAX_TEXT_BYTES} characters")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise bad_request(
            f"{where}: 'idempotency_key' is 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"
        )
    return to, text, key


def _error(exc: P2PDMError | RequestError) -> dict[str, Any]:
    if isinstance(exc, RequestError):
        return {"error": {"code": exc.code, "message": exc.message}}
    _, code = p2pdm_error_status(exc)
    return {"error": {"code": code, "message": error_message(exc)}}


def _sent(sent: Sent) -> dict[str, Any]:
    message = sent.message
    return {"id": message.id.hex(), "status": message.status.value, "replayed": sent.replayed}


async def send_batch(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    raw = body.data.get("messages")
    if set(body.data) != {"messages"}:
        unknown = sorted(set(body.data) - {"messages"})
        raise bad_request(f"unknown field {unknown[0]!r}" if unknown else "missing 'messages'")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_BATCH_MESSAGES:
        raise bad_request(f"'messages' is an array of 1 to {MAX_BATCH_MESSAGES} messages")
    checked = [_item(i, item) for i, item in enumerate(raw)]
    results: list[dict[str, Any] | None] = [None] * len(checked)
    items: list[SendItem] = []
    places: list[int] = []
    for i, (to, text, key) in enumerate(checked):
        try:
            peer = _visible_peer(request, node, to)
        except (P2PDMError, RequestError) as exc:
            results[i] = _error(exc)
            continue
        items.append(SendItem(peer, text, _idempotency(request, key)))
        places.append(i)
    for i, outcome in zip(places, await node.submit_many(items), strict=True):
        results[i] = _error(outcome) if isinstance(outcome, P2PDMError) else _sent(outcome)
    return JSONResponse({"results": results})


#: A batch sends texts only: no replies, files or places (POST /v1/messages does).
_NOT_IN_BATCH: Final = frozenset({"reply_to", *MEDIA_FIELDS})
_SEND_ITEM: Final[Schema] = {
    **{key: value for key, value in SEND_MESSAGE.items() if key != "oneOf"},
    "properties": {
        key: value for key, value in SEND_MESSAGE["properties"].items() if key not in _NOT_IN_BATCH
    },
    "required": ["to", "text"],
}

#: The components the batch send adds to the document.
BATCH_SCHEMAS: Final[dict[str, Schema]] = {
    "SendBatch": obj(
        {
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH_MESSAGES,
                "items": ref("SendBatchItem"),
                "description": f"1 to {MAX_BATCH_MESSAGES} messages, sent in this order",
            }
        }
    ),
    "SendBatchItem": _SEND_ITEM,
    "BatchResults": obj(
        {
            "results": {
                "type": "array",
                "items": {"oneOf": [ref("BatchSent"), ref("Error")]},
                "description": "one per message, in the order given: "
                "its id and status, or why it was not sent",
            }
        }
    ),
    "BatchSent": obj(
        {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "status": {"type": "string", "description": "'queued' for a new message"},
            "replayed": {
                "type": "boolean",
                "description": "true: its idempotency_key had made this message before",
            },
        }
    ),
}

#: ``POST /v1/messages/batch``: a row of the route table (p2pdm.api.app.ROUTES).
BATCH_ROUTE: Final = Route(
    "/v1/messages/batch",
    "POST",
    send_batch,
    TokenScope.SEND,
    Doc(
        "sendMessages",
        "Queue many text messages in one request and one commit",
        ("200", ref("BatchResults"), "each message's id and status, or its error, in order"),
        {"413": "", "415": ""},
        body=ref("SendBatch"),
        schemas=BATCH_SCHEMAS,
    ),
)
