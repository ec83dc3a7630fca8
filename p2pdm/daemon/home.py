"""The node home: the one directory that holds a node's identity, store and settings.

How this works: :class:`Home` resolves the directory (``--home`` beats the
``P2PDM_HOME`` environment variable, which beats the platform's user data
directory) and names every file in it. The identity file holds the node's
seed, sealed by ``P2PDM_PASSPHRASE`` if one is set (its format:
:mod:`p2pdm.daemon.identity_file`); with a passphrase the store is encrypted
too (SQLCipher), under a key derived from the same argon2id output. The
settings file, ``config.toml``, is read by :mod:`p2pdm.daemon.config`.
Secret files are written atomically and privately
(:func:`~p2pdm.homefiles.write_private_file`), so a crash leaves either the
old file or the new one, never half of one.

Permission policy: a secret file (identity, API token) that other users may
read is *refused*, as OpenSSH refuses an unprotected private key: the secret
may already have been copied, and a warning scrolls past unread. The error
says which ``chmod`` fixes it.

What the SDK reads too (where the home is, the API address and token files,
the private-file primitives) lives in the light :mod:`p2pdm.homefiles`, so
that importing :mod:`p2pdm.client` loads neither PyNaCl nor SQLite.
"""

from __future__ import annotations

import base64
import os
import time
import unicodedata
from collections.abc import Callable, Mapping
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from p2pdm import hints
from p2pdm.daemon.config import CONFIG_FILE, Config, read_config
from p2pdm.daemon.lockfile import HomeLock
from p2pdm.errors import (
    ConfigError,
    HomeError,
    IdentityError,
)
from p2pdm.homefiles import (
    API_TOKEN_FILE,
    ENV_HOME,
    ENV_PASSPHRASE,
    fsync_dir,
    read_api_token,
    read_private_file,
    resolve_home,
    write_private_file,
)
from p2pdm.limits import MAX_NAME_BYTES

if TYPE_CHECKING:
    from p2pdm.core.identity import Identity
    from p2pdm.daemon.identity_file import (
        DEFAULT_KDF_LIMITS,
        KdfLimits,
        decode_identity_file,
        encode_identity_file,
        unlock_identity_file,
    )
    from p2pdm.store.sqlite import SQLiteStore

