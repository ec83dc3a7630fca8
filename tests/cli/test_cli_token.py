"""``p2pdm token``: on the store file, with and without a running node."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import trio

from p2pdm.api import serve_api
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import Contact
from p2pdm.daemon.home import Home
from p2pdm.node.node import Node
from p2pdm.node.tokens import hash_token
from tests.cli.conftest import assert_one_error_line, init, run

BOB = str(Identity.generate(b"\x0b" * 32).peer_id)


def test_create_list_and_revoke_without_a_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "node"
    init(capsys, home)
    with closing(Home(home).open_store()) as store:
        store.put_contact(Contact(PeerId.parse(BOB), "bob", 1))
    code, out, err = run(
        capsys, "--home", str(home), "token", "create", "--scope", "send", "--contact", "bob",
        "--name", "bot",
    )  # fmt: skip
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Token 'bot' (scope send, limited to 1 contact(s)):"
    secret = lines[1]
    assert secret.startswith("p2pdm_") and "only this once" in lines[2]
    code, out, _ = run(capsys, "--home", str(home), "token", "create", "--scope", "read", "--json")
    made = json.loads(out)
    assert made["scope"] == "read" and made["token"].startswith("p2pdm_")
    code, out, _ = run(capsys, "--home", str(home), "token", "list", "--json")
    listed = json.loads(out)
    assert [t["name"] for t in listed] == sorted(["bot", made["name"]])
    assert listed[0]["contacts"] == [BOB]
    assert secret not in out and made["token"] not in out
    code, out, _ = run(capsys, "--home", str(home), "token", "list")
    assert out.splitlines()[0].split() == ["NAME", "SCOPE", "CONTACTS", "CREATED"]
    with closing(Home(home).open_store()) as store:
        [bot] = [t for t in store.list_tokens() if t.name == "bot"]
    assert bot.secret_hash == hash_token(secret)
    code, out, _ = run(capsys, "--home", str(home), "token", "revoke", "bot")
    assert (code, out) == (0, "Revoked bot.\n")
    code, _, err = run(capsys, "--home", str(home), "token", "revoke", "bot")
    assert code == 1
    assert_one_error_line(err, "no API token named 'bot'")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["create", "--scope", "admin", "--contact", BOB], "cannot be limited"),
        (["create", "--scope", "read", "--contact", "nobody"], "no contact named 'nobody'"),
        (["create", "--scope", "read", "--name", "owner"], "token name"),
        (["revoke", "owner"], "api_token"),
    ],
)
def test_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    home = tmp_path / "node"
    init(capsys, home)
    code, _, err = run(capsys, "--home", str(home), "token", *argv)
    assert code == 1
    assert_one_error_line(err, needle)


def test_without_init_it_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--home", str(tmp_path / "none"), "token", "list")
    assert code == 1
    assert_one_error_line(err, "p2pdm --home", " init")


async def test_a_running_node_honours_new_and_revoked_tokens_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = Home(tmp_path / "node", env={})
    home.create_identity("alice")
    store = home.open_store()
    node = Node(home.load_identity(), store)
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(serve_api, node, home.api_token(), "127.0.0.1", 0)
        argv = ["--home", str(home.path), "token", "create", "--scope", "read", "--name", "r"]
        code, out, _ = await trio.to_thread.run_sync(run, capsys, *argv)
        assert code == 0
        secret = out.splitlines()[1]
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {secret}"}
        ) as client:
            assert (await client.get("/v1/contacts")).status_code == 200
            assert (await client.post("/v1/messages", json={})).status_code == 403
            revoke = ["--home", str(home.path), "token", "revoke", "r"]
            assert (await trio.to_thread.run_sync(run, capsys, *revoke))[0] == 0
            assert (await client.get("/v1/contacts")).status_code == 401
        nursery.cancel_scope.cancel()
    store.close()
