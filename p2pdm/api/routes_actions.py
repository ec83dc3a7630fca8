"""The route rows of message actions: react, edit, unsend, delete (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers_actions import (
    DELETE_FOR,
    EDIT_MESSAGE,
    NEW_REACTION,
    REACTED,
    delete_conversation,
    delete_message,
    edit_message,
    react,
)
from p2pdm.api.routes_common import BODY, CONVERSATION, MESSAGE_ID, NOT_FOUND, SEND
from p2pdm.api.schema import Doc, Route, ref

__all__ = ["ACTION_ROUTES"]


ACTION_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/messages/{message_id}/reactions",
        "POST",
        react,
        SEND,
        Doc(
            "reactToMessage",
            "React to a message with one emoji (replaces yours; an empty one takes it back)",
            ("200", ref("Reacted"), "the message with its reactions, and what was removed"),
            {**NOT_FOUND, **BODY, "422": "the message was unsent or cannot take reactions"},
            parameters=(MESSAGE_ID,),
            body=ref("NewReaction"),
            schemas={"NewReaction": NEW_REACTION, "Reacted": REACTED},
        ),
    ),
    Route(
        "/v1/messages/{message_id}",
        "PATCH",
        edit_message,
        SEND,
        Doc(
            "editMessage",
            "Change the text of your own message, within 15 minutes of sending it",
            ("200", ref("Message"), "the message with its new text"),
            {
                **NOT_FOUND,
                **BODY,
                "422": "not your message, not a text, unsent, or past the edit window",
            },
            parameters=(MESSAGE_ID,),
            body=ref("EditMessage"),
            schemas={"EditMessage": EDIT_MESSAGE},
        ),
    ),
    Route(
        "/v1/messages/{message_id}",
        "DELETE",
        delete_message,
        SEND,
        Doc(
            "deleteMessage",
            "Unsend your own message for everyone, or (for=me) delete a message here only",
            ("204", None, "unsent (GET shows it as 'unsent'), or deleted here (for=me)"),
            {**NOT_FOUND, "422": "unsending a message that is not yours"},
            parameters=(MESSAGE_ID, DELETE_FOR),
        ),
    ),
    Route(
        "/v1/conversations/{conversation}",
        "DELETE",
        delete_conversation,
        SEND,
        Doc(
            "deleteConversation",
            "Delete a conversation and its messages from this node only (nobody is told)",
            ("204", None, "deleted"),
            NOT_FOUND,
            parameters=(CONVERSATION,),
        ),
    ),
)
