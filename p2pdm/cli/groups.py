"""``p2pdm group …``: small group chats, through the running node's local API.

How this works: like the other chat commands, each action is a client of
``/v1/groups`` (docs/api.md, "Groups"); a group is named by its id or, when
no other group has it, its name, and the node decides which group that is.
Members are named as contacts are (name or PeerID); for ``remove`` and
``admin`` the member is looked up among the group's own members first, so a
member who is not a contact can be named by PeerID and a wrong name fails
with one line before anything is sent. Sending and reading use the ordinary
``p2pdm send GROUP TEXT`` and ``p2pdm read GROUP``.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from p2pdm import hints
from p2pdm.cli.chat import (
    _print_json,
    _short,
    _when,
    contact_name_key,
    delivery_words,
    print_table,
    safe_text,
)
from p2pdm.cli.conversation import TIMER_WORDS
from p2pdm.client import Client, Group
from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError

__all__ = ["group", "group_arguments", "member_name"]

EXIT_OK: Final = 0
#: Own messages `group show` looks through for the newest one's delivery figures.
LAST_MESSAGE_PAGE: Final = 20
#: What a group's state means, as `group list` and `group show` say it.
_STATES: Final = {
    "active": "active",
    "request": "invitation",
    "left": "you left",
    "removed": "you were removed",
}


def group_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Small group chats (up to 32 people). Write with `p2pdm send GROUP TEXT`, "
        "read with `p2pdm read GROUP`. GROUP is the group's name or id."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="start a group with some of your contacts")
    create.add_argument("name", metavar="NAME")
    create.add_argument("members", metavar="MEMBER", nargs="+", help="contact name or PeerID")
    add = actions.add_parser("add", help="add members (admins only)")
    add.add_argument("group", metavar="GROUP")
    add.add_argument("members", metavar="MEMBER", nargs="+", help="contact name or PeerID")
    remove = actions.add_parser("remove", help="remove a member (admins only)")
    remove.add_argument("group", metavar="GROUP")
    remove.add_argument("member", metavar="MEMBER", help="name or PeerID")
    leave = actions.add_parser("leave", help="leave a group")
    leave.add_argument("group", metavar="GROUP")
    listing = actions.add_parser("list", help="your groups and invitations")
    listing.add_argument("--json", action="store_true", help="print the API's JSON")
    show = actions.add_parser("show", help="members, admins, and the last message's delivery")
    show.add_argument("group", metavar="GROUP")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    rename = actions.add_parser("rename", help="rename a group (admins only)")
    rename.add_argument("group", metavar="GROUP")
    rename.add_argument("new_name", metavar="NEWNAME")
    photo = actions.add_parser(
        "photo", help="set the group's photo from a picture (--remove: no photo; admins only)"
    )
    photo.add_argument("group", metavar="GROUP")
    photo.add_argument(
        "file", metavar="FILE", nargs="?", help="a JPEG, PNG, WebP or GIF picture (made square)"
    )
    photo.add_argument("--remove", action="store_true", help="remove the group's photo")
    admin = actions.add_parser("admin", help="make a member an admin (--remove: no longer)")
    admin.add_argument("group", metavar="GROUP")
    admin.add_argument("member", metavar="MEMBER", help="name or PeerID")
    admin.add_argument("--remove", action="store_true", help="take the admin right away")
    for answer, what in (
        ("accept", "accept an invitation to a group"),
        ("decline", "decline an invitation to a group (nobody is told)"),
    ):
        actions.add_parser(answer, help=what).add_argument("group", metavar="GROUP")


def group(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        if args.action == "list":
            found = node.groups()
            if args.json:
                _print_json(found, out)
            else:
                _print_groups(found, out)
            return EXIT_OK
        if args.action == "show":
            shown = node.group(args.group)
            last = _last_own_message(node, shown)
            if args.json:
                _print_json(shown, out)
            else:
                _print_group(shown, last, out)
            return EXIT_OK
        changed, said = _change(node, args, home)
    print(said.format(group=_title(changed), name=safe_text(changed["name"])), file=out)
    return EXIT_OK


def _change(node: Client, args: argparse.Namespace, home: Home) -> tuple[Group, str]:
    """Do what ``args`` asks of a group; returns the group after it and what to say."""
    action = args.action
    if action == "create":
        made = node.create_group(args.name, args.members)
        others = [member_name(m) for m in made["members"] if not m["me"]]
        send = hints.command(home.path, "send", _quoted(made["name"]), "TEXT")
        return made, f"Created {{group}} with {', '.join(others)}. Write to it: `{send}`."
    if action == "add":
        added = node.add_group_members(args.group, args.members)
        return added, f"Added {', '.join(safe_text(m) for m in args.members)} to {{group}}."
    if action == "remove":
        member = _member(node.group(args.group), args.member)
        left = node.remove_group_member(args.group, member["peer"])
        return left, f"Removed {member_name(member)} from {{group}}."
    if action == "leave":
        return node.leave_group(args.group), "You left {group}."
    if action == "rename":
        return node.update_group(args.group, name=args.new_name), "Renamed the group: {group}."
    if action == "photo":
        return _photo(node, args)
    if action == "admin":
        member = _member(node.group(args.group), args.member)
        if args.remove:
            changed = node.update_group(args.group, remove_admins=[member["peer"]])
            return changed, f"{member_name(member)} is no longer an admin of {{group}}."
        changed = node.update_group(args.group, add_admins=[member["peer"]])
        return changed, f"{member_name(member)} is now an admin of {{group}}."
    if action == "accept":
        return node.accept_group(args.group), "You joined {group}."
    return node.decline_group(args.group), "Declined the invitation to {group}."


def _photo(node: Client, args: argparse.Namespace) -> tuple[Group, str]:
    """``group photo GROUP FILE`` or ``group photo GROUP --remove``."""
    if args.remove == (args.file is not None):
        raise ConfigError("give a picture FILE or --remove, not both or neither")
    if args.remove:
        return node.set_group_photo(args.group, None), "Removed the photo of {name}."
    path = Path(args.file)
    if not path.is_file():
        raise ConfigError(f"no file {safe_text(str(path))}")
    changed = node.set_group_photo_file(args.group, path)
    size = (changed.get("photo") or {}).get("size", 0)
    # One parenthesis only: the group's name, then what was made of the picture.
    return changed, f"Set the photo of {{name}}: a {size}-byte square picture, metadata removed."


def _member(found: Group, who: str) -> Mapping[str, Any]:
    """The member of ``found`` named ``who`` (PeerID, contact name, or ``me``/``you``);
    raises ConfigError for anyone else."""
    typed = who.strip()
    for member in found["members"]:
        if typed == member["peer"]:
            return member
    key = contact_name_key(typed)
    for member in found["members"]:
        if member["name"] is not None and contact_name_key(member["name"]) == key:
            return member
    raise ConfigError(
        f"{safe_text(who)} is not a member of {safe_text(found['name'])}; "
        f"`p2pdm group show {_quoted(found['name'])}` lists them"
    )


def member_name(member: Mapping[str, Any]) -> str:
    """How a member is shown: ``you``, the contact's name, or the end of the PeerID."""
    if member.get("me"):
        return "you"
    name = member.get("name")
    return safe_text(name) if name else "~" + _short(member["peer"])


