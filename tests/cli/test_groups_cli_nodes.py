"""``p2pdm group …``, ``send`` and ``read`` on a group, against real nodes' APIs: Alice
makes a group with Bob, writes to it; Bob reads it with her name on the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.cli.conftest import assert_one_error_line, cli, running_pair
from tests.conftest import deliver


async def test_a_group_made_written_and_read_through_the_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        bob.node.add_contact_from_invite(alice.node.invite(), "alice")
        as_alice = ("--home", str(alice.home.path))
        as_bob = ("--home", str(bob.home.path))
        code, out, err = await cli(capsys, *as_alice, "group", "create", "Bakers", "bob")
        assert (code, err) == (0, ""), err
        assert "Created Bakers (2 members) with bob." in out
        code, out, err = await cli(capsys, *as_alice, "read", "bakers")  # nothing written yet
        assert (code, err) == (0, "")
        assert out.endswith("— You created the group 'Bakers' —\n")
        code, out, err = await cli(capsys, *as_alice, "group", "show", "Bakers")
        assert (code, err) == (0, "") and "Last sent" not in out  # a notice is not sent
        code, out, err = await cli(capsys, *as_alice, "send", "Bakers", "ovens", "on")
        assert (code, err) == (0, ""), err
        deliver(alice.node, bob.node)  # the invitation and the message
        code, out, err = await cli(capsys, *as_bob, "group", "list")
        assert (code, err) == (0, "")
        [row] = [line for line in out.splitlines() if line.startswith("Bakers")]
        assert row.split()[1:4] == ["2", "member", "active"]  # Bob is no admin
        code, out, err = await cli(capsys, *as_bob, "read", "Bakers")
        assert (code, err) == (0, ""), err
        [line] = [line for line in out.splitlines() if "ovens on" in line]
        assert line.split()[2] == "alice"
        code, out, _ = await cli(capsys, *as_bob, "inbox")
        assert any(line.startswith("Bakers (group)") for line in out.splitlines())
        deliver(bob.node, alice.node)  # the receipts
        code, out, err = await cli(capsys, *as_alice, "group", "show", "Bakers")
        assert (code, err) == (0, ""), err
        assert "delivered to 1 of 1" in out
        assert any(line.split()[:2] == ["you", "admin"] for line in out.splitlines())
        # A group's timer is the group's: every member is told.
        code, out, err = await cli(capsys, *as_alice, "timer", "Bakers", "1d")
        assert (code, err) == (0, ""), err
        code, out, _ = await cli(capsys, *as_alice, "group", "show", "Bakers")
        assert "messages disappear 1d after reading" in out
        # Bob is no admin: his change is refused with one line, nothing changes.
        code, _, err = await cli(capsys, *as_bob, "group", "rename", "Bakers", "Mine")
        assert code == 1
        assert_one_error_line(err)
        # A photo: set from a picture, shown to Bob; a file that is no picture is
        # refused in one line; --remove takes it away.
        picture = tmp_path / "oven.png"
        Image.new("RGB", (300, 200), (200, 90, 20)).save(picture)
        code, out, err = await cli(capsys, *as_alice, "group", "photo", "Bakers", str(picture))
        assert (code, err) == (0, ""), err
        assert "Set the photo of Bakers: a " in out and "square picture" in out
        assert "((" not in out and "))" not in out and "members)" not in out
        deliver(alice.node, bob.node)
        code, out, _ = await cli(capsys, *as_bob, "group", "show", "Bakers")
        assert any(line.startswith("Photo      image/webp") for line in out.splitlines()), out
        notes = tmp_path / "notes.txt"
        notes.write_text("no picture")
        code, _, err = await cli(capsys, *as_alice, "group", "photo", "Bakers", str(notes))
        assert code == 1
        assert_one_error_line(err, "picture")
        code, out, err = await cli(capsys, *as_alice, "group", "photo", "Bakers", "--remove")
        assert (code, err) == (0, ""), err
        assert out.strip() == "Removed the photo of Bakers."
        code, out, _ = await cli(capsys, *as_alice, "group", "show", "Bakers")
        assert "Photo" not in out
        code, _, err = await cli(capsys, *as_alice, "group", "show", "Nobody's")
        assert code == 1
        assert_one_error_line(err, "Nobody's")
        # The group's old name, after a rename, is no contact or group: one line says
        # so and how to list the groups, for send, read and the conversation commands.
        code, _, err = await cli(capsys, *as_alice, "group", "rename", "Bakers", "Night bakers")
        assert (code, err) == (0, ""), err
        for command in (("send", "Bakers", "hi"), ("read", "Bakers"), ("mute", "Bakers")):
            code, out, err = await cli(capsys, *as_alice, *command)
            assert (code, out) == (1, ""), command
            assert_one_error_line(err, "no contact or group named 'Bakers'", "p2pdm group list")
        code, _, err = await cli(capsys, *as_alice, "send", "nobody", "hi")  # as for any name
        assert_one_error_line(err, "no contact or group named 'nobody'")
        code, out, err = await cli(capsys, *as_alice, "send", "night BAKERS", "hi")
        assert (code, err) == (0, ""), err
