"""``p2pdm profile`` (show, ``set``, ``clear``) and ``p2pdm find HANDLE``.

Clients of the running node's local API, like the chat commands. A picture
given with ``--avatar`` is shrunk here, on the user's machine, to a small
WebP without metadata (the node does the same again): any photo fits the
API's body cap that way.
"""

from __future__ import annotations

import argparse
import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from p2pdm.cli.chat import print_table, safe_text
from p2pdm.client import Client
from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError
from p2pdm.node.avatar import make_avatar

__all__ = ["find", "find_arguments", "profile", "profile_arguments"]

EXIT_OK: Final = 0
#: Largest picture file read for --avatar: a big camera photo; it is shrunk here.
MAX_PICTURE_FILE_BYTES: Final = 64 << 20
#: Most pixels of a picture file shrunk here: a 48-megapixel phone photo
#: (JPEG is decoded at a fraction of its size); Pillow refuses more anyway.
MAX_PICTURE_PIXELS: Final = 64_000_000
#: How long `p2pdm find` waits for the node: a lookup takes at most 16 s
#: (two phases of HANDLE_LOOKUP_TIMEOUT in p2pdm/services/limits.py).
FIND_TIMEOUT_S: Final = 30.0


def profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the profile as JSON")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    change = actions.add_parser(
        "set",
        help="publish or change your profile (opt-in; '' clears a field)",
        description="Publish or change the profile in your signed DHT record, e.g. "
        "`p2pdm profile set --handle alice.k --name 'Alice K' --avatar photo.jpg`. "
        "Anyone can then find you by the handle, and anyone can claim the same handle: "
        "people check you by your safety number.",
    )
    change.add_argument("--handle", help="3 to 30 of a-z, 0-9, '.' and '_'")
    change.add_argument("--name", help="display name")
    change.add_argument("--bio", help="a line or two about you")
    change.add_argument("--avatar", metavar="PICTURE", help="a JPEG, PNG, WebP or GIF file")
    change.add_argument("--no-avatar", action="store_true", help="remove the avatar")
    actions.add_parser("clear", help="stop publishing a profile")


def find_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("handle", metavar="HANDLE", help="the exact handle (no prefix search)")
    parser.add_argument("--json", action="store_true", help="print the claimants as JSON")


def _picture(path: str) -> bytes:
    file = Path(path)
    if file.stat().st_size > MAX_PICTURE_FILE_BYTES:
        raise ConfigError(f"{path}: a picture of at most {MAX_PICTURE_FILE_BYTES >> 20} MiB")
    return make_avatar(
        file.read_bytes(), max_input_bytes=MAX_PICTURE_FILE_BYTES, max_pixels=MAX_PICTURE_PIXELS
    )


def profile(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    action = getattr(args, "action", None)
    changes: dict[str, Any] = {}
    if action == "set":
        changes = {k: getattr(args, k) for k in ("handle", "name", "bio") if getattr(args, k)}
        changes.update({k: "" for k in ("handle", "name", "bio") if getattr(args, k) == ""})
        if args.avatar and args.no_avatar:
            raise ConfigError("give --avatar or --no-avatar, not both")
        if args.avatar:
            changes["avatar"] = _picture(args.avatar)
        elif args.no_avatar:
            changes["avatar"] = b""
        if not changes:
            raise ConfigError("nothing to set: give --handle, --name, --bio or --avatar")
    with Client.for_home(home) as node:
        if action == "set":
            shown = node.update_profile(**changes)
        elif action == "clear":
            node.clear_profile()
            shown = node.profile()
        else:
            shown = node.profile()
    if args.json:
        print(json.dumps(shown, ensure_ascii=False), file=out)
        return EXIT_OK
    if not shown["published"]:
        print("No profile published: nobody can find you by a handle.", file=out)
        print("Publish one with `p2pdm profile set --handle NAME`.", file=out)
        return EXIT_OK
    avatar = shown["avatar"]
    size = f"{len(base64.b64decode(avatar))} bytes, {shown['avatar_type']}" if avatar else "none"
    rows = [
        ["handle", safe_text(shown["handle"]) or "(none: not findable)"],
        ["name", safe_text(shown["name"])],
        ["bio", safe_text(shown["bio"])],
        ["avatar", size],
        ["fingerprint", shown["fingerprint"]],
    ]
    print_table(["PROFILE", ""], rows, out)
    return EXIT_OK


def find(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home, timeout_s=FIND_TIMEOUT_S) as node:
        found = node.find(args.handle)
    if args.json:
        print(json.dumps(found, ensure_ascii=False), file=out)
        return EXIT_OK
    claimants = found["claimants"]
    if not claimants:
        print(f"Nobody claims {found['handle']!r} (handles match exactly).", file=out)
        return EXIT_OK
    rows = [
        [
            c["relation"],
            safe_text(c["name"]) or "-",
            c["fingerprint"],
            _age(c["seen_for_s"]),
            c["peer_id"],
        ]
        for c in claimants
    ]
    print_table(["WHO", "NAME", "FINGERPRINT", "SEEN FOR", "PEERID"], rows, out)
    print(
        f"{len(claimants)} claim {found['handle']!r}; anyone can claim a handle. "
        "Compare the safety number with the person before trusting one.",
        file=out,
    )
    return EXIT_OK


def _age(seconds: int) -> str:
    if seconds < 60:
        return "new"
    return str(timedelta(seconds=seconds - seconds % 60)).removesuffix(":00")
