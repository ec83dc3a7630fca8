"""The local API's groups: handlers (docs/api.md, Groups).

How this works: as :mod:`p2pdm.api.handlers`, each handler reads and checks
its input, resolves what the caller typed once (a group by id or unique
name, members by PeerID or contact name) and calls one node method
(:mod:`p2pdm.node.groups`). A token limited to some contacts may not use
groups (their members are not its contacts); the owner's and unrestricted
tokens may. The route rows are in :mod:`p2pdm.api.routes_groups`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.guard import grant_of
from p2pdm.api.handlers_media import SAFE_HEADERS, location_fields
from p2pdm.api.payload import JSONObject, RequestError, bad_request
from p2pdm.api.views import message_view
from p2pdm.api.views_groups import group_json
from p2pdm.core.groups import photo_tag, photo_type
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds.timer import check_timer
from p2pdm.core.model import StoredMessage
from p2pdm.errors import NotFound
from p2pdm.limits import MAX_MEDIA_ITEMS
from p2pdm.node.media import blob_id_of
from p2pdm.node.media_ops import location_body
from p2pdm.node.node import Node, parse_message_id

__all__ = [
    "accept_group",
    "add_group_members",
    "block_group",
    "create_group",
    "decline_group",
    "get_group",
    "get_group_photo",
    "leave_group",
    "list_groups",
    "remove_group_member",
    "send_group_message",
    "update_group",
]


def _unrestricted(request: Request) -> None:
    grant = grant_of(request.scope)
    if grant.contacts is not None:
        raise RequestError(
            403, "forbidden_contact", f"token {grant.name!r} is limited to some contacts: no groups"
        )


def _group(request: Request, node: Node) -> bytes:
    _unrestricted(request)
    return node.find_group(request.path_params["group"])


def _peers(node: Node, names: list[str]) -> list[PeerId]:
    try:
        return [node.resolve(who) for who in names]
    except NotFound as exc:
        raise NotFound(f"{exc}: members are PeerIDs or contacts' names") from None


def _answer(node: Node, group: bytes, status: int = 200) -> Response:
    return JSONResponse(group_json(node, node.group_info(group)), status_code=status)


async def list_groups(request: Request, node: Node) -> Response:
    _unrestricted(request)
    return JSONResponse({"groups": [group_json(node, g) for g in node.groups()]})


async def get_group(request: Request, node: Node) -> Response:
    return _answer(node, _group(request, node))


async def get_group_photo(request: Request, node: Node) -> Response:
    """The group's photo, served as avatars and files are: its own image type
    only (WebP or JPEG), nosniff, sandboxed; 404 when it has none to show."""
    group = _group(request, node)
    photo = node.group_info(group).state.photo
    kind = None if photo is None else photo_type(photo)
    if photo is None or kind is None:
        raise NotFound("this group has no photo")
    return Response(
        photo,
        media_type=kind,
        headers={**SAFE_HEADERS, "Content-Disposition": "inline", "ETag": f'"{photo_tag(photo)}"'},
    )


async def create_group(request: Request, node: Node) -> Response:
    _unrestricted(request)
    body = await JSONObject.read(request)
    name = body.text("name")
    members = body.opt_text_list("members")
    timer_s = body.opt_int("timer_s") or 0
    body.done()
    if not name.strip():
        raise bad_request("a group needs a name")
    info = await node.create_group(name, _peers(node, members), check_timer(timer_s))
    return JSONResponse(
        group_json(node, info),
        status_code=201,
        headers={"Location": f"/v1/groups/{info.row.id.hex()}"},
    )


async def add_group_members(request: Request, node: Node) -> Response:
    group = _group(request, node)
    body = await JSONObject.read(request)
    members = body.opt_text_list("members")
    body.done()
    if not members:
        raise bad_request("name at least one member to add")
    await node.change_group(group, "add", peers=tuple(_peers(node, members)))
    return _answer(node, group)


async def remove_group_member(request: Request, node: Node) -> Response:
    group = _group(request, node)
    peer = node.resolve(request.path_params["peer"])
    await node.change_group(group, "remove", peers=(peer,))
    return _answer(node, group)


async def leave_group(request: Request, node: Node) -> Response:
    group = _group(request, node)
    await node.change_group(group, "leave")
    return _answer(node, group)


async def update_group(request: Request, node: Node) -> Response:
    group = _group(request, node)
    body = await JSONObject.read(request)
    name = body.opt_text("name")
    clear_photo = "photo" in body.data and body.data["photo"] is None
    photo_text = body.opt_text("photo")
    photo = None if photo_text is None else blob_id_of(photo_text)
    timer_s = body.opt_int("timer_s")
    admins = body.opt_object("admins") or {}
    body.done()
    if set(admins) - {"add", "remove"}:
        raise bad_request("'admins' holds 'add' and 'remove' lists")
    promote = _peers(node, _names(admins.get("add")))
    demote = _peers(node, _names(admins.get("remove")))
    if name is not None and not name.strip():
        raise bad_request("a group needs a name")
    if name is not None:
        await node.change_group(group, "rename", name=name.strip())
    if photo is not None or clear_photo:
        await node.set_group_photo(group, photo)
    if timer_s is not None:
        await node.change_group(group, "timer", timer_s=check_timer(timer_s))
    if promote:
        await node.change_group(group, "promote", peers=tuple(promote))
    if demote:
        await node.change_group(group, "demote", peers=tuple(demote))
    return _answer(node, group)


def _names(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request("'admins.add' and 'admins.remove' are arrays of members")
    return value


async def accept_group(request: Request, node: Node) -> Response:
    group = _group(request, node)
    return JSONResponse(group_json(node, node.answer_group(group, "accept")))


async def decline_group(request: Request, node: Node) -> Response:
    group = _group(request, node)
    return JSONResponse(group_json(node, node.answer_group(group, "decline")))


async def block_group(request: Request, node: Node) -> Response:
    group = _group(request, node)
    return JSONResponse(group_json(node, node.answer_group(group, "block")))


async def send_group_message(
    request: Request,
    node: Node,
    group: bytes,
    body: JSONObject,
    idempotency: tuple[str, str] | None = None,
) -> Response:
    """``POST /v1/messages`` whose ``to`` is a group: a text (and a reply),
    files with a caption, or a place."""
    _unrestricted(request)
    if body.has("media") or body.has("location"):
        return await _send_group_media(node, group, body, idempotency)
    text = body.text("text")
    reply_text = body.opt_text("reply_to")
    body.done()
    reply_to = None if reply_text is None else parse_message_id(reply_text)
    sent = await node.send_group_text(group, text, reply_to, idempotency=idempotency)
    if sent.replayed:  # a retry: the same message, not a second one
        return JSONResponse(
            message_view(node, sent.message, ""), headers={"Idempotent-Replayed": "true"}
        )
    return _created(node, sent.message)


async def _send_group_media(
    node: Node, group: bytes, body: JSONObject, idempotency: tuple[str, str] | None
) -> Response:
    ids = body.opt_text_list("media")
    place = body.opt_object("location")
    caption = body.opt_text("text")
    body.done()
    if ids and place is not None:
        raise bad_request("a message carries files or a location, not both")
    if place is not None:
        if caption is not None:
            raise bad_request("a location message has no text")
        sent = await node.send_group_body(
            group, location_body(*location_fields(place)), idempotency=idempotency
        )
    else:
        if not 1 <= len(ids) <= MAX_MEDIA_ITEMS:
            raise bad_request(f"'media' names 1 to {MAX_MEDIA_ITEMS} uploaded files")
        made = node.media.body_for([blob_id_of(i) for i in ids], caption)
        sent = await node.send_group_body(group, made, idempotency=idempotency)
    if sent.replayed:  # a retry: the same message, not a second one
        return JSONResponse(
            message_view(node, sent.message, ""), headers={"Idempotent-Replayed": "true"}
        )
    return _created(node, sent.message)


def _created(node: Node, message: StoredMessage) -> Response:
    return JSONResponse(
        message_view(node, message, ""),
        status_code=201,
        headers={"Location": f"/v1/messages/{message.id.hex()}"},
    )