def _quoted(name: str) -> str:
    return shlex.quote(safe_text(name))


def _title(found: Mapping[str, Any]) -> str:
    return f"{safe_text(found['name'])} ({len(found['members'])} members)"


def _print_groups(found: Sequence[Group], out: TextIO) -> None:
    if not found:
        print("No groups yet. Start one with `p2pdm group create NAME MEMBER...`.", file=out)
        return
    rows = [
        [
            safe_text(g["name"]),
            str(len(g["members"])),
            _role(g),
            _STATES.get(g["state"], g["state"]),
            g["id"],
        ]
        for g in found
    ]
    print_table(["GROUP", "MEMBERS", "YOU", "STATE", "ID"], rows, out)
    if any(g["state"] == "request" for g in found):
        print(
            "\ninvitation: someone added you; `p2pdm group accept GROUP` joins, "
            "`p2pdm group decline GROUP` declines.",
            file=out,
        )


def _role(found: Group) -> str:
    """What you are in a group, as `group list` says it: ``admin``, ``member``, or
    ``invited`` for an invitation; blank once you left or were removed (STATE says so)."""
    if found["state"] == "request":
        return "invited"
    if found["state"] != "active":
        return ""
    return "admin" if found["me_admin"] else "member"


def _last_own_message(node: Client, found: Group) -> Mapping[str, Any] | None:
    """The newest message this node sent to the group, among the last few; or
    None (the group's notices of our own changes are not sent)."""
    page = node.messages(found["conversation"], limit=LAST_MESSAGE_PAGE)
    sent = (m for m in page["messages"] if m["direction"] == "out" and not m.get("notice"))
    return next(sent, None)


def _print_group(found: Group, last: Mapping[str, Any] | None, out: TextIO) -> None:
    state = _STATES.get(found["state"], found["state"])
    fields = [
        ("Group", safe_text(found["name"])),
        ("Id", found["id"]),
        ("State", state),
        ("Created", _when(int(found["created_at"] * 1000))),
        (
            "Log",
            f"{found['log_length']} membership change{'' if found['log_length'] == 1 else 's'}",
        ),
    ]
    if found["timer_s"]:
        word = next((w for w, s in TIMER_WORDS.items() if s == found["timer_s"]), None)
        shown = word or f"{found['timer_s']} s"
        fields.append(("Timer", f"messages disappear {shown} after reading"))
    photo = found.get("photo")
    if photo is not None:
        fields.append(("Photo", f"{photo['type']}, {photo['size']} bytes"))
    if last is not None:
        figures = delivery_words(last) or last["status"]
        fields.append(("Last sent", f"{_when(last['stored_at_ms'])}: {figures}"))
    for label, value in fields:
        print(f"{label:<10} {value}", file=out)
    print(file=out)
    admins_first = sorted(found["members"], key=lambda m: (not m["admin"], not m["me"]))
    rows = [[member_name(m), "admin" if m["admin"] else "", m["peer"]] for m in admins_first]
    print_table(["MEMBER", "ROLE", "PEER ID"], rows, out)
