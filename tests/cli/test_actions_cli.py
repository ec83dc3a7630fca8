"""`p2pdm react`, `reply`, `forward`, `edit`, `unsend`, `delete --for-me`, and how
`p2pdm read` shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import assert_one_error_line, cli, running_pair
from tests.conftest import deliver


async def test_actions_from_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        a = ("--home", str(alice.home.path))
        b = ("--home", str(bob.home.path))
        for me, other, name in ((alice, bob, "bob"), (bob, alice, "alice")):
            me.node.add_contact_from_invite(other.node.invite(), name)
        first = alice.node.send_text(bob.node.peer_id, "lunch at noon?").id.hex()
        deliver(alice.node, bob.node)

        code, out, err = await cli(capsys, *b, "reply", "alice", first, "yes", "please")
        assert (code, err) == (0, "") and out.startswith("Reply ")
        answer = out.split()[1]
        code, out, err = await cli(capsys, *a, "react", first, "")  # Alice never reacted
        assert (code, err) == (0, "")
        assert out.strip() == f"You had no reaction on {first}: nothing to take back."
        assert alice.node.store.outbox_for(bob.node.peer_id) == []  # and nothing was sent
        code, out, err = await cli(capsys, *b, "react", first, "👀")
        code, out, err = await cli(capsys, *b, "react", first, "")
        assert (code, err, out.strip()) == (0, "", f"Took your reaction back on {first}.")
        code, out, err = await cli(capsys, *b, "react", first, "👍")
        assert (code, err, out.strip()) == (0, "", f"Reacted 👍 on {first}.")
        deliver(bob.node, alice.node)
        code, out, err = await cli(capsys, *a, "edit", first, "lunch at one?")
        assert (code, err) == (0, "")
        code, out, err = await cli(capsys, *a, "read", "bob")
        assert (code, err) == (0, "")
        assert "lunch at one? (edited)  👍1" in out
        assert "> lunch at one?" in out and "yes please" in out

        # Bob forwards his answer to Alice again: a new message of his, no reply.
        code, out, err = await cli(capsys, *b, "forward", answer, "alice")
        assert (code, err) == (0, "")
        assert out.startswith(f"Forwarded {answer} to alice as ") and out.strip().endswith(
            ": queued."
        )
        copy = out.split(" as ")[1].split(":")[0]
        assert copy != answer and bob.node.message(copy)[0].direction.value == "out"
        deliver(bob.node, alice.node)
        code, out, err = await cli(capsys, *a, "read", "bob", "--ids")
        assert out.count("yes please") == 2 and out.count("> lunch at one?") == 1
        # --ids begins each message with its id, as the actions take it.
        starts = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
        assert starts == [first, answer, copy]
        code, out, err = await cli(capsys, *b, "forward", answer, "nobody")
        assert code == 1
        assert_one_error_line(err, "nobody")

        code, out, err = await cli(capsys, *b, "edit", first, "not mine")
        assert code == 1
        assert_one_error_line(err, "only the author")
        code, out, err = await cli(capsys, *b, "unsend", first)  # Alice's message
        assert code == 1
        assert_one_error_line(err, "only the author", f"delete {first} --for-me` deletes it")
        code, out, err = await cli(capsys, *a, "unsend", first)
        assert (code, err, out.strip()) == (0, "", f"Unsent {first} for everyone.")
        deliver(alice.node, bob.node)
        code, out, err = await cli(capsys, *a, "unsend", first)
        assert (code, err) == (0, "") and "unsent already" in out
        assert alice.node.store.outbox_for(bob.node.peer_id) == []  # nothing more sent
        code, out, err = await cli(capsys, *b, "read", "alice")
        assert "[alice unsent a message]" in out and "> original message unavailable" in out
        assert "lunch" not in out

        code, out, err = await cli(capsys, *b, "delete", first, "--for-me")
        assert (code, err) == (0, "")
        code, out, err = await cli(capsys, *b, "read", "alice")
        assert "unsent a message" not in out


async def test_typing_from_the_command_line_says_whether_it_went(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        for me, other, name in ((alice, bob, "bob"), (bob, alice, "alice")):
            me.node.add_contact_from_invite(other.node.invite(), name)
        home = ("--home", str(alice.home.path))
        sent: list[bytes] = []

        async def send_now(peer: object, envelope: bytes) -> bool:
            sent.append(envelope)
            return True

        code, out, err = await cli(capsys, *home, "typing", "bob")  # not connected
        assert (code, err) == (0, "") and out.startswith("Not sent to bob: ")
        alice.node.send_now = send_now  # as the dm service hands it to a live connection
        alice.node.online.add(bob.node.peer_id)
        code, out, err = await cli(capsys, *home, "typing", "bob")
        assert (code, err, out.strip()) == (0, "", "bob sees that you are typing.")
        assert len(sent) == 1


async def test_a_message_unsent_before_delivery_says_so_not_its_stale_state(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        a = ("--home", str(alice.home.path))
        waiting = alice.node.send_text(bob.node.peer_id, "never mind").id.hex()
        code, out, err = await cli(capsys, *a, "unsend", waiting)
        assert (code, err) == (0, "")
        code, out, err = await cli(capsys, *a, "read", "bob")
        assert (code, err) == (0, "")
        assert "[you unsent a message]  [unsent before it was delivered]" in out
        assert "queued" not in out
