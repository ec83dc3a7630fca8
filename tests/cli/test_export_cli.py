"""`p2pdm export FILE`, `p2pdm import FILE` and `p2pdm run` on an exported home."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pytest

from p2pdm.cli import archive as cli_archive
from p2pdm.cli.archive import ENV_EXPORT_PASSPHRASE
from p2pdm.daemon.home import Home
from p2pdm.daemon.lockfile import HomeLock
from tests.cli.conftest import assert_one_error_line, init, run
from tests.conftest import FAST_KDF

PASSPHRASE = "a long archive passphrase"


@pytest.fixture(autouse=True)
def fast_export_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No export passphrase from the environment (``clean_env`` clears the others)."""
    monkeypatch.delenv(ENV_EXPORT_PASSPHRASE, raising=False)
    # The cheapest argon2id cost: the same code, without 256 MiB per test.
    monkeypatch.setattr(sys.modules["p2pdm.cli.main"], "Home", partial(Home, kdf_limits=FAST_KDF))


@pytest.fixture
def exported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Alice's home, exported to ``alice.p2pdm`` beside it."""
    init(capsys, tmp_path / "old")
    monkeypatch.setenv(ENV_EXPORT_PASSPHRASE, PASSPHRASE)
    archive = tmp_path / "alice.p2pdm"
    code, out, err = run(capsys, "--home", str(tmp_path / "old"), "export", str(archive))
    assert (code, err) == (0, ""), err
    assert f"Exported alice ({Home(tmp_path / 'old').load_identity().peer_id})" in out
    assert f"refuses `p2pdm --home {tmp_path / 'old'} run`" in out
    return archive


def test_export_then_import_gives_the_same_identity_elsewhere(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, exported: Path
) -> None:
    code, out, err = run(capsys, "--home", str(tmp_path / "new"), "import", str(exported))
    assert (code, err) == (0, ""), err
    assert f"Imported alice ({Home(tmp_path / 'old').load_identity().peer_id})" in out
    assert f"Run `p2pdm --home {tmp_path / 'new'} run`" in out
    _, old_id, _ = run(capsys, "--home", str(tmp_path / "old"), "id", "--json")
    _, new_id, _ = run(capsys, "--home", str(tmp_path / "new"), "id", "--json")
    assert old_id.split('"addrs"')[0] == new_id.split('"addrs"')[0]  # PeerID and name


def test_a_wrong_passphrase_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    exported: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_EXPORT_PASSPHRASE, "not it")
    code, _, err = run(capsys, "--home", str(tmp_path / "new"), "import", str(exported))
    assert code == 1
    assert_one_error_line(err, "wrong passphrase for", str(exported), "nothing was changed")
    assert not Home(tmp_path / "new").has_identity()


def test_import_into_a_used_home_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, exported: Path
) -> None:
    code, _, err = run(capsys, "--home", str(tmp_path / "old"), "import", str(exported))
    assert code == 1
    assert_one_error_line(err, "already holds identity.cbor", "empty home only")


def test_a_garbled_archive_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, exported: Path
) -> None:
    exported.write_bytes(exported.read_bytes()[:100])
    code, _, err = run(capsys, "--home", str(tmp_path / "new"), "import", str(exported))
    assert code == 1
    assert_one_error_line(err, "truncated or damaged")


def test_the_exported_home_refuses_to_run_until_forced(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, exported: Path
) -> None:
    old = str(tmp_path / "old")
    code, _, err = run(capsys, "--home", old, "run", "--api", "127.0.0.1:0")
    assert code == 1
    assert_one_error_line(
        err, f"this home was exported to {exported}", "decrypt", f"p2pdm --home {old} run --force"
    )
    # --force clears the mark; the run itself then stops at the lock another holds.
    with HomeLock(Path(old)):
        code, _, err = run(capsys, "--home", old, "run", "--force", "--api", "127.0.0.1:0")
    assert code == 1
    assert err.splitlines()[0] == "The export mark is cleared: run this copy only."
    assert "a node is running from" in err.splitlines()[1]
    assert not (Path(old) / "exported.json").exists()


def test_the_passphrase_is_typed_twice_for_an_export(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init(capsys, tmp_path / "old")
    answers = iter(["typed one", "typed two"])
    monkeypatch.setattr(cli_archive, "_interactive", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    archive = tmp_path / "a.p2pdm"
    code, _, err = run(capsys, "--home", str(tmp_path / "old"), "export", str(archive))
    assert code == 1
    assert_one_error_line(err, "the two passphrases differ")
    assert not archive.exists()

    answers = iter(["", ""])
    code, _, err = run(capsys, "--home", str(tmp_path / "old"), "export", str(archive))
    assert_one_error_line(err, "the archive passphrase is empty")

    answers = iter(["same", "same", "same"])
    code, _, err = run(capsys, "--home", str(tmp_path / "old"), "export", str(archive))
    assert (code, err) == (0, "")
    code, _, err = run(capsys, "--home", str(tmp_path / "new"), "import", str(archive))
    assert (code, err) == (0, "")  # asked once


def test_no_terminal_and_no_variable_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init(capsys, tmp_path / "old")
    monkeypatch.setattr(cli_archive, "_interactive", lambda: False)
    code, _, err = run(capsys, "--home", str(tmp_path / "old"), "export", str(tmp_path / "a"))
    assert code == 1
    assert_one_error_line(err, f"set {ENV_EXPORT_PASSPHRASE}")
