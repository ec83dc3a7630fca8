"""A contact named on the command line is looked up once, by the node, with one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import assert_one_error_line, cli, running_node


async def test_an_unknown_name_gives_the_same_line_to_remove_send_read_and_token(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_node(tmp_path / "alice", "alice") as alice:
        a = ("--home", str(alice.home.path))
        errors = set()
        for command in (
            ("contacts", "remove", "nobody"),
            ("send", "nobody", "hello"),
            ("read", "nobody"),
            ("token", "create", "--scope", "read", "--contact", "nobody"),
        ):
            code, out, err = await cli(capsys, *a, *command)
            assert (code, out) == (1, ""), command
            assert_one_error_line(err, "no contact named 'nobody'")
            errors.add(err)
        assert len(errors) == 1, errors
        assert alice.node.store.counts()["outbox"] == 0  # nothing was sent anywhere


async def test_remove_takes_a_name_in_any_case_or_a_peer_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with (
        running_node(tmp_path / "alice", "alice") as alice,
        running_node(tmp_path / "bob", "bob") as bob,
        running_node(tmp_path / "carol", "carol") as carol,
    ):
        a = ("--home", str(alice.home.path))
        alice.node.add_contact_from_invite(bob.node.invite())
        alice.node.add_contact_from_invite(carol.node.invite())
        code, out, err = await cli(capsys, *a, "contacts", "remove", "BOB")
        assert (code, err) == (0, "")
        assert out == f"Removed bob ({bob.node.peer_id}).\n"
        code, out, err = await cli(capsys, *a, "contacts", "remove", str(carol.node.peer_id))
        assert (code, err) == (0, "")
        assert alice.node.contacts() == []
        # A PeerID that is no contact: the node says so, naming it.
        code, out, err = await cli(capsys, *a, "contacts", "remove", str(bob.node.peer_id))
        assert (code, out) == (1, "")
        assert_one_error_line(err, f"no contact {bob.node.peer_id}")