# The identity file's codec (PyNaCl, CBOR), the identity, the session keys
# and SQLite are imported when first used, not with this module: every CLI
# command makes a Home, and one that only calls the running node's API must
# start at once (tests/cli/test_imports.py).
_LAZY_FROM_IDENTITY_FILE: Final = frozenset(
    {
        "DEFAULT_KDF_LIMITS",
        "KdfLimits",
        "decode_identity_file",
        "encode_identity_file",
        "unlock_identity_file",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LAZY_FROM_IDENTITY_FILE:
        from p2pdm.daemon import identity_file

        return getattr(identity_file, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_KDF_LIMITS",
    "ENV_HOME",
    "ENV_PASSPHRASE",
    "Config",
    "Home",
    "KdfLimits",
    "NewIdentity",
    "check_display_name",
    "decode_identity_file",
    "default_display_name",
    "encode_identity_file",
    "unlock_identity_file",
    "write_private_file",
]


IDENTITY_FILE: Final = "identity.cbor"
STORE_FILE: Final = "store.sqlite"
# SQLite keeps these beside the database; they belong to it when it moves.
STORE_COMPANION_SUFFIXES: Final = ("-wal", "-shm", "-journal")
LOG_DIR: Final = "logs"
REPLACED_DIR_PREFIX: Final = "replaced-"

HOME_DIR_MODE: Final = 0o700

API_TOKEN_BYTES: Final = 32  # 256 bits: not guessable by any local process


Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class NewIdentity:
    """What :meth:`Home.create_identity` made."""

    identity: Identity
    name: str
    encrypted: bool
    #: Where the previous identity and store were moved, if there were any.
    replaced_dir: Path | None


# --- display names --------------------------------------------------------


def check_display_name(name: str) -> str:
    """Return ``name`` trimmed; raises :class:`ConfigError` if it cannot be a display name."""
    name = name.strip()
    if not name:
        raise ConfigError("the display name is empty")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ConfigError(f"the display name is longer than {MAX_NAME_BYTES} bytes")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise ConfigError("the display name contains control characters")
    return name


#: Used when the login name cannot be found (no passwd entry, no USER variable).
FALLBACK_DISPLAY_NAME: Final = "me"


def default_display_name() -> str:
    """The login user name, or :data:`FALLBACK_DISPLAY_NAME`."""
    import getpass  # with termios: only `p2pdm init` asks for the name

    try:
        return check_display_name(getpass.getuser())
    except (OSError, KeyError, ConfigError):
        return FALLBACK_DISPLAY_NAME


# --- the home --------------------------------------------------------------


class Home:
    """One node's directory and the files in it.

    Nothing is created until asked: :meth:`create_identity` makes the
    directory (0700), the identity file and the store; the readers raise a
    clear :class:`IdentityError` or :class:`HomeError` when something is
    missing. ``env``, ``random_bytes``, ``clock`` and ``kdf_limits`` are
    there for tests.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        clock: Clock = time.time,
        kdf_limits: KdfLimits | None = None,
    ) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self.path = resolve_home(path, self._env)
        self.random_bytes = random_bytes
        self.clock = clock
        self._kdf_limits = kdf_limits
        #: The store key found when the identity was last unlocked (None: plain).
        self._store_key: bytes | None = None
        self._unlocked = False

    @property
    def kdf_limits(self) -> KdfLimits:
        """The argon2id cost of a passphrase (the identity file's default if not given)."""
        if self._kdf_limits is None:
            from p2pdm.daemon.identity_file import DEFAULT_KDF_LIMITS

            self._kdf_limits = DEFAULT_KDF_LIMITS
        return self._kdf_limits

    def __repr__(self) -> str:
        return f"Home({str(self.path)!r})"

    # --- paths ---
    @property
    def identity_path(self) -> Path:
        return self.path / IDENTITY_FILE

    @property
    def store_path(self) -> Path:
        return self.path / STORE_FILE

    @property
    def api_token_path(self) -> Path:
        return self.path / API_TOKEN_FILE

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def log_dir(self) -> Path:
        return self.path / LOG_DIR

    @property
    def store_key(self) -> bytes | None:
        """The store's key once the identity is unlocked; None for a plain store."""
        return self._store_key

    @property
    def passphrase(self) -> str | None:
        """``P2PDM_PASSPHRASE``; an empty value counts as none."""
        return self._env.get(ENV_PASSPHRASE) or None

    # --- the directory ---
    def ensure(self) -> None:
        """Create the home (mode 0700) if it does not exist; raises :class:`HomeError`."""
        if self.path.is_dir():
            return
        try:
            self.path.mkdir(mode=HOME_DIR_MODE, parents=True)
            self.path.chmod(HOME_DIR_MODE)  # mkdir's mode is reduced by the umask
        except FileExistsError:
            if not self.path.is_dir():
                raise HomeError(
                    f"cannot use {self.path} as the node home: not a directory"
                ) from None
        except OSError as exc:
            raise HomeError(
                f"cannot create the node home {self.path}: {exc.strerror or exc}"
            ) from None

    def _require_dir(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise HomeError(f"cannot use {self.path} as the node home: not a directory")

    # --- settings ---
    def config(self) -> Config:
        """Read ``config.toml`` (absent means defaults); raises :class:`ConfigError`."""
        self._require_dir()
        return read_config(self.config_path)

    # --- identity ---
    def has_identity(self) -> bool:
        return self.identity_path.is_file()

    def load_identity(self) -> Identity:
        """Read and unlock the identity.

        Raises :class:`IdentityError` if there is none or it is damaged,
        :class:`PassphraseError` for a missing or wrong passphrase,
        :class:`HomeError` if the file is readable by other users.
        """
        from p2pdm.core.identity import Identity
        from p2pdm.daemon.identity_file import MAX_IDENTITY_FILE_BYTES, unlock_identity_file

        self._require_dir()
        try:
            data = read_private_file(
                self.identity_path, MAX_IDENTITY_FILE_BYTES, "the identity file"
            )
        except FileNotFoundError:
            raise IdentityError(
                f"no identity in {self.path}; run `{hints.command(self.path, 'init')}`"
            ) from None
        seed, self._store_key = unlock_identity_file(data, self.passphrase, str(self.identity_path))
        self._unlocked = True
        return Identity(seed)

    def create_identity(self, name: str, force: bool = False) -> NewIdentity:
        """Make a new identity and a fresh store for it, with display name ``name``.

        Refuses (:class:`IdentityError`) if an identity exists, unless
        ``force``; then the old identity file and store are moved, not
        deleted, into a ``replaced-<time>`` directory in the home. A store
        left without an identity is moved there too: its prekeys and
        sessions belong to a key that is gone. The identity file is written
        last, so its presence means the home is complete.
        """
        name = check_display_name(name)
        self.ensure()
        with HomeLock(self.path, "change its identity"):
            return self._create_identity(name, force)

    def _create_identity(self, name: str, force: bool) -> NewIdentity:
        from p2pdm.core.identity import SEED_BYTES, Identity
        from p2pdm.core.prekeys import OwnPrekeys
        from p2pdm.daemon.identity_file import seal_identity
        from p2pdm.store.sqlite import SQLiteStore

        if self.has_identity() and not force:
            raise IdentityError(
                f"an identity already exists in {self.path}; "
                "use `p2pdm init --force` to replace it (the old one is kept aside)"
            )
        identity = Identity.generate(self.random_bytes(SEED_BYTES))
        encrypted = self.passphrase is not None
        file_bytes, store_key = seal_identity(
            identity.seed, self.passphrase, self.random_bytes, self.kdf_limits
        )
        replaced_dir = self._move_aside_previous()
        try:
            with closing(SQLiteStore(self.store_path, key=store_key)) as store:
                store.set_setting("name", name)
                store.put_prekeys(OwnPrekeys.create(identity, int(self.clock())).to_bytes())
            write_private_file(self.identity_path, file_bytes, replace=False)
        except FileExistsError:
            raise IdentityError(
                f"another process created an identity in {self.path} at the same time"
            ) from None
        except BaseException:
            self._undo_create(replaced_dir)
            raise
        self._store_key, self._unlocked = store_key, True
        return NewIdentity(identity, name, encrypted, replaced_dir)

    def _store_files(self, directory: Path) -> list[Path]:
        return [directory / STORE_FILE] + [
            directory / (STORE_FILE + suffix) for suffix in STORE_COMPANION_SUFFIXES
        ]

    def _undo_create(self, replaced_dir: Path | None) -> None:
        """After a failed init: drop the half-made store, put the previous files back."""
        for file in self._store_files(self.path):
            with suppress(FileNotFoundError):
                file.unlink()
        if replaced_dir is not None:
            for file in replaced_dir.iterdir():
                os.replace(file, self.path / file.name)
            replaced_dir.rmdir()

    def _move_aside_previous(self) -> Path | None:
        previous = [self.identity_path, *self._store_files(self.path)]
        present = [p for p in previous if p.exists()]
        if not present:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        target = self.path / f"{REPLACED_DIR_PREFIX}{stamp}"
        suffix = 1
        while target.exists():
            suffix += 1
            target = self.path / f"{REPLACED_DIR_PREFIX}{stamp}-{suffix}"
        target.mkdir(mode=HOME_DIR_MODE)
        target.chmod(HOME_DIR_MODE)
        for file in present:
            os.replace(file, target / file.name)
        fsync_dir(self.path)
        return target

    def lock(self) -> HomeLock:
        """The lock a running node holds on this home (see :mod:`p2pdm.daemon.lockfile`)."""
        return HomeLock(self.path)

    # --- store ---
    def open_store(self) -> SQLiteStore:
        """Open the existing store, encrypted if the identity file is.

        Unlocks the identity first if that was not done yet (raising what
        :meth:`load_identity` raises). Raises :class:`HomeError` if there is
        no store, :class:`~p2pdm.errors.StoreError` if it cannot be opened.
        """
        self._require_dir()
        if not self.store_path.is_file():
            raise HomeError(
                f"no message store in {self.path}; run `{hints.command(self.path, 'init')}`"
            )
        if not self._unlocked and self.has_identity():
            self.load_identity()
        from p2pdm.store.sqlite import SQLiteStore

        return SQLiteStore(self.store_path, key=self._store_key)

    # --- local API token ---
    def api_token(self) -> str:
        """The local API's bearer token, created (0600) on first use.

        Raises :class:`HomeError` if the token file is exposed or empty.
        """
        self.ensure()
        try:
            return self._read_api_token()
        except FileNotFoundError:
            pass
        token = base64.urlsafe_b64encode(self.random_bytes(API_TOKEN_BYTES)).rstrip(b"=")
        try:
            write_private_file(self.api_token_path, token + b"\n", replace=False)
        except FileExistsError:
            return self._read_api_token()  # another process made it first: use theirs
        return token.decode("ascii")

    def _read_api_token(self) -> str:
        return read_api_token(self.api_token_path)
