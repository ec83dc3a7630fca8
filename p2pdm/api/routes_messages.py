"""The route rows of sending, reading and marking messages (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers import (
    FORWARD_MESSAGE,
    SEND_MESSAGE,
    forward_message,
    get_message,
    read_message,
    send_message,
)
from p2pdm.api.routes_common import BODY, MESSAGE_ID, NOT_FOUND, READ, SEND
from p2pdm.api.schema import Doc, Route, ref

__all__ = ["MESSAGE_ROUTES"]


MESSAGE_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/messages",
        "POST",
        send_message,
        SEND,
        Doc(
            "sendMessage",
            "Queue a text message; the node delivers it when it can",
            ("201", ref("Message"), "the message, status 'queued'"),
            {
                **BODY,
                "404": "'to' is not a PeerID and no contact has that name",
                "409": "you blocked the recipient (code peer_blocked): unblock it first",
                "422": "no session and no prekeys for the recipient yet, or the "
                "idempotency_key was used for another message",
            },
            body=ref("SendMessage"),
            schemas={"SendMessage": SEND_MESSAGE},
            also={
                "200": (ref("Message"), "a retry with a known idempotency_key: the message it made")
            },
        ),
    ),
    Route(
        "/v1/messages/{message_id}",
        "GET",
        get_message,
        READ,
        Doc(
            "getMessage",
            "One message with its delivery status history",
            ("200", ref("MessageWithHistory"), "the message"),
            NOT_FOUND,
            parameters=(MESSAGE_ID,),
        ),
    ),
    Route(
        "/v1/messages/{message_id}/forward",
        "POST",
        forward_message,
        SEND,
        Doc(
            "forwardMessage",
            "Send a copy of a message (its text, its files with their caption, or its "
            "place) to a contact or a group, as a new message of yours",
            ("201", ref("Message"), "the new message, status 'queued'"),
            {
                **NOT_FOUND,
                **BODY,
                "409": "you blocked the recipient (code peer_blocked): unblock it first",
                "422": "the message cannot be forwarded (unsent, a notice, or its files "
                "not downloaded yet; code action_refused), no session for the recipient, "
                "or the idempotency_key was used for another message",
            },
            parameters=(MESSAGE_ID,),
            body=ref("ForwardMessage"),
            schemas={"ForwardMessage": FORWARD_MESSAGE},
            also={
                "200": (ref("Message"), "a retry with a known idempotency_key: the message it made")
            },
        ),
    ),
    Route(
        "/v1/messages/{message_id}/read",
        "POST",
        read_message,
        SEND,
        Doc(
            "readMessage",
            "Mark the message's conversation read up to now (sends read receipts if on)",
            ("200", ref("Message"), "the message after marking"),
            NOT_FOUND,
            parameters=(MESSAGE_ID,),
        ),
    ),
)
