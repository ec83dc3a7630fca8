"""The route rows of the node itself, its mailboxes, settings and tokens (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers import (
    NEW_TOKEN,
    SETTINGS_PATCH,
    SETTINGS_SCHEMA,
    add_token,
    delete_token,
    get_mailboxes,
    get_node,
    get_settings,
    list_tokens,
    patch_settings,
)
from p2pdm.api.routes_common import ADMIN, BODY, NOT_FOUND, READ
from p2pdm.api.schema import TOKEN_NAME, Doc, Route, path_param, ref

__all__ = ["NODE_ROUTES", "SETTINGS_ROUTES"]


NODE_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/node",
        "GET",
        get_node,
        READ,
        Doc(
            "getNode",
            "This node: PeerID, name, addresses, version, counts and a fresh invite",
            ("200", ref("Node"), "the node"),
        ),
    ),
    Route(
        "/v1/mailboxes",
        "GET",
        get_mailboxes,
        READ,
        Doc(
            "getMailboxes",
            "The mailboxes this node fetches its envelopes from, and what its own holds",
            ("200", ref("Mailboxes"), "the mailboxes"),
        ),
    ),
)

SETTINGS_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/settings",
        "GET",
        get_settings,
        READ,
        Doc(
            "getSettings",
            "The node's settings",
            ("200", ref("Settings"), "every setting"),
            schemas={"Settings": SETTINGS_SCHEMA},
        ),
    ),
    Route(
        "/v1/settings",
        "PATCH",
        patch_settings,
        ADMIN,
        Doc(
            "updateSettings",
            "Change some settings; an unknown key or a wrong type changes nothing",
            ("200", ref("Settings"), "every setting, after the change"),
            BODY,
            body=ref("SettingsPatch"),
            schemas={"SettingsPatch": SETTINGS_PATCH},
        ),
    ),
    Route(
        "/v1/tokens",
        "GET",
        list_tokens,
        ADMIN,
        Doc(
            "listTokens",
            "The named API tokens (never their secrets)",
            ("200", ref("TokenList"), "the tokens, by name"),
        ),
    ),
    Route(
        "/v1/tokens",
        "POST",
        add_token,
        ADMIN,
        Doc(
            "createToken",
            "Make a scoped token, maybe limited to some contacts; the secret is shown once",
            ("201", ref("CreatedToken"), "the token and its secret"),
            {
                **BODY,
                "404": "a contact it is limited to is not a PeerID or a contact's name",
                "422": "a token with that name exists, or there are too many tokens",
            },
            body=ref("NewToken"),
            schemas={"NewToken": NEW_TOKEN},
        ),
    ),
    Route(
        "/v1/tokens/{name}",
        "DELETE",
        delete_token,
        ADMIN,
        Doc(
            "revokeToken",
            "Revoke a named token: it stops working at once",
            ("204", None, "revoked"),
            NOT_FOUND,
            parameters=(path_param("name", TOKEN_NAME, "the token's name"),),
        ),
    ),
)
