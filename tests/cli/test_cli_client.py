"""The chat commands (contacts, send, inbox, read) against a node serving its real API.

The node runs in the test's trio loop (hypercorn on 127.0.0.1, SQLite store in
the home); the command line runs in a worker thread, as a separate program
would, and talks to it over HTTP.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import trio

from p2pdm.cli.main import main
from p2pdm.client import (
    API_ADDR_FILE,
    APIError,
    Client,
    parse_api_addr,
    read_api_addr,
    write_api_addr,
)
from p2pdm.core.kinds import UnknownBody
from p2pdm.errors import HomeError, NodeNotRunning
from p2pdm.node.node import DEFAULT_API_PORT
from tests.cli.conftest import (
    P2PDM_BIN,
    WAIT_S,
    assert_one_error_line,
    cli,
    running_node,
    running_pair,
)
from tests.conftest import deliver, free_port, home_with_identity


async def test_chat_between_two_nodes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        a = ("--home", str(alice.home.path))
        b = ("--home", str(bob.home.path))
        alice_id, bob_id = str(alice.node.peer_id), str(bob.node.peer_id)

        code, out, err = await cli(capsys, *a, "contacts", "list")
        assert (code, err) == (0, "")
        assert "No contacts yet" in out

        code, out, err = await cli(capsys, *a, "contacts", "add", bob.node.invite())
        assert (code, err) == (0, "")
        assert out.strip() == f"Added bob ({bob_id})."

        code, out, err = await cli(capsys, *a, "contacts", "list")
        header, row, _, legend = out.splitlines()
        assert legend.startswith("~FINGERPRINT: a name they gave themselves")
        assert header.split() == ["NAME", "PEER", "ID", "ADDED", "LAST", "SEEN"]
        # A name from an invite is shown with the contact's fingerprint.
        assert row.split()[:3] == ["bob", f"~{bob_id[-8:]}", bob_id]

        code, out, err = await cli(capsys, *a, "send", "Bob", "hello", "there")
        assert (code, err) == (0, "")
        assert out.startswith("Message ") and "to Bob: queued." in out
        message_id = out.split()[1]
        assert alice.node.message(message_id)[0].status == "queued"

        code, out, err = await cli(capsys, *a, "read", "bob")
        assert (code, err) == (0, "")
        [line] = out.splitlines()
        assert line.endswith("you  hello there  [queued]")
        # The same conversation by its id.
        [conversation] = alice.node.conversations()
        code, out, err = await cli(capsys, *a, "read", conversation.id.hex())
        assert (code, err) == (0, "")
        [line] = out.splitlines()
        assert line.endswith("you  hello there  [queued]")

        # Bob's side: a message request from a stranger, then read.
        deliver(alice.node, bob.node)
        code, out, err = await cli(capsys, *b, "inbox")
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0].split() == ["CONTACT", "UNREAD", "LAST", "ACTIVITY", "PEER", "ID"]
        # The name her request gives, with the fingerprint she cannot choose.
        assert lines[1].split()[:4] == ["alice", "~" + alice_id[-8:], "(request)", "1"]
        assert lines[1].split()[-1] == alice_id
        # The hint names the home and the stranger as the table shows it, so it
        # works when pasted.
        short = "~" + alice_id[-8:]
        assert f"`p2pdm --home {bob.home.path} requests accept {short} --name NAME`" in out
        assert f"`p2pdm --home {bob.home.path} read {short}` shows it" in out

        code, out, err = await cli(capsys, *b, "read", alice_id)
        assert (code, err) == (0, "")
        [line] = out.splitlines()
        assert line.endswith(f"{alice_id[-8:]}  hello there")
        assert bob.node.conversations()[0].unread == 0

        code, out, err = await cli(capsys, *b, "inbox", "--json")
        [conversation] = json.loads(out)
        assert (conversation["peer"], conversation["unread"]) == (alice_id, 0)

        code, out, err = await cli(capsys, *b, "contacts", "add", alice_id, "--name", "Alice A.")
        assert (code, err) == (0, "")
        assert "Added Alice A." in out
        code, out, err = await cli(capsys, *b, "inbox")
        assert out.splitlines()[1].split()[:2] == ["Alice", "A."]
        assert "(request)" not in out

        code, out, err = await cli(capsys, *a, "contacts", "remove", "bob")
        assert (code, err) == (0, "") and out.strip() == f"Removed bob ({bob_id})."
        assert alice.node.contacts() == []


async def test_refusals_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    async with running_node(tmp_path / "alice", "alice") as alice:
        a = ("--home", str(alice.home.path))
        code, out, err = await cli(capsys, *a, "send", "nobody", "hi")
        assert (code, out) == (1, "")
        assert_one_error_line(err, "no contact named 'nobody'")

        code, out, err = await cli(capsys, *a, "contacts", "add", "p2pdm:not-an-invite")
        assert (code, out) == (1, "")
        assert_one_error_line(err)

        code, out, err = await cli(capsys, *a, "read", "nobody")
        assert (code, out) == (1, "")
        assert_one_error_line(err, "nobody")

        code, out, err = await cli(capsys, *a, "read", "x", "--limit", "0")
        assert code == 2 and "from 1 to 500" in err


async def test_names_that_would_be_ambiguous(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with (
        running_node(tmp_path / "alice", "alice") as alice,
        running_node(tmp_path / "bob", "bob") as bob,
        running_node(tmp_path / "x", "x") as x,
    ):
        a = ("--home", str(alice.home.path))
        bob_id, x_id = str(bob.node.peer_id), str(x.node.peer_id)
        code, out, err = await cli(capsys, *a, "contacts", "add", bob.node.invite())
        assert (code, err) == (0, "")
        # A chosen name that is taken or a PeerID: one line, nothing added.
        for name in ("BOB", bob_id):
            code, out, err = await cli(capsys, *a, "contacts", "add", x_id, "--name", name)
            assert (code, out) == (1, "")
            assert_one_error_line(err, "choose another")
        assert [c.peer_id for c in alice.node.contacts()] == [bob.node.peer_id]
        # X's invite calls X by Bob's PeerID: saved under X's fingerprint, and said so.
        x.node.update_settings({"name": bob_id})
        code, out, err = await cli(capsys, *a, "contacts", "add", x.node.invite())
        assert (code, err) == (0, "")
        assert out.splitlines()[0] == f"Added {x_id[-8:]} ({x_id})."
        assert f"Their invite calls them {bob_id!r}" in out
        for who in ("bob", bob_id):
            code, out, err = await cli(capsys, *a, "send", who, "for Bob")
            assert (code, err) == (0, "")
            assert alice.node.message(out.split()[1])[0].peer == bob.node.peer_id
            code, out, err = await cli(capsys, *a, "read", who)
            assert (code, err) == (0, "")
            assert len(out.splitlines()) >= 1 and all(
                "for Bob" in line for line in out.splitlines()
            )
        assert alice.node.store.outbox_for(x.node.peer_id) == []
        code, out, err = await cli(capsys, *a, "send", "bobby", "hi")
        assert (code, out) == (1, "")
        assert_one_error_line(err, "no contact named 'bobby'")
        code, out, err = await cli(capsys, *a, "read", "bobby")
        assert (code, out) == (1, "")
        assert_one_error_line(err, "bobby")


async def test_a_node_with_another_token_is_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_node(tmp_path / "alice", "alice", token="someone-elses") as alice:
        assert alice.home.api_token() != "someone-elses"
        code, out, err = await cli(capsys, "--home", str(alice.home.path), "inbox")
        assert (code, out) == (1, "")
        assert_one_error_line(err, "did not accept", "api_token")


async def test_control_characters_never_reach_the_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        bob.node.add_contact_from_invite(alice.node.invite(), "alice\x1b]0;owned\x07")
        bob.node.send_text(alice.node.peer_id, "hi\x1b[2J\u202eevil\nsecond line")
        deliver(bob.node, alice.node)
        code, out, err = await cli(capsys, "--home", str(alice.home.path), "read", "bob")
        assert (code, err) == (0, "")
        assert "\x1b" not in out and "\u202e" not in out
        first, second = out.splitlines()
        assert first.endswith("bob  hi\ufffd[2J\ufffdevil")
        assert second.strip() == "second line"
        assert second.index("second") == first.index("hi")
        code, out, err = await cli(capsys, "--home", str(bob.home.path), "contacts", "list")
        assert "\x1b" not in out and "\x07" not in out


async def test_a_message_of_an_unknown_kind_reads_as_unsupported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        bob.node.add_contact_from_invite(alice.node.invite(), "alice")
        # What a newer version sends: a kind this one has no module for.
        bob.node.messenger._send(alice.node.peer_id, UnknownBody("re\naction", {"e": "x"}))
        bob.node.send_text(alice.node.peer_id, "and a text")
        deliver(bob.node, alice.node)
        code, out, err = await cli(capsys, "--home", str(alice.home.path), "read", "bob")
        assert (code, err) == (0, "")
        first, second = out.splitlines()
        assert first.endswith("bob  [unsupported message: re\ufffdaction]")
        assert second.endswith("bob  and a text")


# --- no node running ---------------------------------------------------------------


@pytest.mark.parametrize("command", [["inbox"], ["send", "bob", "hi"], ["contacts", "list"]])
def test_no_node_running_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    home = home_with_identity(tmp_path, "alice")
    for _ in range(2):  # never ran (no token), then ran and stopped (stale address)
        code = main(["--home", str(tmp_path), *command])
        out, err = capsys.readouterr()
        assert (code, out) == (1, "")
        assert err == (
            f"p2pdm: error: no p2pdm node is running for {home.path}; "
            f"start one with `p2pdm --home {home.path} run`\n"
        )
        home.api_token()
        write_api_addr(home, "127.0.0.1", free_port())


def test_no_node_running_from_the_real_program(tmp_path: Path) -> None:
    home_with_identity(tmp_path, "alice")
    done = subprocess.run(
        [str(P2PDM_BIN), "--home", str(tmp_path), "inbox"],
        capture_output=True,
        text=True,
        timeout=WAIT_S * 3,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert_one_error_line(
        done.stderr, "no p2pdm node is running", f"start one with `p2pdm --home {tmp_path} run`"
    )


# --- the client on its own --------------------------------------------------------------


def test_api_address_file(tmp_path: Path) -> None:
    home = home_with_identity(tmp_path, "alice")
    assert read_api_addr(home) == ("127.0.0.1", DEFAULT_API_PORT)
    write_api_addr(home, "::1", 4781)
    assert (tmp_path / API_ADDR_FILE).read_text() == "[::1]:4781\n"
    assert read_api_addr(home) == ("::1", 4781)
    assert parse_api_addr("localhost:1") == ("localhost", 1)
    for bad in ["", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "example.com:80", "[::]:1"]:
        with pytest.raises(HomeError):
            parse_api_addr(bad)
    (tmp_path / API_ADDR_FILE).write_text("evil.example:80\n")
    home.api_token()
    with pytest.raises(HomeError, match="not a loopback address; delete it"):
        Client.for_home(home)


def test_a_public_api_address_says_what_to_use_instead() -> None:
    with pytest.raises(
        HomeError, match=r"'0\.0\.0\.0', not a loopback address; use 127\.0\.0\.1:4780"
    ):
        parse_api_addr("0.0.0.0:4780", "the API address", any_port=True)


async def test_client_calls_and_errors(tmp_path: Path) -> None:
    async with running_node(tmp_path / "alice", "alice") as alice:

        def calls() -> None:
            with Client.for_home(alice.home) as client:
                assert client.node()["peer_id"] == str(alice.node.peer_id)
                assert client.settings()["name"] == "alice"
                assert client.update_settings({"read_receipts": False})["read_receipts"] is False
                with pytest.raises(APIError) as caught:
                    client.send("nobody", "hi")
                assert (caught.value.status, caught.value.code) == (404, "not_found")
                assert str(caught.value) == "no contact named 'nobody'"
                with pytest.raises(APIError, match="unknown setting 'colour'"):
                    client.update_settings({"colour": "red"})
                # A name is one path segment, whatever characters it holds.
                with pytest.raises(
                    APIError, match=re.escape("no contact named 'a name?odd#chars%'")
                ):
                    client.messages("a name?odd#chars%", 1)

        with trio.fail_after(WAIT_S):
            await trio.to_thread.run_sync(calls, abandon_on_cancel=True)  # type: ignore[call-arg]

    with pytest.raises(NodeNotRunning, match=r"start one with `p2pdm --home .* run`"):
        Client.for_home(alice.home).node()
