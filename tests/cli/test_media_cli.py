"""``p2pdm send --file/--location``, ``p2pdm read``'s file lines, ``p2pdm save``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.cli.media import WAVEFORM_CHARS, media_lines, waveform_text
from p2pdm.core.kinds.live_location import LiveLocationBody
from p2pdm.node.live_location import receive_live_location
from tests.cli.conftest import assert_one_error_line, cli, running_pair
from tests.conftest import deliver
from tests.media_files import has_gps, opus_voice_note, photo_with_gps


async def test_send_read_and_save_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        a = ("--home", str(alice.home.path))
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(photo_with_gps())

        code, out, err = await cli(
            capsys, *a, "send", "bob", "--file", str(photo), "--caption", "hi"
        )
        assert (code, err) == (0, "")
        message_id = out.split()[1]

        code, out, err = await cli(capsys, *a, "send", "bob", "Berlin", "--location", "52.52,13.40")
        assert (code, err) == (0, "")

        voice = tmp_path / "voice.ogg"
        voice.write_bytes(opus_voice_note(75, 3))
        code, out, err = await cli(capsys, *a, "send", "bob", "--file", str(voice))
        assert (code, err) == (0, "")

        code, out, err = await cli(capsys, *a, "read", "bob")
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0].endswith("you  hi  [queued]")
        assert lines[1].strip().startswith("[file] photo.jpg (") and lines[1].endswith(
            ") sent from this computer"
        )
        # With no caption the place or file is the first line: no placeholder.
        assert lines[2].endswith("you  [location] 52.52000,13.40000 Berlin  [queued]")
        assert "you  [voice] voice.ogg (1:15, " in lines[3] and lines[3].endswith("[queued]")
        # Its waveform: quieter for its first 3 of 75 seconds (within the first
        # of 16 steps), then loud.
        wave = lines[3].split(") ", 1)[1].split()[0]
        assert len(wave) == WAVEFORM_CHARS and wave[0] < "█" and set(wave[1:]) == {"█"}, wave
        assert len(lines) == 4

        # On Bob's node (no network here) the photo waits to be fetched: he
        # cannot forward it yet, and is told how to fetch it.
        deliver(alice.node, bob.node)
        code, out, err = await cli(
            capsys, "--home", str(bob.home.path), "forward", message_id, "alice"
        )
        assert code == 1
        assert_one_error_line(
            err, "photo.jpg is not on this node yet", f"save {message_id}` fetches it"
        )
        code, out, err = await cli(capsys, *a, "forward", message_id, "bob")  # hers: it is here
        assert (code, err) == (0, "") and out.startswith(f"Forwarded {message_id} to bob as ")

        saved = tmp_path / "saved"
        code, out, err = await cli(capsys, *a, "save", message_id, str(saved))
        assert code != 0
        assert_one_error_line(err, f"no directory {saved}; make it first")
        saved.mkdir()
        code, out, err = await cli(capsys, *a, "save", message_id, str(saved))
        assert (code, err) == (0, "")
        [file] = saved.iterdir()
        assert file.name == "photo.jpg" and not has_gps(file.read_bytes())
        code, out, err = await cli(capsys, *a, "save", message_id, str(saved))
        assert sorted(p.name for p in saved.iterdir()) == ["photo (1).jpg", "photo.jpg"]

        code, out, err = await cli(capsys, *a, "send", "bob", "--location", "95,1")
        assert code != 0
        assert_one_error_line(err, "latitude")
        code, out, err = await cli(capsys, *a, "send", "bob")
        assert code != 0
        assert_one_error_line(err, "--file")


async def test_share_and_stop_a_live_location(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        a = ("--home", str(alice.home.path))
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        code, out, err = await cli(capsys, *a, "send", "bob", "--live-location", "52.52,13.40")
        assert code != 0
        assert_one_error_line(err, "duration_s")  # nothing to move: --for starts one
        code, out, err = await cli(
            capsys, *a, "send", "bob", "--live-location", "52.52,13.40", "--for", "2h"
        )
        assert code != 0
        assert_one_error_line(err, "--for takes 15m, 1h, 8h")

        code, out, err = await cli(
            capsys, *a, "send", "bob", "--live-location", "52.52,13.40", "--for", "15m"
        )
        assert (code, err) == (0, "")
        assert out.startswith("Sharing your live location with bob until ")
        assert "not sent now (not connected" in out  # never queued for later
        [share] = alice.node.live_locations.active(
            alice.node.find_conversation("bob")[0], alice.node.now_ms()
        )
        assert (share.lat_e7, share.lon_e7, share.mine) == (525200000, 134000000, True)
        assert alice.node.store.outbox_count() == 0

        # ``read`` shows the share running in the conversation, and how to stop it.
        code, out, err = await cli(capsys, *a, "read", "bob")
        assert (code, err) == (0, "")
        none, line = out.splitlines()
        assert none == "No messages with bob yet."
        assert line.startswith("[live] you share your location until ")
        assert line.endswith(
            f": 52.52000,13.40000 (`p2pdm --home {alice.home.path} stop-live bob` stops it)"
        )

        code, out, err = await cli(capsys, *a, "stop-live", "bob")
        assert (code, out, err) == (0, "Stopped sharing your live location with bob.\n", "")

        # Bob's side: the share of a contact that reached his node, in his ``read``.
        bob.node.add_contact_from_invite(alice.node.invite(), "alice")
        until_s = bob.node.now_ms() // 1000 + 900
        update = LiveLocationBody(until_s, lat_e7=485_000_000, lon_e7=23_500_000)
        assert receive_live_location(bob.node, alice.node.peer_id, update, direct=True)
        code, out, err = await cli(capsys, "--home", str(bob.home.path), "read", "alice")
        assert (code, err) == (0, "")
        none, line = out.splitlines()
        assert line.startswith("[live] alice shares a location until ")
        assert ": 48.50000,2.35000 (at " in line
        code, out, err = await cli(capsys, *a, "stop-live", "bob")
        assert out == "You were not sharing your live location with bob.\n"


async def test_share_a_live_location_in_a_group_by_its_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        a = ("--home", str(alice.home.path))
        alice.node.add_contact_from_invite(bob.node.invite(), "bob")
        gid = (await alice.node.create_group("walk", [bob.node.peer_id])).row.id
        code, out, err = await cli(
            capsys, *a, "send", "walk", "--live-location", "40.41,-3.70", "--for", "1h"
        )
        assert (code, err) == (0, "")
        assert out.startswith("Sharing your live location with walk until ")
        [share] = alice.node.live_locations.active(gid, alice.node.now_ms())
        assert share.mine and share.lat_e7 == 404_100_000
        code, out, err = await cli(capsys, *a, "read", "walk")
        assert (code, err) == (0, "")
        assert out.splitlines()[-1].startswith("[live] you share your location until ")
        code, out, err = await cli(capsys, *a, "stop-live", "walk")
        assert (code, out, err) == (0, "Stopped sharing your live location with walk.\n", "")
        assert alice.node.live_locations.active(gid, alice.node.now_ms()) == []


def test_file_states_read_as_words() -> None:
    def item(state: str, **extra: object) -> dict[str, object]:
        return {"name": "a.pdf", "size": 2048, "mime": "application/pdf", "state": state} | extra

    shown = {
        state: media_lines({"media": [item(state, progress=4)]}, str)[0].split(") ", 1)[1]
        for state in ("local", "ready", "pending", "failed")
    }
    assert shown == {
        "local": "sent from this computer",
        "ready": "on this computer",
        "pending": "not fetched yet",
        "failed": "failed",
    }
    [line] = media_lines({"media": [item("failed", detail="too large")]}, str)
    assert line == "[file] a.pdf (2.0 KiB, application/pdf) failed: too large"
    [line] = media_lines({"media": [item("fetching", size=1 << 20, progress=2)]}, str)
    assert line.endswith(") fetching 50%")


def test_save_shows_a_progress_bar_while_a_large_file_is_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar (rich, imported only for it) follows the bytes the download reports."""
    import argparse
    import io

    from p2pdm.cli import media
    from p2pdm.client import Client

    heard: list[int] = []

    class Node:
        def __enter__(self) -> Node:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def message(self, message_id: str) -> dict[str, object]:
            item = {"id": "b1", "name": "[big].bin", "state": "waiting", "size": 8 << 20}
            return {"media": [item]}

        def download(self, blob_id: str, directory: Path, *, on_progress: Any = None) -> Path:
            for done in (1 << 20, 8 << 20):
                on_progress(done)
                heard.append(done)
            return directory / "big.bin"

    monkeypatch.setattr(Client, "for_home", classmethod(lambda cls, home: Node()))
    out = io.StringIO()
    args = argparse.Namespace(message_id="m1", directory=str(tmp_path))
    assert media.save(args, home=None, out=out) == 0  # type: ignore[arg-type]
    assert heard == [1 << 20, 8 << 20]
    assert out.getvalue() == f"saved {tmp_path / 'big.bin'} (8.0 MiB)\n"


@given(st.lists(st.integers(0, 255), max_size=64))
def test_a_waveform_is_drawn_with_one_block_a_step(levels: list[int]) -> None:
    drawn = waveform_text(levels)
    assert len(drawn) == min(WAVEFORM_CHARS, len(levels))
    assert set(drawn) <= set("▁▂▃▄▅▆▇█")
    if levels:
        assert waveform_text([0] * len(levels)) == "▁" * len(drawn)
        assert waveform_text([255] * len(levels)) == "█" * len(drawn)
