"""The command line: `p2pdm init` and `p2pdm id`, in-process and as a real program."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from p2pdm.cli.main import COMMANDS
from p2pdm.core.invite import parse_invite
from p2pdm.daemon.home import ENV_HOME, ENV_PASSPHRASE, Home
from tests.cli.conftest import P2PDM_BIN, assert_one_error_line, init, run

QR_BLOCKS = set("█▀▄")


def test_init_and_id_are_registered() -> None:
    assert {"init", "id"} <= set(COMMANDS)


def test_init_creates_private_identity_and_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "node"
    out = init(capsys, home)
    peer_id = Home(home).load_identity().peer_id
    assert f"Created the identity of alice ({peer_id})" in out
    assert f"not encrypted; set {ENV_PASSPHRASE}" in out
    assert home.joinpath("store.sqlite").is_file()
    if os.name == "posix":
        assert stat.S_IMODE(home.joinpath("identity.cbor").stat().st_mode) == 0o600
        assert stat.S_IMODE(home.joinpath("store.sqlite").stat().st_mode) == 0o600
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


def test_second_init_refuses_then_force_replaces(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    init(capsys, tmp_path)
    first = Home(tmp_path).load_identity().peer_id
    code, out, err = run(capsys, "--home", str(tmp_path), "init")
    assert code == 1 and out == ""
    assert_one_error_line(err, "already exists", "--force")
    assert Home(tmp_path).load_identity().peer_id == first

    out = init(capsys, tmp_path, "--force")
    second = Home(tmp_path).load_identity().peer_id
    assert second != first
    assert "previous identity and store were moved to" in out


def test_init_default_name_is_the_login_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "dave")
    assert run(capsys, "--home", str(tmp_path), "init")[0] == 0
    code, out, _ = run(capsys, "--home", str(tmp_path), "id", "--json")
    assert code == 0
    assert json.loads(out)["name"] == "dave"


def test_init_bad_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--home", str(tmp_path), "init", "--name", " ")
    assert code == 1
    assert_one_error_line(err, "display name is empty")


def test_id_prints_peer_id_name_and_invite(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    init(capsys, tmp_path)
    identity = Home(tmp_path).load_identity()
    code, out, err = run(capsys, "--home", str(tmp_path), "id")
    assert (code, err) == (0, "")
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["PeerID"] == str(identity.peer_id)
    assert lines["Name"] == "alice"
    invite = parse_invite(lines["Invite"], int(time.time()))
    assert invite.peer_id == identity.peer_id
    assert invite.name == "alice"
    assert not set(out) & QR_BLOCKS


def test_id_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    init(capsys, tmp_path)
    code, out, _ = run(capsys, "--home", str(tmp_path), "id", "--json")
    assert code == 0
    record = json.loads(out)
    assert record["peer_id"] == str(Home(tmp_path).load_identity().peer_id)
    assert record["name"] == "alice"
    assert record["addrs"] == []
    assert record["home"] == str(tmp_path)
    now = int(time.time())
    assert record["invite_expires_at_s"] > now
    assert str(parse_invite(record["invite"], now).peer_id) == record["peer_id"]


def test_id_qr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    init(capsys, tmp_path)
    code, out, _ = run(capsys, "--home", str(tmp_path), "id", "--qr")
    assert code == 0
    assert set(out) & QR_BLOCKS
    assert "Invite  p2pdm:" in out


def test_qr_and_json_together_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "--home", str(tmp_path), "id", "--qr", "--json")
    assert code == 2
    assert "not allowed with" in err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "usage:" in err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "init" in out and "id" in out


def test_passphrase_round_trip_and_wrong_passphrase(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_PASSPHRASE, "hunter2 but longer")
    out = init(capsys, tmp_path)
    assert f"encrypted with the passphrase in {ENV_PASSPHRASE}" in out
    code, out, _ = run(capsys, "--home", str(tmp_path), "id", "--json")
    assert code == 0
    peer_id = json.loads(out)["peer_id"]
    assert str(Home(tmp_path).load_identity().peer_id) == peer_id

    monkeypatch.setenv(ENV_PASSPHRASE, "wrong")
    code, out, err = run(capsys, "--home", str(tmp_path), "id")
    assert code == 1 and out == ""
    assert_one_error_line(err, "wrong passphrase", ENV_PASSPHRASE)

    monkeypatch.delenv(ENV_PASSPHRASE)
    code, _, err = run(capsys, "--home", str(tmp_path), "id")
    assert code == 1
    assert_one_error_line(err, "is encrypted", ENV_PASSPHRASE)


def test_missing_home_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "does" / "not" / "exist"
    code, out, err = run(capsys, "--home", str(missing), "id")
    assert code == 1 and out == ""
    assert_one_error_line(err, f"no identity in {missing}", f"run `p2pdm --home {missing} init`")
    assert not missing.exists()


def test_home_that_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    for command in ("init", "id"):
        code, _, err = run(capsys, "--home", str(tmp_path / "f"), command)
        assert code == 1
        assert_one_error_line(err, "not a directory")


def test_p2pdm_home_env_is_used(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_HOME, str(tmp_path / "from-env"))
    assert run(capsys, "init", "--name", "erin")[0] == 0
    assert (tmp_path / "from-env" / "identity.cbor").is_file()
    code, out, _ = run(capsys, "id", "--json")
    assert code == 0
    assert json.loads(out)["home"] == str(tmp_path / "from-env")


def test_bad_config_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    init(capsys, tmp_path)
    (tmp_path / "config.toml").write_text("colour = 'blue'\n")
    code, _, err = run(capsys, "--home", str(tmp_path), "id")
    assert code == 1
    assert_one_error_line(err, "unknown setting 'colour'")


@pytest.mark.slow
@pytest.mark.skipif(not P2PDM_BIN.exists(), reason="console script not installed")
def test_real_program_init_and_id(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_HOME, ENV_PASSPHRASE)}
    env[ENV_PASSPHRASE] = "a real passphrase"  # the default (moderate) argon2id cost, for real
    home = str(tmp_path / "node")

    def p2pdm(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(P2PDM_BIN), "--home", home, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    missing = p2pdm("id")
    assert missing.returncode == 1
    assert_one_error_line(missing.stderr, "run `p2pdm --home", " init`")

    created = p2pdm("init", "--name", "frank")
    assert created.returncode == 0, created.stderr
    shown = p2pdm("id", "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["peer_id"] in created.stdout
    assert record["name"] == "frank"

    env[ENV_PASSPHRASE] = "not it"
    wrong = p2pdm("id")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert_one_error_line(wrong.stderr, "wrong passphrase")
