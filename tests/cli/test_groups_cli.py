"""``p2pdm group …``, and ``send``/``read``/``inbox`` on a group, against a recording fake
of the groups API (docs/api.md, "Groups"): what each command sends and how it shows
the answers. The same commands against real nodes are in test_groups_cli_nodes.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from p2pdm.client import Client
from tests.cli.conftest import assert_one_error_line, run

ALICE = "12D3KooWAlice000000000000000000000000000000000000AAAA"
BOB = "12D3KooWBob00000000000000000000000000000000000000BBBB"
CAROL = "12D3KooWCarol000000000000000000000000000000000000CCCC"
GROUP_ID = "0f" * 16
CONVERSATION = "c0" * 16


def _member(
    peer: str, name: str | None, *, admin: bool = False, me: bool = False
) -> dict[str, Any]:
    return {"peer": peer, "name": name, "admin": admin, "me": me}


class FakeGroupsNode:
    """The groups routes as the contract describes them, one group at most, in memory;
    every request is recorded."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []
        self.group: dict[str, Any] | None = None
        self.messages: list[dict[str, Any]] = []
        #: The group is an invitation (from someone who is not a contact).
        self.invitation = False

    def _made(self, name: str, members: list[str]) -> dict[str, Any]:
        names = {"bob": BOB, "carol": CAROL}
        self.group = {
            "id": GROUP_ID,
            "name": name,
            "photo": None,
            "members": [
                _member(ALICE, None, admin=True, me=True),
                *(_member(names[m], m) for m in members),
            ],
            "me_admin": True,
            "state": "active",
            "conversation": CONVERSATION,
            "timer_s": None,
            "log_length": 1,
            "created_at": 1_700_000_000.0,
            "created_by": ALICE,
        }
        return self.group

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body: Any = json.loads(request.content) if request.content else {}
        path = request.url.path
        self.seen.append((request.method, path, body or None))
        group = self.group
        if (request.method, path) == ("POST", "/v1/groups"):
            if "nobody" in body["members"]:
                return _refused(404, "not_found", "no contact named nobody")
            return httpx.Response(201, json=self._made(body["name"], body["members"]))
        if (request.method, path) == ("GET", "/v1/groups"):
            return httpx.Response(200, json={"groups": [group] if group else []})
        if path == "/v1/conversations":
            listed = [] if group is None else [_conversation(group, self.invitation)]
            return httpx.Response(200, json={"conversations": listed})
        if path.endswith("/messages") and path.startswith("/v1/conversations/"):
            return httpx.Response(200, json={"messages": self.messages, "next_before": None})
        if path.endswith("/read"):
            return httpx.Response(200, json={"read": []})
        if path.endswith("/live-location"):
            return httpx.Response(200, json={"live_locations": []})
        if group is None or not path.startswith(("/v1/groups/" + GROUP_ID, "/v1/groups/Bakers")):
            return _refused(404, "not_found", "no group named that")
        if request.method == "DELETE":  # a member removed
            group["members"] = [m for m in group["members"] if m["peer"] != path.split("/")[-1]]
        elif request.method == "PATCH":
            group["name"] = body.get("name", group["name"])
            for peer in body.get("admins", {}).get("add", []):
                next(m for m in group["members"] if m["peer"] == peer)["admin"] = True
        elif path.endswith("/leave"):
            group["state"] = "left"
        return httpx.Response(200, json=group)


