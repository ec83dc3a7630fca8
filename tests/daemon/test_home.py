"""The node home: where it is, the identity file, private files, token, config."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nacl.pwhash.argon2id as argon2id
import platformdirs
import pytest

from p2pdm.core import cbor
from p2pdm.core.identity import Identity
from p2pdm.daemon.home import (
    ENV_HOME,
    ENV_PASSPHRASE,
    FALLBACK_DISPLAY_NAME,
    Config,
    Home,
    check_display_name,
    decode_identity_file,
    default_display_name,
    encode_identity_file,
    write_private_file,
)
from p2pdm.errors import ConfigError, HomeError, IdentityError, PassphraseError
from tests.conftest import FAST_KDF, mode

SEED = bytes(range(32))
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- where the home is -------------------------------------------------------


def test_home_flag_beats_env(tmp_path: Path) -> None:
    home = Home(tmp_path / "flag", env={ENV_HOME: str(tmp_path / "env")})
    assert home.path == tmp_path / "flag"


def test_env_beats_platform_default(tmp_path: Path) -> None:
    assert Home(env={ENV_HOME: str(tmp_path / "env")}).path == tmp_path / "env"


def test_platform_default_when_nothing_given() -> None:
    expected = Path(platformdirs.user_data_dir("p2pdm", appauthor=False)).absolute()
    assert Home(env={}).path == expected
    assert Home(env={ENV_HOME: ""}).path == expected  # empty counts as unset


def test_home_paths_are_absolute_and_expand_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/somewhere")
    home = Home("~/p2pdm-node", env={})
    assert home.path == Path("/somewhere/p2pdm-node")
    assert home.store_path.name == "store.sqlite"
    assert home.api_token_path.name == "api_token"
    assert home.config_path.name == "config.toml"
    assert home.log_dir.parent == home.path


def test_empty_home_flag_is_refused() -> None:
    with pytest.raises(HomeError, match="--home is empty"):
        Home("", env={})


# --- the identity file format ----------------------------------------------


def test_plain_identity_file_round_trip() -> None:
    data = encode_identity_file(SEED, None, os.urandom, FAST_KDF)
    assert decode_identity_file(data, None, "f") == (SEED, False)
    # A plain file opens whether or not a passphrase happens to be set.
    assert decode_identity_file(data, "anything", "f") == (SEED, False)


def test_encrypted_identity_file_round_trip() -> None:
    data = encode_identity_file(SEED, "correct horse", os.urandom, FAST_KDF)
    assert SEED not in data
    assert decode_identity_file(data, "correct horse", "f") == (SEED, True)
    fields = cbor.decode(data, 4096)
    assert fields["kdf"] == "argon2id"
    assert (fields["opslimit"], fields["memlimit"]) == (FAST_KDF.opslimit, FAST_KDF.memlimit)
    assert len(fields["salt"]) == argon2id.SALTBYTES


def test_passphrase_is_unicode_normalised() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    data = encode_identity_file(SEED, composed, os.urandom, FAST_KDF)
    assert decode_identity_file(data, decomposed, "f") == (SEED, True)


def test_wrong_passphrase() -> None:
    data = encode_identity_file(SEED, "right", os.urandom, FAST_KDF)
    with pytest.raises(PassphraseError, match="wrong passphrase for f"):
        decode_identity_file(data, "wrong", "f")


def test_missing_passphrase() -> None:
    data = encode_identity_file(SEED, "right", os.urandom, FAST_KDF)
    with pytest.raises(PassphraseError, match=f"f is encrypted; set {ENV_PASSPHRASE}"):
        decode_identity_file(data, None, "f")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not cbor at all",
        cbor.encode([1, 2]),
        cbor.encode({"version": 1}),
        cbor.encode({"version": 1, "seed": b"short"}),
        cbor.encode({"version": 1, "seed": SEED, "extra": 1}),
        cbor.encode(
            {
                "version": 1,
                "kdf": "argon2id",
                "opslimit": 1,
                "memlimit": 1 << 40,  # a damaged file must not make us allocate a TiB
                "salt": bytes(16),
                "sealed_seed": bytes(72),
            }
        ),
    ],
)
def test_damaged_identity_file(data: bytes) -> None:
    with pytest.raises(IdentityError, match="f is damaged") as info:
        decode_identity_file(data, "pw", "f")
    assert not isinstance(info.value, PassphraseError)


def test_newer_identity_file_version_asks_for_upgrade() -> None:
    data = cbor.encode({"version": 2, "seed": SEED})
    with pytest.raises(IdentityError, match=r"format version 2.*upgrade p2pdm"):
        decode_identity_file(data, None, "f")


def test_unknown_kdf_asks_for_upgrade() -> None:
    fields = cbor.decode(encode_identity_file(SEED, "pw", os.urandom, FAST_KDF), 4096)
    fields["kdf"] = "scrypt"
    with pytest.raises(IdentityError, match="unknown key derivation 'scrypt'"):
        decode_identity_file(cbor.encode(fields), "pw", "f")


# --- private files -----------------------------------------------------------


@posix_only
def test_write_private_file_is_0600_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    write_private_file(target, b"one", replace=False)
    assert target.read_bytes() == b"one"
    assert mode(target) == 0o600
    write_private_file(target, b"two", replace=True)
    assert target.read_bytes() == b"two"
    assert leftovers(tmp_path) == []


def test_write_private_file_without_replace_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_private_file(target, b"new", replace=False)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        write_private_file(target, b"new", replace=True)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


# --- creating and loading the identity -----------------------------------------


@posix_only
def test_create_identity_makes_private_home_identity_and_store(
    make_home: Callable[..., Home],
) -> None:
    home = make_home()
    created = home.create_identity("alice")
    assert mode(home.path) == 0o700
    assert mode(home.identity_path) == 0o600
    assert home.store_path.is_file()
    assert created.replaced_dir is None and not created.encrypted
    assert home.load_identity().peer_id == created.identity.peer_id
    store = home.open_store()
    try:
        assert store.get_setting("name") == "alice"
        assert store.get_prekeys() is not None
    finally:
        store.close()
    assert leftovers(home.path) == []


def test_create_identity_refuses_to_overwrite(make_home: Callable[..., Home]) -> None:
    home = make_home()
    first = home.create_identity("alice").identity.peer_id
    with pytest.raises(IdentityError, match=r"already exists.*--force"):
        home.create_identity("alice")
    assert home.load_identity().peer_id == first


def test_force_replaces_and_keeps_the_old_identity_aside(make_home: Callable[..., Home]) -> None:
    home = make_home()
    first = home.create_identity("alice").identity
    second = home.create_identity("alice2", force=True)
    assert second.identity.peer_id != first.peer_id
    assert home.load_identity().peer_id == second.identity.peer_id
    assert second.replaced_dir is not None
    assert second.replaced_dir.name == "replaced-20231114T221320Z"
    kept = Home(second.replaced_dir, env={}).load_identity()
    assert kept.peer_id == first.peer_id
    assert (second.replaced_dir / "store.sqlite").is_file()
    # A second replacement in the same second does not collide.
    third = home.create_identity("alice3", force=True)
    assert third.replaced_dir is not None and third.replaced_dir != second.replaced_dir


def test_failed_init_puts_the_previous_identity_back(
    make_home: Callable[..., Home], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_home()
    first = home.create_identity("alice").identity.peer_id
    before = sorted(p.name for p in home.path.iterdir())

    def disk_full(path: Path, data: bytes, *, replace: bool) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("p2pdm.daemon.home.write_private_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        home.create_identity("bob", force=True)
    assert sorted(p.name for p in home.path.iterdir()) == before
    assert home.load_identity().peer_id == first
    store = home.open_store()
    try:
        assert store.get_setting("name") == "alice"
    finally:
        store.close()


def test_store_without_identity_is_moved_aside(make_home: Callable[..., Home]) -> None:
    home = make_home()
    home.create_identity("alice")
    home.identity_path.unlink()
    created = home.create_identity("bob")
    assert created.replaced_dir is not None
    assert (created.replaced_dir / "store.sqlite").is_file()


def test_encrypted_identity_round_trip(make_home: Callable[..., Home]) -> None:
    created = make_home("s3cret").create_identity("alice")
    assert created.encrypted
    assert make_home("s3cret").load_identity().peer_id == created.identity.peer_id
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        make_home("nope").load_identity()
    with pytest.raises(PassphraseError, match="is encrypted"):
        make_home().load_identity()


def test_missing_identity_says_run_init(make_home: Callable[..., Home]) -> None:
    home = make_home()
    with pytest.raises(
        IdentityError, match=r"no identity in .*home; run `p2pdm --home .*home init`"
    ):
        home.load_identity()
    assert not home.path.exists()  # reading never creates the home


def test_corrupt_identity_file(make_home: Callable[..., Home]) -> None:
    home = make_home()
    home.create_identity("alice")
    home.identity_path.write_bytes(b"\xff" * 10)
    with pytest.raises(IdentityError, match="damaged"):
        home.load_identity()


@posix_only
def test_identity_readable_by_others_is_refused(make_home: Callable[..., Home]) -> None:
    home = make_home()
    home.create_identity("alice")
    home.identity_path.chmod(0o644)
    with pytest.raises(HomeError, match=r"accessible by other users.*chmod 600"):
        home.load_identity()


def test_home_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    home = Home(tmp_path / "file", env={})
    with pytest.raises(HomeError, match="not a directory"):
        home.load_identity()
    with pytest.raises(HomeError, match="not a directory"):
        home.create_identity("alice")


def test_open_store_without_init(make_home: Callable[..., Home]) -> None:
    with pytest.raises(HomeError, match=r"no message store.*p2pdm --home .* init"):
        make_home().open_store()


def test_seed_comes_from_the_injected_randomness(tmp_path: Path) -> None:
    home = Home(tmp_path / "h", env={}, random_bytes=lambda n: bytes(n), kdf_limits=FAST_KDF)
    assert home.create_identity("zero").identity.peer_id == Identity(bytes(32)).peer_id


# --- display names -----------------------------------------------------------


def test_display_names() -> None:
    assert check_display_name("  Alice  ") == "Alice"
    for bad in ["", "   ", "a\nb", "x" * 200]:
        with pytest.raises(ConfigError):
            check_display_name(bad)


def test_default_display_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "carol")
    assert default_display_name() == "carol"

    def no_user() -> str:
        raise OSError("no user")

    monkeypatch.setattr("getpass.getuser", no_user)
    assert default_display_name() == FALLBACK_DISPLAY_NAME


# --- API token ---------------------------------------------------------------


@posix_only
def test_api_token_created_once_0600(make_home: Callable[..., Home]) -> None:
    home = make_home()
    token = home.api_token()
    assert len(token) == 43  # 32 random bytes, base64url without padding
    assert mode(home.api_token_path) == 0o600
    assert home.api_token() == token
    assert make_home().api_token() == token


@posix_only
def test_api_token_readable_by_others_is_refused(make_home: Callable[..., Home]) -> None:
    home = make_home()
    home.api_token()
    home.api_token_path.chmod(0o640)
    with pytest.raises(HomeError, match="chmod 600"):
        home.api_token()


# --- config.toml -------------------------------------------------------------


def test_config_absent_means_defaults(make_home: Callable[..., Home]) -> None:
    assert make_home().config() == Config()


def test_config_unknown_key_is_named(make_home: Callable[..., Home]) -> None:
    home = make_home()
    home.ensure()
    home.config_path.write_text('listen_adress = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'listen_adress'"):
        home.config()


def test_config_bad_toml(make_home: Callable[..., Home]) -> None:
    home = make_home()
    home.ensure()
    home.config_path.write_text("this is = = not toml\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        home.config()
