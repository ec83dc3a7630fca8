"""The route rows of conversations: their pages, marking read, the timer, mute and
archive, typing, search (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers import conversation_messages, list_conversations, read_conversation
from p2pdm.api.handlers_conversations import (
    CONVERSATION_PATCH,
    SEARCH_PARAMETERS,
    TYPING_RESULT,
    patch_conversation,
    search_messages,
    send_typing,
)
from p2pdm.api.routes_common import BODY, CONVERSATION, NOT_FOUND, PAGE, READ, SEND
from p2pdm.api.schema import Doc, Route, ref
from p2pdm.api.schema import query_int as query_int_param
from p2pdm.limits import DEFAULT_SEARCH_HITS, MAX_SEARCH_HITS

__all__ = ["CONVERSATION_ROUTES", "CONVERSATION_TOOL_ROUTES"]


CONVERSATION_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/conversations",
        "GET",
        list_conversations,
        READ,
        Doc(
            "listConversations",
            "Conversations, most recent first, with unread counts",
            ("200", ref("ConversationList"), "the conversations"),
        ),
    ),
    Route(
        "/v1/conversations/{conversation}/messages",
        "GET",
        conversation_messages,
        READ,
        Doc(
            "listMessages",
            "A page of a conversation's messages, newest first",
            ("200", ref("MessagePage"), "the page"),
            NOT_FOUND,
            parameters=(CONVERSATION, *PAGE),
        ),
    ),
    Route(
        "/v1/conversations/{conversation}/read",
        "POST",
        read_conversation,
        SEND,
        Doc(
            "readConversation",
            "Mark every message in the conversation read (sends read receipts if on)",
            ("200", ref("ReadResult"), "the ids newly marked read"),
            NOT_FOUND,
            parameters=(CONVERSATION,),
        ),
    ),
)

CONVERSATION_TOOL_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/conversations/{conversation}",
        "PATCH",
        patch_conversation,
        SEND,
        Doc(
            "updateConversation",
            "Set a conversation's disappearing-messages timer (the peer is told), or mute "
            "or archive it",
            ("200", ref("Conversation"), "the conversation after the change"),
            {
                **NOT_FOUND,
                **BODY,
                "422": "a new timer needs a session or prekeys for the peer, to tell it",
            },
            parameters=(CONVERSATION,),
            body=ref("ConversationPatch"),
            schemas={"ConversationPatch": CONVERSATION_PATCH},
        ),
    ),
    Route(
        "/v1/conversations/{conversation}/typing",
        "POST",
        send_typing,
        SEND,
        Doc(
            "sendTyping",
            "Tell the contact you are typing: over an open connection only, never queued "
            "or kept; it shows for a few seconds (off with read receipts)",
            ("200", ref("TypingResult"), "whether the signal was sent, and if not why"),
            NOT_FOUND,
            parameters=(CONVERSATION,),
            schemas={"TypingResult": TYPING_RESULT},
        ),
    ),
    Route(
        "/v1/search",
        "GET",
        search_messages,
        READ,
        Doc(
            "searchMessages",
            "Find messages by the words of their text, newest first",
            ("200", ref("SearchResults"), "the messages found (maybe none)"),
            {"404": "'peer' is not a PeerID and no contact has that name"},
            parameters=(
                *SEARCH_PARAMETERS,
                query_int_param("limit", "most results", 1, MAX_SEARCH_HITS, DEFAULT_SEARCH_HITS),
            ),
        ),
    ),
)
