"""The route rows of contacts (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers import NEW_CONTACT, add_contact, delete_contact, list_contacts
from p2pdm.api.routes_common import ADMIN, BODY, NOT_FOUND, READ
from p2pdm.api.schema import NAME, Doc, Route, path_param, ref

__all__ = ["CONTACT_ROUTES"]


CONTACT_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/contacts",
        "GET",
        list_contacts,
        READ,
        Doc("listContacts", "All contacts, by name", ("200", ref("ContactList"), "the contacts")),
    ),
    Route(
        "/v1/contacts",
        "POST",
        add_contact,
        ADMIN,
        Doc(
            "addContact",
            "Add or rename a contact from an invite or a PeerID; accepts its message requests",
            ("201", ref("AddedContact"), "the contact as stored"),
            {
                "400": "the body is malformed, or the invite is damaged or not signed by its key",
                **BODY,
                "409": "the chosen name is a PeerID or another contact's name",
                "422": "the invite has expired, or the contact cannot be added",
            },
            body=ref("NewContact"),
            schemas={"NewContact": NEW_CONTACT},
        ),
    ),
    Route(
        "/v1/contacts/{peer_id}",
        "DELETE",
        delete_contact,
        ADMIN,
        Doc(
            "deleteContact",
            "Forget a contact (its conversation stays)",
            ("204", None, "deleted"),
            NOT_FOUND,
            parameters=(
                path_param(
                    "peer_id",
                    NAME,
                    "the contact's PeerID, or its name (ignoring case); "
                    "text that is a PeerID always means that PeerID",
                ),
            ),
        ),
    ),
)
