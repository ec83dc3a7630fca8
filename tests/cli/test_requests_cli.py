"""``p2pdm block|unblock|requests`` against a running node's API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Running, assert_one_error_line, cli, running_pair
from tests.conftest import deliver


def _request(alice: Running, bob: Running, text: str) -> tuple[str, str]:
    """Alice, whom Bob does not know, writes to him: a request. Returns Bob's
    ``--home`` option."""
    alice.node.add_contact_from_invite(bob.node.invite(), "bob")
    alice.node.send_text(bob.node.peer_id, text)
    deliver(alice.node, bob.node)
    return ("--home", str(bob.home.path))


async def test_requests_listed_accepted_and_the_contact_is_writable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        home = _request(alice, bob, "hi bob, it's alice from the bakery")
        peer = str(alice.node.peer_id)
        code, out, err = await cli(capsys, *home, "requests")
        assert (code, err) == (0, "")
        assert peer in out and "hi bob, it's alice from the bakery" in out
        code, out, err = await cli(capsys, *home, "contacts", "add", peer)
        assert (code, err) == (0, "")
        # She wrote first: her keys came with her message, nothing is missing.
        assert "not known yet" not in out
        code, out, _ = await cli(capsys, *home, "requests")
        assert out.strip() == "No message requests."
        code, _, err = await cli(capsys, *home, "requests", "decline", peer)
        assert code != 0
        assert_one_error_line(err, "no message request")


async def test_a_request_is_read_and_accepted_by_the_fingerprint_shown_with_a_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        alice.node.send_text(bob.node.peer_id, "hi bob, it's alice from the bakery")
        deliver(alice.node, bob.node)
        home = ("--home", str(bob.home.path))
        short = str(alice.node.peer_id)[-8:]
        # What inbox and requests show for her is what the commands take.
        code, out, err = await cli(capsys, *home, "read", short)
        assert (code, err) == (0, "") and "it's alice from the bakery" in out
        code, out, err = await cli(capsys, *home, "read", f"~{short}")
        assert (code, err) == (0, "") and f"~{short}  hi bob, it's alice" in out
        code, _, err = await cli(capsys, *home, "requests", "accept", "nobody")
        assert code != 0
        assert_one_error_line(err, "no message request from 'nobody'", "requests` lists them")
        code, _, err = await cli(capsys, *home, "requests", "decline", short, "--name", "Al")
        assert code != 0
        assert_one_error_line(err, "--name goes with accept")
        code, out, err = await cli(capsys, *home, "requests", "accept", f"~{short}", "--name", "Al")
        assert (code, err) == (0, "") and out.startswith("Accepted: Al (")
        [contact] = bob.node.contacts()
        assert (contact.peer_id, contact.name) == (alice.node.peer_id, "Al")
        assert bob.node.requests() == []
        code, out, err = await cli(capsys, *home, "read", "al")
        assert (code, err) == (0, "") and "it's alice from the bakery" in out


async def test_block_refuses_sends_with_one_line_and_unblock_lifts_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        home = ("--home", str(alice.home.path))
        code, out, err = await cli(capsys, *home, "block", "bob")
        assert (code, err) == (0, "") and "Blocked bob" in out
        code, out, err = await cli(capsys, *home, "block", "bob")
        assert (code, err) == (0, "") and "bob" in out and "blocked already" in out
        code, out, _ = await cli(capsys, *home, "block")
        assert "bob" in out and str(bob.node.peer_id) in out
        code, _, err = await cli(capsys, *home, "send", "bob", "hello?")
        assert code != 0
        assert_one_error_line(err, "you blocked bob; unblock them to write to them")
        code, out, err = await cli(capsys, *home, "unblock", "bob")
        assert (code, err) == (0, "") and alice.node.blocked() == []
        code, _, err = await cli(capsys, *home, "requests", "accept")
        assert code != 0
        assert_one_error_line(err, "requests accept PEERID")


async def test_a_request_shows_and_is_accepted_by_the_name_its_sender_goes_by(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.update_settings({"name": "Alice Baker"})
        home = _request(alice, bob, "hi bob, it's alice from the bakery")
        shown = f"Alice Baker ~{alice.node.peer_id.short()}"
        code, out, err = await cli(capsys, *home, "requests")
        assert (code, err) == (0, "") and shown in out
        code, out, err = await cli(capsys, *home, "inbox")
        assert (code, err) == (0, "") and f"{shown} (request)" in out
        # The name the list shows reads the request too, as it accepts it;
        # its lines are named as the list names the sender.
        code, out, err = await cli(capsys, *home, "read", "alice baker")
        assert (code, err) == (0, "") and f"{shown}  hi bob, it's alice" in out
        code, out, err = await cli(capsys, *home, "requests", "accept", "alice baker")
        assert (code, err) == (0, "") and "Alice Baker" in out and "is now a contact" in out
        contact = bob.node.store.get_contact(alice.node.peer_id)
        assert contact is not None and contact.name == "Alice Baker"
        assert contact.name_from_invite  # a name it gave itself, shown as such


async def test_a_request_is_answered_by_a_unique_start_of_its_peer_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        home = _request(alice, bob, "hello")
        start = str(alice.node.peer_id)[:14]
        code, _, err = await cli(capsys, *home, "requests", "decline", start[:8])
        assert code != 0  # "12D3KooW" names every PeerID
        assert_one_error_line(err, "no message request")
        code, _, err = await cli(capsys, *home, "requests", "decline", start)
        assert (code, err) == (0, "") and bob.node.requests() == []


async def test_read_lines_up_with_the_authors_shown_also_for_a_stranger_by_peer_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite(), "Bobby Baker")
        code, _, err = await cli(
            capsys, "--home", str(alice.home.path), "send", "bobby baker", "hi"
        )
        assert (code, err) == (0, ""), err
        code, out, err = await cli(capsys, "--home", str(alice.home.path), "read", "Bobby Baker")
        assert (code, err) == (0, "")
        [line] = out.splitlines()
        assert " you  hi  [" in line  # only you wrote: not padded to the contact's name
        deliver(alice.node, bob.node)  # Bob does not know her: a request
        home = ("--home", str(bob.home.path))
        peer = str(alice.node.peer_id)
        short = alice.node.peer_id.short()
        code, out, err = await cli(capsys, *home, "read", peer)
        assert (code, err) == (0, "")
        [line] = out.splitlines()
        assert f" ~{short}  hi" in line  # named as inbox names her, by PeerID too
        code, _, err = await cli(capsys, *home, "send", peer, "hello alice")
        assert (code, err) == (0, ""), err
        code, out, err = await cli(capsys, *home, "read", peer)
        theirs, mine = out.splitlines()
        assert f" ~{short}  hi" in theirs
        assert f" you{' ' * (len(short) - 2)}  hello alice  [" in mine  # under her name


async def test_a_stranger_is_blocked_and_unblocked_by_the_fingerprint_shown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        home = _request(alice, bob, "hello")
        short = f"~{alice.node.peer_id.short()}"
        code, out, err = await cli(capsys, *home, "block", short)
        assert (code, err) == (0, "") and out.startswith(f"Blocked {short} (")
        assert [b.peer_id for b in bob.node.blocked()] == [alice.node.peer_id]
        assert bob.node.requests() == []  # blocking a stranger deletes its request
        code, out, err = await cli(capsys, *home, "block", short)
        assert (code, err) == (0, "") and "blocked already" in out
        # The name its request went by left with the request: the fingerprint stays.
        code, _, err = await cli(capsys, *home, "unblock", "alice")
        assert code != 0
        assert_one_error_line(err, "'alice'", "listed by its fingerprint: `p2pdm block`")
        code, out, err = await cli(capsys, *home, "unblock", short)
        assert (code, err) == (0, "") and bob.node.blocked() == []
        assert out.strip() == f"Unblocked {short} ({alice.node.peer_id})."
        code, _, err = await cli(capsys, *home, "unblock", short)
        assert code != 0
        assert_one_error_line(err, f"no request or blocked peer has the fingerprint '{short}'")
        code, _, err = await cli(capsys, *home, "block", "~nobody")
        assert code != 0
        assert_one_error_line(err, "no request or blocked peer has the fingerprint '~nobody'")
