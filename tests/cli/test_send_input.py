"""``p2pdm send CONTACT -`` sends what standard input holds."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from p2pdm.cli.chat import message_text
from p2pdm.errors import ConfigError
from p2pdm.limits import MAX_TEXT_BYTES
from tests.cli.conftest import assert_one_error_line, cli, running_pair


async def test_a_long_message_from_a_pipe(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = "line one\n\nline three: " + "x" * 5000
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.add_contact_from_invite(bob.node.invite())
        peer = str(bob.node.peer_id)
        monkeypatch.setattr("sys.stdin", io.StringIO(text + "\n"))
        code, out, err = await cli(capsys, "--home", str(alice.home.path), "send", peer, "-")
        assert (code, err) == (0, "")
        assert f"--home {alice.home.path} read {peer}" in out
        (sent,) = alice.node.store.outbox_for(bob.node.peer_id)
        stored = alice.node.store.get_message(sent.message_id)
        assert stored is not None and text in stored.body.decode("utf-8", "replace")

        monkeypatch.setattr("sys.stdin", io.StringIO(" \n"))
        code, out, err = await cli(capsys, "--home", str(alice.home.path), "send", peer, "-")
        assert (code, out) == (1, "")
        assert_one_error_line(err, "standard input held no message")


def test_words_are_joined_and_a_lone_dash_reads_input() -> None:
    assert message_text(["see", "you"], io.StringIO("unused")) == "see you"
    assert message_text(["-"], io.StringIO("from a file\n")) == "from a file"
    assert message_text(["a", "-"], io.StringIO("unused")) == "a -"


def test_input_over_the_message_size_is_refused_before_sending() -> None:
    with pytest.raises(ConfigError, match="over"):
        message_text(["-"], io.StringIO("é" * (MAX_TEXT_BYTES // 2 + 1)))
