"""The node home: the one directory that holds a node's identity, store and settings.

How this works: :class:`Home` resolves the directory (``--home`` beats the
``P2PDM_HOME`` environment variable, which beats the platform's user data
directory) and names every file in it. The identity file is a small CBOR map
with a format version and either the 32-byte seed (no passphrase) or the seed
sealed with a key derived from ``P2PDM_PASSPHRASE`` by argon2id (salt and
cost parameters stored beside it, so they can be raised later without
breaking old files). With a passphrase the store is encrypted too
(SQLCipher), under a key derived from the same argon2id output, so unlocking
costs one argon2id run. Secret files are written atomically and privately
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
import getpass
import os
import time
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from contextlib import closing, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.pwhash.argon2id as argon2id
import nacl.secret

from p2pdm import hints
from p2pdm.core import cbor
from p2pdm.core.identity import SEED_BYTES, Identity
from p2pdm.core.session import OwnPrekeys
from p2pdm.daemon.lockfile import HomeLock
from p2pdm.errors import (
    ConfigError,
    HomeError,
    IdentityError,
    PassphraseError,
    UnsupportedVersion,
    WireError,
)
from p2pdm.homefiles import (
    API_TOKEN_FILE,
    ENV_HOME,
    fsync_dir,
    read_api_token,
    read_private_file,
    resolve_home,
    write_private_file,
)
from p2pdm.limits import MAX_NAME_BYTES
from p2pdm.store.cipher import KEY_BYTES
from p2pdm.store.sqlite import SQLiteStore

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

ENV_PASSPHRASE: Final = "P2PDM_PASSPHRASE"

IDENTITY_FILE: Final = "identity.cbor"
STORE_FILE: Final = "store.sqlite"
# SQLite keeps these beside the database; they belong to it when it moves.
STORE_COMPANION_SUFFIXES: Final = ("-wal", "-shm", "-journal")
CONFIG_FILE: Final = "config.toml"
LOG_DIR: Final = "logs"
REPLACED_DIR_PREFIX: Final = "replaced-"

HOME_DIR_MODE: Final = 0o700

IDENTITY_FILE_VERSION: Final = 1
# A v1 identity file is under 200 bytes; refuse to parse anything much larger.
MAX_IDENTITY_FILE_BYTES: Final = 4096
KDF_NAME: Final = "argon2id"
#: BLAKE2b personalisation of the store key, derived from the identity file's
#: argon2id key: the two keys differ, yet one argon2id run gives both.
STORE_KEY_PERSON: Final = b"p2pdm/store-key"
SALT_BYTES: Final = argon2id.SALTBYTES
SEALED_SEED_BYTES: Final = (
    nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES + SEED_BYTES
)

API_TOKEN_BYTES: Final = 32  # 256 bits: not guessable by any local process
MAX_CONFIG_BYTES: Final = 1 << 20
#: Longest list a setting may hold (addresses): more is a mistake, not a config.
MAX_CONFIG_LIST_ITEMS: Final = 64


@dataclass(frozen=True, slots=True)
class KdfLimits:
    """argon2id cost: passes over memory and bytes of memory."""

    opslimit: int
    memlimit: int


#: libsodium's "moderate" argon2id cost (3 passes, 256 MiB, about 0.5 s).
#: The identity file is at rest on disk, so a thief can guess passphrases
#: offline for as long as they like: each guess should cost far more than an
#: online login would ("interactive", 64 MiB). The identity is unlocked only
#: when a command starts (init, id, run), so half a second is acceptable there.
DEFAULT_KDF_LIMITS: Final = KdfLimits(argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE)
#: Bounds on the cost read back from a file: below the minimum libsodium
#: refuses; above "sensitive" (1 GiB) a damaged or hostile file could make
#: every command allocate without limit.
_KDF_OPS_RANGE: Final = (argon2id.OPSLIMIT_MIN, argon2id.OPSLIMIT_SENSITIVE)
_KDF_MEM_RANGE: Final = (argon2id.MEMLIMIT_MIN, argon2id.MEMLIMIT_SENSITIVE)

RandomBytes = Callable[[int], bytes]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Config:
    """Settings read from ``<home>/config.toml``.

    Each setting is a field here; a key in the file that is not a field is
    refused by name, so a typo never silently does nothing. Features that
    add settings add fields; :meth:`Home.config` checks each value against
    the type of its field's default (a list of strings for tuples).
    """

    #: Multiaddrs the node listens on; ``run --listen`` replaces them.
    listen: tuple[str, ...] = ()
    #: The local API's ``host:port``; ``run --api`` replaces it.
    api: str = ""
    #: Bootstrap multiaddrs (``…/p2p/<PeerID>``); ``run --bootstrap`` adds to them.
    bootstrap: tuple[str, ...] = ()
    #: Offer the mailbox service; ``run --mailbox`` turns it on too.
    mailbox: bool = False
    #: Preferred mailboxes (``…/p2p/<PeerID>``); ``run --mailbox-peer`` adds to them.
    mailbox_peers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NewIdentity:
    """What :meth:`Home.create_identity` made."""

    identity: Identity
    name: str
    encrypted: bool
    #: Where the previous identity and store were moved, if there were any.
    replaced_dir: Path | None


# --- the identity file format --------------------------------------------


def _passphrase_key(passphrase: str, salt: bytes, limits: KdfLimits) -> bytes:
    # NFC, so the same passphrase typed on systems that compose accents
    # differently derives the same key.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        secret,
        salt,
        opslimit=limits.opslimit,
        memlimit=limits.memlimit,
    )


def _store_key(passphrase_key: bytes) -> bytes:
    return nacl.hash.blake2b(
        b"",
        digest_size=KEY_BYTES,
        key=passphrase_key,
        person=STORE_KEY_PERSON,
        encoder=nacl.encoding.RawEncoder,
    )


def _seal_identity(
    seed: bytes, passphrase: str | None, random_bytes: RandomBytes, limits: KdfLimits
) -> tuple[bytes, bytes | None]:
    """``(identity file bytes, store key or None without a passphrase)``."""
    if len(seed) != SEED_BYTES:
        raise IdentityError("an identity seed is 32 bytes")
    if not passphrase:
        return cbor.encode({"version": IDENTITY_FILE_VERSION, "seed": seed}), None
    salt = random_bytes(SALT_BYTES)
    nonce = random_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    key = _passphrase_key(passphrase, salt, limits)
    box = nacl.secret.SecretBox(key)
    file_bytes = cbor.encode(
        {
            "version": IDENTITY_FILE_VERSION,
            "kdf": KDF_NAME,
            "opslimit": limits.opslimit,
            "memlimit": limits.memlimit,
            "salt": salt,
            "sealed_seed": bytes(box.encrypt(seed, nonce)),
        }
    )
    return file_bytes, _store_key(key)


def encode_identity_file(
    seed: bytes,
    passphrase: str | None,
    random_bytes: RandomBytes,
    limits: KdfLimits = DEFAULT_KDF_LIMITS,
) -> bytes:
    """The identity file for ``seed``: plain, or sealed with ``passphrase`` if given."""
    return _seal_identity(seed, passphrase, random_bytes, limits)[0]


def decode_identity_file(data: bytes, passphrase: str | None, where: str) -> tuple[bytes, bool]:
    """``(seed, encrypted)`` of an identity file; see :func:`unlock_identity_file`."""
    seed, store_key = unlock_identity_file(data, passphrase, where)
    return seed, store_key is not None


def unlock_identity_file(
    data: bytes, passphrase: str | None, where: str
) -> tuple[bytes, bytes | None]:
    """Return ``(seed, store key)`` from an identity file's bytes.

    The store key is None for a plain file (the store is plain too).
    Raises :class:`PassphraseError` if the file is encrypted and the
    passphrase is missing or wrong, :class:`IdentityError` if it is damaged
    or of an unknown version. ``where`` names the file in messages.
    """
    try:
        f = cbor.decode_map(data, MAX_IDENTITY_FILE_BYTES, "identity file")
        version = f.integer("version", 0, 2**32)
        if version != IDENTITY_FILE_VERSION:
            raise UnsupportedVersion(str(version))
        if f.has("seed"):
            seed = f.blob("seed", size=SEED_BYTES)
            f.done()
            return seed, None
        kdf = f.text("kdf", max_bytes=32)
        limits = KdfLimits(
            f.integer("opslimit", *_KDF_OPS_RANGE), f.integer("memlimit", *_KDF_MEM_RANGE)
        )
        salt = f.blob("salt", size=SALT_BYTES)
        sealed = f.blob("sealed_seed", size=SEALED_SEED_BYTES)
        f.done()
    except UnsupportedVersion as exc:
        raise IdentityError(
            f"{where} has format version {exc}, this p2pdm reads version "
            f"{IDENTITY_FILE_VERSION}; upgrade p2pdm"
        ) from None
    except WireError as exc:
        raise IdentityError(f"{where} is damaged ({exc})") from None
    if kdf != KDF_NAME:
        raise IdentityError(f"{where} uses an unknown key derivation {kdf!r}; upgrade p2pdm")
    if not passphrase:
        raise PassphraseError(f"{where} is encrypted; set {ENV_PASSPHRASE} to its passphrase")
    key = _passphrase_key(passphrase, salt, limits)
    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(sealed)), _store_key(key)
    except nacl.exceptions.CryptoError:
        raise PassphraseError(f"wrong passphrase for {where} (check {ENV_PASSPHRASE})") from None


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
    try:
        return check_display_name(getpass.getuser())
    except (OSError, KeyError, ConfigError):
        return FALLBACK_DISPLAY_NAME


# --- the home --------------------------------------------------------------


def _config_value(path: Path, key: str, value: object, default: object) -> object:
    """``value`` checked against the type of ``default``; raises :class:`ConfigError`."""
    if isinstance(default, tuple):
        if (
            not isinstance(value, list)
            or len(value) > MAX_CONFIG_LIST_ITEMS
            or not all(isinstance(item, str) for item in value)
        ):
            raise ConfigError(
                f"{path}: {key} must be a list of at most {MAX_CONFIG_LIST_ITEMS} strings"
            )
        return tuple(value)
    if type(value) is not type(default):
        raise ConfigError(f"{path}: {key} must be a {type(default).__name__}")
    return value


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
        random_bytes: RandomBytes = os.urandom,
        clock: Clock = time.time,
        kdf_limits: KdfLimits = DEFAULT_KDF_LIMITS,
    ) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self.path = resolve_home(path, self._env)
        self.random_bytes = random_bytes
        self.clock = clock
        self.kdf_limits = kdf_limits
        #: The store key found when the identity was last unlocked (None: plain).
        self._store_key: bytes | None = None
        self._unlocked = False

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
        try:
            with open(self.config_path, "rb") as file:
                raw = file.read(MAX_CONFIG_BYTES + 1)
        except FileNotFoundError:
            return Config()
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{self.config_path} is larger than {MAX_CONFIG_BYTES} bytes")
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{self.config_path} is not valid TOML: {exc}") from None
        defaults = {f.name: f.default for f in fields(Config)}
        values: dict[str, object] = {}
        for key, value in data.items():
            if key not in defaults:
                raise ConfigError(f"{self.config_path}: unknown setting {key!r}")
            values[key] = _config_value(self.config_path, key, value, defaults[key])
        return Config(**values)  # type: ignore[arg-type]

    # --- identity ---
    def has_identity(self) -> bool:
        return self.identity_path.is_file()

    def load_identity(self) -> Identity:
        """Read and unlock the identity.

        Raises :class:`IdentityError` if there is none or it is damaged,
        :class:`PassphraseError` for a missing or wrong passphrase,
        :class:`HomeError` if the file is readable by other users.
        """
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
        if self.has_identity() and not force:
            raise IdentityError(
                f"an identity already exists in {self.path}; "
                "use `p2pdm init --force` to replace it (the old one is kept aside)"
            )
        identity = Identity.generate(self.random_bytes(SEED_BYTES))
        encrypted = self.passphrase is not None
        file_bytes, store_key = _seal_identity(
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
