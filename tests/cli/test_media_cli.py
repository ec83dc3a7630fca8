"""``p2pdm send --file/--location``, ``p2pdm read``'s file lines, ``p2pdm save``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import assert_one_error_line, cli, running_pair
from tests.media_files import has_gps, photo_with_gps


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

        code, out, err = await cli(capsys, *a, "read", "bob")
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0].endswith("you  hi  [queued]")
        assert lines[1].strip().startswith("[file] photo.jpg (") and lines[1].endswith("local")
        assert lines[2].endswith("you  <location message>  [queued]")
        assert lines[3].strip() == "[location] 52.52000,13.40000 Berlin"

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

        code, out, err = await cli(capsys, *a, "stop-live", "bob")
        assert (code, out, err) == (0, "Stopped sharing your live location with bob.\n", "")
        code, out, err = await cli(capsys, *a, "stop-live", "bob")
        assert out == "You were not sharing your live location with bob.\n"
