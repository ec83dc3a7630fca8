"""The route rows of the profile and the handle directory (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers_profile import (
    DIRECTORY_PARAMETERS,
    PROFILE_PATCH,
    PROFILE_SCHEMAS,
    clear_profile,
    find_handle,
    get_profile,
    patch_profile,
)
from p2pdm.api.routes_common import ADMIN, BODY, READ
from p2pdm.api.schema import Doc, Route, ref

__all__ = ["PROFILE_ROUTES"]


PROFILE_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/profile",
        "GET",
        get_profile,
        READ,
        Doc(
            "getProfile",
            "The profile this node publishes in its signed record (none until set)",
            ("200", ref("Profile"), "the profile; published is false when none is set"),
            schemas=PROFILE_SCHEMAS,
        ),
    ),
    Route(
        "/v1/profile",
        "PATCH",
        patch_profile,
        ADMIN,
        Doc(
            "updateProfile",
            "Set some profile fields ('' clears one) and republish the record",
            ("200", ref("Profile"), "the profile after the change"),
            {
                **BODY,
                "422": "a handle that cannot be claimed (look-alike characters, length), "
                "a bio too long, or a picture that is unreadable, too large or a "
                "decompression bomb: nothing changed",
            },
            body=ref("ProfilePatch"),
            schemas={"ProfilePatch": PROFILE_PATCH},
        ),
    ),
    Route(
        "/v1/profile",
        "DELETE",
        clear_profile,
        ADMIN,
        Doc(
            "clearProfile",
            "Stop publishing a profile: the record carries none, the handle is not provided",
            ("204", None, "cleared"),
        ),
    ),
    Route(
        "/v1/directory",
        "GET",
        find_handle,
        READ,
        Doc(
            "findHandle",
            "Every checked claimant of a handle, likeliest first (contacts, then the "
            "longest seen); a claim is not proof: compare safety numbers",
            ("200", ref("Directory"), "the claimants (maybe none)"),
            {
                "422": "a handle that cannot be claimed",
                "503": "not_connected: the node is not on the network, so it cannot look",
            },
            parameters=DIRECTORY_PARAMETERS,
        ),
    ),
)
