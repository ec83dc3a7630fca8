"""Sending files and places: what the API and the CLI call (docs/api.md, media).

A media message names blobs uploaded before (:mod:`p2pdm.node.media`); the
message, its session state and outbox entry commit together (the
messenger), then the references that let its recipient fetch the blobs.
"""

from __future__ import annotations

import dataclasses

from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import Body, LocationBody, MediaBody
from p2pdm.core.kinds.location import E7, MAX_ACCURACY_M
from p2pdm.core.model import StoredMessage, direct_conversation_id
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_LOCATION_LABEL_BYTES
from p2pdm.node.actions import action_expiry_s
from p2pdm.node.media import push_files
from p2pdm.node.node import Node

__all__ = ["location_body", "send_body", "send_location", "send_media"]


async def send_body(node: Node, peer: PeerId, body: Body) -> StoredMessage:
    """Queue a message of any stored kind to ``peer``; returns it ``queued``.

    When ``peer``'s prekeys are not found in the network (or earlier messages
    wait for them), the message waits for them as a text does
    (:mod:`p2pdm.node.key_waits`); its files are sent with it once they are.
    """
    if not await node.keys_or_wait(peer):
        return await node.batcher.submit(
            lambda: node.hold_body(peer, with_conversation_timer(node, peer, body))
        )

    def work() -> StoredMessage:
        out = node.messenger.send(peer, with_conversation_timer(node, peer, body))
        assert out.message is not None
        blob_ids = node.media.attach(out.message)
        if blob_ids and peer not in node.online:  # small files follow into the mailboxes
            expires_by_s = action_expiry_s(out.message)
            push_files(node.messenger, node.media, peer, out.message, blob_ids, expires_by_s)
        return out.message

    message = await node.batcher.submit(work)
    node.on_outbox(peer)
    return message


def with_conversation_timer(node: Node, peer: PeerId, body: Body) -> Body:
    """A file or place carries the conversation's timer, as a text does, so both
    sides erase it (and its files) alike."""
    if not isinstance(body, (MediaBody, LocationBody)):
        return body
    found = node.store.get_conversation(direct_conversation_id(node.peer_id, peer))
    return body if found is None else dataclasses.replace(body, timer_s=found.timer_s)


async def send_media(
    node: Node, peer: PeerId, blob_ids: list[bytes], caption: str | None = None
) -> StoredMessage:
    """Send our uploaded files ``blob_ids`` with an optional caption.

    Raises NotFound for a blob that is not ours, MediaRefused for none or
    too many, SessionError when there is no way to reach ``peer``.
    """
    return await send_body(node, peer, node.media.body_for(blob_ids, caption))


def location_body(
    lat: float, lon: float, accuracy_m: float | None = None, label: str | None = None
) -> LocationBody:
    """A location body; raises SchemaError for coordinates off the globe."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise SchemaError("a location needs a latitude in -90..90 and a longitude in -180..180")
    if accuracy_m is not None and not 0 <= accuracy_m <= MAX_ACCURACY_M:
        raise SchemaError(f"accuracy_m is 0..{MAX_ACCURACY_M} metres")
    if label is not None and len(label.encode("utf-8", "surrogatepass")) > MAX_LOCATION_LABEL_BYTES:
        raise SchemaError(f"a location's label is at most {MAX_LOCATION_LABEL_BYTES} bytes")
    return LocationBody(
        round(lat * E7),
        round(lon * E7),
        None if accuracy_m is None else round(accuracy_m),
        label or None,
    )


async def send_location(
    node: Node,
    peer: PeerId,
    lat: float,
    lon: float,
    accuracy_m: float | None = None,
    label: str | None = None,
) -> StoredMessage:
    """Send a place; raises SchemaError for coordinates off the globe."""
    return await send_body(node, peer, location_body(lat, lon, accuracy_m, label))
