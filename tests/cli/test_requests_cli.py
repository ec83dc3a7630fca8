"""``p2pdm block|unblock|requests`` against a running node's API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import assert_one_error_line, cli, running_pair
from tests.conftest import deliver


async def test_requests_listed_accepted_and_the_contact_is_writable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        alice.node.send_text(bob.node.peer_id, "hi bob, it's alice from the bakery")
        deliver(alice.node, bob.node)
        home = ("--home", str(bob.home.path))
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
        assert (code, err) == (0, "") and "it's alice from the bakery" in out
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
        code, out, _ = await cli(capsys, *home, "block")
        assert "bob" in out and str(bob.node.peer_id) in out
        code, _, err = await cli(capsys, *home, "send", "bob", "hello?")
        assert code != 0
        assert_one_error_line(err, "you blocked ", "; unblock them to write to them")
        code, out, err = await cli(capsys, *home, "unblock", "bob")
        assert (code, err) == (0, "") and alice.node.blocked() == []
        code, _, err = await cli(capsys, *home, "requests", "accept")
        assert code != 0
        assert_one_error_line(err, "requests accept PEERID")
