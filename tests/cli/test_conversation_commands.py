"""`p2pdm timer`, `mute`, `archive`, `pin` and `search` against running nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import assert_one_error_line, cli, running_pair
from tests.conftest import deliver


async def test_timer_mute_archive_and_search(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        bob.node.add_contact_from_invite(alice.node.invite(), "alice")
        a = ("--home", str(alice.home.path))
        b = ("--home", str(bob.home.path))

        code, out, err = await cli(capsys, *a, "timer", "bob", "1d")
        assert (code, err) == (0, "")
        assert out.startswith("Disappearing messages with bob: 1d after reading")
        await cli(capsys, *a, "send", "bob", "the", "zebracorn", "plan")
        deliver(alice.node, bob.node)
        code, out, err = await cli(capsys, *b, "read", "alice")
        assert (code, err) == (0, "")
        notice, text = out.splitlines()
        assert notice.endswith("alice  — alice set disappearing messages to 1 day —")
        assert text.endswith("alice  the zebracorn plan")

        code, out, err = await cli(capsys, *b, "search", "zebra")
        assert (code, err) == (0, "")
        header, row = out.splitlines()
        assert header.split() == ["SENT", "WITH", "TEXT"]
        assert "from alice" in row and "[zebracorn]" in row

        code, out, err = await cli(capsys, *b, "mute", "alice")
        assert (code, err) == (0, "") and "muted" in out
        code, out, err = await cli(capsys, *b, "archive", "alice")
        assert (code, err) == (0, "") and "archived" in out
        code, out, err = await cli(capsys, *b, "inbox")
        assert "alice (muted) (archived)" in out
        await cli(capsys, *b, "mute", "alice", "--off")
        code, out, err = await cli(capsys, *b, "inbox")
        assert "(muted)" not in out and "(archived)" in out
        code, out, err = await cli(capsys, *b, "archive", "alice", "--off")
        assert (code, err) == (0, "") and "alice moved back from the archive." in out
        code, out, err = await cli(capsys, *b, "inbox")
        assert "(archived)" not in out
        code, out, err = await cli(capsys, *b, "pin", "alice")
        assert (code, err, out.strip()) == (
            0,
            "",
            "Conversation with alice pinned to the top of the list.",
        )
        code, out, err = await cli(capsys, *b, "inbox")
        assert "alice (pinned)" in out
        code, out, err = await cli(capsys, *b, "pin", "alice", "--off")
        assert (code, err, out.strip()) == (0, "", "Conversation with alice unpinned.")
        code, out, err = await cli(capsys, *b, "inbox")
        assert "(pinned)" not in out

        code, out, err = await cli(capsys, *a, "timer", "bob", "2d")
        assert code == 2 and "give one of off, 5m, 1h, 1d, 7d" in err
        code, out, err = await cli(capsys, *a, "search", "!!!")
        assert code != 0
        assert_one_error_line(err, "at least one word")
