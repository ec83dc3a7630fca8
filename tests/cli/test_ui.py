"""``p2pdm ui``: the sign-in link from a running node; listing and revoking sessions."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import WAIT_S, assert_one_error_line, cli, running_node


async def test_ui_prints_a_link_that_signs_in_once_and_sessions_can_be_revoked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_node(tmp_path / "alice", "alice") as alice:
        home = str(alice.home.path)
        code, out, err = await cli(capsys, "--home", home, "ui", "--no-open")
        assert (code, err) == (0, ""), err
        url = out.splitlines()[0].removeprefix("Open the web app: ")
        assert url.startswith(f"http://127.0.0.1:{alice.port}/login?code=")
        async with httpx.AsyncClient(timeout=WAIT_S) as browser:
            assert (await browser.get(url)).status_code == 303
            node = await browser.get(f"http://127.0.0.1:{alice.port}/v1/node")
            assert node.status_code == 200
            assert (await browser.get(url)).status_code == 403  # once only

            code, out, err = await cli(capsys, "--home", home, "ui", "--sessions", "--json")
            assert (code, err) == (0, ""), err
            [session] = json.loads(out)
            code, out, _ = await cli(capsys, "--home", home, "ui", "--sessions")
            assert session["id"] in out
            code, out, err = await cli(capsys, "--home", home, "ui", "revoke", session["id"])
            assert (code, err) == (0, ""), err
            node = await browser.get(f"http://127.0.0.1:{alice.port}/v1/node")
            assert node.status_code == 401
        code, out, err = await cli(capsys, "--home", home, "ui", "revoke")
        assert code == 1
        assert_one_error_line(err, "ui revoke ID")
        code, out, err = await cli(capsys, "--home", home, "ui", "revoke", session["id"])
        assert code == 1
        assert_one_error_line(err, "no session")