def _refused(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


def _conversation(group: dict[str, Any], request: bool = False) -> dict[str, Any]:
    return {
        "id": CONVERSATION,
        "peer": ALICE,
        "name": None,
        "last_message_at_ms": 1_700_000_000_000,
        "unread": 2,
        "request": request,
        "timer_s": 0,
        "muted": False,
        "archived": False,
        "group": {"id": group["id"], "name": group["name"]},
    }


def _message(peer: str, direction: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"m-{len(text)}",
        "conversation_id": CONVERSATION,
        "peer": peer,
        "direction": direction,
        "kind": "text",
        "text": text,
        "sent_at_ms": 1_700_000_000_000,
        "stored_at_ms": 1_700_000_000_000,
        "status": "sent" if direction == "out" else "received",
        "status_detail": "",
        "group": GROUP_ID,
        **extra,
    }


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeGroupsNode]:
    node = FakeGroupsNode()

    def for_home(cls: type[Client], /, home: Any, **_: Any) -> Client:
        return cls("127.0.0.1", 1, "t", transport=httpx.MockTransport(node))

    monkeypatch.setattr(Client, "for_home", classmethod(for_home))
    yield node


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def p2pdm(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    return lambda *argv: run(capsys, "--home", str(tmp_path), *argv)


def test_create_list_and_show_a_group(fake: FakeGroupsNode, p2pdm: Cli) -> None:
    code, out, err = p2pdm("group", "create", "Bakers", "bob", "carol")
    assert (code, err) == (0, "")
    assert fake.seen[-1] == ("POST", "/v1/groups", {"name": "Bakers", "members": ["bob", "carol"]})
    assert "Created Bakers (3 members) with bob, carol." in out and "send Bakers TEXT" in out
    code, out, _ = p2pdm("group", "list")
    assert code == 0
    [row] = [line for line in out.splitlines() if GROUP_ID in line]
    assert row.split()[:4] == ["Bakers", "3", "admin", "active"]
    assert fake.group is not None
    fake.group["me_admin"] = False  # an active member who is no admin says so too
    code, out, _ = p2pdm("group", "list")
    [row] = [line for line in out.splitlines() if GROUP_ID in line]
    assert row.split()[:4] == ["Bakers", "3", "member", "active"]
    fake.group["me_admin"] = True
    fake.messages = [
        _message(ALICE, "out", "rolls at 6", delivery={"members": 2, "delivered": 2, "read": 1})
    ]
    code, out, _ = p2pdm("group", "show", "Bakers")
    assert code == 0
    assert "1 membership change\n" in out
    assert "delivered to 2 of 2, read by 1" in out
    lines = out.splitlines()
    first_member = lines.index(next(line for line in lines if line.startswith("MEMBER"))) + 1
    assert lines[first_member].split()[:2] == ["you", "admin"]  # admins first
    assert any(line.split()[:2] == ["carol", CAROL] for line in lines)


def test_member_changes_name_members_by_name_and_fail_in_one_line(
    fake: FakeGroupsNode, p2pdm: Cli
) -> None:
    code, _, err = p2pdm("group", "create", "Bakers", "bob", "nobody")
    assert code == 1
    assert_one_error_line(err, "no contact named nobody")
    p2pdm("group", "create", "Bakers", "bob", "carol")
    code, out, err = p2pdm("group", "admin", "Bakers", "Bob")
    assert (code, err) == (0, "") and "bob is now an admin of Bakers" in out
    assert fake.seen[-1] == ("PATCH", "/v1/groups/Bakers", {"admins": {"add": [BOB]}})
    code, out, _ = p2pdm("group", "remove", "Bakers", CAROL)
    assert code == 0 and "Removed carol from Bakers (2 members)." in out
    assert fake.seen[-1][:2] == ("DELETE", f"/v1/groups/Bakers/members/{CAROL}")
    code, _, err = p2pdm("group", "remove", "Bakers", "carol")  # not a member any more
    assert code == 1
    assert_one_error_line(err, "carol is not a member of Bakers", "group show Bakers")
    code, out, _ = p2pdm("group", "rename", GROUP_ID, "Night bakers")
    assert code == 0 and "Renamed the group: Night bakers" in out
    code, _, err = p2pdm("group", "leave", "Nobody's group")
    assert code == 1
    assert_one_error_line(err, "no group named that")


def test_send_read_and_inbox_on_a_group_show_its_name_and_authors(
    fake: FakeGroupsNode, p2pdm: Cli
) -> None:
    p2pdm("group", "create", "Bakers", "bob", "carol")
    fake.messages = [  # newest first, as the API pages them
        _message(ALICE, "out", "on my way", delivery={"members": 2, "delivered": 1, "read": 0}),
        _message(CAROL, "in", "bread is up"),
        _message(BOB, "in", "ovens on"),
    ]
    code, out, err = p2pdm("read", "bakers")  # a group's name, compared as names are
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line.split()[2:4] for line in lines] == [
        ["bob", "ovens"],
        ["carol", "bread"],
        ["you", "on"],
    ]
    assert lines[-1].endswith("[delivered to 1 of 2]")
    assert ("POST", f"/v1/conversations/{CONVERSATION}/read", None) in fake.seen
    code, out, _ = p2pdm("inbox")
    assert code == 0
    [row] = [line for line in out.splitlines() if GROUP_ID in line]
    assert row.startswith("Bakers (group)")


def test_inbox_says_how_to_join_a_group_invitation(fake: FakeGroupsNode, p2pdm: Cli) -> None:
    p2pdm("group", "create", "Bakers", "bob")
    fake.invitation = True
    code, out, _ = p2pdm("inbox")
    assert code == 0
    assert any(line.startswith("Bakers (group) (request)") for line in out.splitlines())
    assert "group accept GROUP` joins" in out
    assert "requests accept PEERID" not in out  # that is for a stranger's messages
