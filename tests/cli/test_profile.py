"""``p2pdm profile`` and ``p2pdm find`` against nodes serving their real API."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trio
from PIL import Image

from p2pdm.limits import MAX_AVATAR_INPUT_BYTES
from tests.cli.conftest import assert_one_error_line, cli, running_node
from tests.conftest import node


def photo(path: Path) -> Path:
    """A noisy 2400 x 1800 JPEG with EXIF: far over what the API takes in one body."""
    image = Image.effect_noise((2400, 1800), 80).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif.tobytes())
    path.write_bytes(out.getvalue())
    assert path.stat().st_size > MAX_AVATAR_INPUT_BYTES
    return path


async def test_set_show_and_clear_a_profile(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_node(tmp_path / "alice", "alice") as alice:
        a = ("--home", str(alice.home.path))
        code, out, _ = await cli(capsys, *a, "profile")
        assert code == 0 and "No profile published" in out

        picture = photo(tmp_path / "photo.jpg")
        code, out, err = await cli(
            capsys, *a, "profile", "set", "--handle", "Alice.K", "--name", "Alice K",
            "--bio", "hello", "--avatar", str(picture),
        )  # fmt: skip
        assert (code, err) == (0, ""), err
        assert ["handle", "alice.k"] in [line.split() for line in out.splitlines()]
        profile = alice.node.profiles.current()
        assert profile is not None and profile.name == "Alice K" and profile.avatar
        assert b"SecretCam" not in profile.avatar

        code, out, _ = await cli(capsys, *a, "profile", "--json")
        shown = json.loads(out)
        assert (shown["handle"], shown["bio"], shown["avatar_type"]) == (
            "alice.k",
            "hello",
            "image/webp",
        )

        code, out, err = await cli(capsys, *a, "profile", "set", "--handle", "\u0430lice")
        assert (code, out) == (1, "")
        assert_one_error_line(err, "U+0430")
        assert alice.node.profiles.current() == profile  # nothing changed

        code, out, _ = await cli(capsys, *a, "profile", "set", "--no-avatar", "--bio", "")
        assert code == 0
        assert alice.node.profiles.current().avatar == b""  # type: ignore[union-attr]

        code, out, _ = await cli(capsys, *a, "profile", "clear")
        assert code == 0 and "No profile published" in out
        assert alice.node.profiles.current() is None

        code, out, err = await cli(capsys, *a, "find", "alice")
        assert code == 1
        assert_one_error_line(err, "not on the network: it cannot look handles up now")


@pytest.mark.net
async def test_find_prints_each_claimant_with_its_fingerprint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with node(tmp_path, "bob") as b, node(tmp_path, "alice", b.running) as a:
        b.running.node.profiles.update(handle="bob.k", name="Bob K")
        home = ("--home", str(a.home.path))
        with trio.fail_after(20):
            while True:
                code, out, err = await cli(capsys, *home, "find", "@BOB.K")
                if "Nobody" not in out:
                    break
                await trio.sleep(0.2)
        assert (code, err) == (0, "")
        [header, row, note] = out.splitlines()
        assert header.split() == ["WHO", "NAME", "FINGERPRINT", "SEEN", "FOR", "PEERID"]
        assert row.split()[:3] == ["stranger", "Bob", "K"] and row.endswith(b.id)
        assert "safety number" in note
