"""Moving a node to another machine: the export archive, and the mark it leaves behind.

How this works: :func:`export_home` writes one file holding everything a
home needs to go on elsewhere: the identity seed, the display name, a
consistent copy of the message store (contacts, sessions, history, outbox;
taken with SQLite's backup API, so the node may keep running, see
:mod:`p2pdm.store.snapshot`) and ``config.toml`` if there is one. The file
is sealed with a passphrase exactly as the identity file is (argon2id, the
same code and cost, then an XSalsa20-Poly1305 secretbox), so a copy on a
USB stick or in a cloud folder gives nothing away without the passphrase.

:func:`import_home` restores an archive into an empty home only: it never
overwrites an identity or a store. The store is written encrypted under the
new home's own key when ``P2PDM_PASSPHRASE`` is set there (the identity
file is sealed with it too), plain otherwise; the store's plain bytes stay
in memory.

Both homes must not run at once: each would advance the same ratchet
sessions with the same contacts, and each side would then fail to decrypt
what the other one's contacts send. So the exported home records the export
in ``exported.json`` (:class:`ExportMark`), and ``p2pdm run`` there refuses
until ``--force`` clears the mark (:func:`check_not_exported`).

The archive format (normative description in docs/protocol.md, "Export
archive"): one canonical CBOR map ``{format: "p2pdm-export", version: 1,
kdf: "argon2id", opslimit, memlimit, salt, sealed}``, where ``sealed`` is
``nonce ‖ secretbox(payload)`` and the payload is the CBOR map ``{seed,
name, store, exported_at_ms}`` plus ``config`` when the home had one. The
size is checked before anything is parsed, and every field is checked by
type and size, with no field unknown or missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import nacl.exceptions
import nacl.secret

from p2pdm.core import cbor
from p2pdm.core.identity import SEED_BYTES, Identity, PeerId
from p2pdm.core.prekeys import OwnPrekeys
from p2pdm.daemon.config import MAX_CONFIG_BYTES
from p2pdm.daemon.export_mark import EXPORT_MARK_FILE, ExportMark, check_not_exported
from p2pdm.daemon.home import STORE_COMPANION_SUFFIXES, Home, check_display_name
from p2pdm.daemon.identity_file import (
    KDF_NAME,
    SALT_BYTES,
    KdfLimits,
    RandomBytes,
    passphrase_key,
    read_kdf,
    seal_identity,
)
from p2pdm.daemon.lockfile import HomeLock
from p2pdm.errors import (
    ArchiveError,
    ConfigError,
    HomeError,
    P2PDMError,
    SessionError,
    UnsupportedVersion,
    WireError,
)
from p2pdm.homefiles import write_private_file
from p2pdm.limits import MAX_NAME_BYTES
from p2pdm.store import snapshot
from p2pdm.store.sqlite import SQLiteStore

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_VERSION",
    "EXPORT_MARK_FILE",
    "MAX_ARCHIVE_BYTES",
    "ArchiveContents",
    "ExportMark",
    "Exported",
    "Imported",
    "check_not_exported",
    "export_home",
    "import_home",
    "open_archive",
    "read_archive_file",
    "seal_archive",
]

#: The ``format`` field: says what the file is before anything is decrypted.
ARCHIVE_FORMAT: Final = "p2pdm-export"
ARCHIVE_VERSION: Final = 1
#: The whole archive is read, decrypted and decoded in memory (about three
#: copies at the peak). 1 GiB is far above a person's history (a text is at
#: most 64 KiB, the event log is capped) and within a laptop's memory; a
#: mailbox node holding more for others is moved by copying its stopped home.
MAX_ARCHIVE_BYTES: Final = 1 << 30
_NONCE_BYTES: Final = nacl.secret.SecretBox.NONCE_SIZE
_MAC_BYTES: Final = nacl.secret.SecretBox.MACBYTES
#: The outer map beside ``sealed``: a few short fields.
_HEADER_SLACK_BYTES: Final = 256


@dataclass(frozen=True, slots=True)
class ArchiveContents:
    """What an archive holds (its payload, once decrypted)."""

    seed: bytes = field(repr=False)
    name: str
    #: A plain SQLite image of the store (never written to disk as such).
    store: bytes = field(repr=False)
    #: ``config.toml``'s bytes, or None if the home had none.
    config: bytes | None
    exported_at_ms: int


@dataclass(frozen=True, slots=True)
class Exported:
    """What :func:`export_home` wrote."""

    path: Path
    peer_id: PeerId
    name: str
    size: int
    #: A node was running from the home during the export: it should stop now.
    node_was_running: bool


@dataclass(frozen=True, slots=True)
class Imported:
    """What :func:`import_home` restored."""

    peer_id: PeerId
    name: str
    #: The store and identity file are encrypted with the new home's passphrase.
    encrypted: bool
    #: The archive's config.toml was written into the home.
    config_restored: bool
    #: The archive had a config.toml, but the home's own was kept.
    config_kept: bool
    exported_at_ms: int


# --- the container ---------------------------------------------------------


def _check_passphrase(passphrase: str) -> None:
    if not passphrase:
        raise ArchiveError("the archive passphrase is empty; choose one")


def seal_archive(
    contents: ArchiveContents, passphrase: str, random_bytes: RandomBytes, limits: KdfLimits
) -> bytes:
    """The archive file's bytes for ``contents``, sealed with ``passphrase``.

    Raises :class:`ArchiveError` for an empty passphrase or an archive over
    :data:`MAX_ARCHIVE_BYTES`.
    """
    _check_passphrase(passphrase)
    payload = {
        "seed": contents.seed,
        "name": contents.name,
        "store": contents.store,
        "exported_at_ms": contents.exported_at_ms,
    }
    if contents.config is not None:
        payload["config"] = contents.config
    salt = random_bytes(SALT_BYTES)
    box = nacl.secret.SecretBox(passphrase_key(passphrase, salt, limits))
    sealed = bytes(box.encrypt(cbor.encode(payload), random_bytes(_NONCE_BYTES)))
    del payload
    data = cbor.encode(
        {
            "format": ARCHIVE_FORMAT,
            "version": ARCHIVE_VERSION,
            "kdf": KDF_NAME,
            "opslimit": limits.opslimit,
            "memlimit": limits.memlimit,
            "salt": salt,
            "sealed": sealed,
        }
    )
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveError(
            f"the archive would be {len(data)} bytes, over the {MAX_ARCHIVE_BYTES}-byte limit; "
            "stop the node and copy its home directory instead"
        )
    return data


def open_archive(data: bytes, passphrase: str, where: str) -> ArchiveContents:
    """Decrypt and check an archive's bytes; ``where`` names it in messages.

    Raises :class:`ArchiveError` if it is too large, damaged, truncated, of
    an unknown version, or the passphrase is empty or wrong.
    """
    _check_passphrase(passphrase)
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveError(f"{where} is larger than {MAX_ARCHIVE_BYTES} bytes; it is not p2pdm's")
    try:
        f = cbor.decode_map(data, MAX_ARCHIVE_BYTES, "archive")
        if f.text("format", max_bytes=32) != ARCHIVE_FORMAT:
            raise ArchiveError(f"{where} is not a p2pdm export archive")
        version = f.integer("version", 0, 2**32)
        if version != ARCHIVE_VERSION:
            raise UnsupportedVersion(str(version))
        kdf, limits, salt = read_kdf(f)
        sealed = f.blob("sealed", max_size=MAX_ARCHIVE_BYTES)
        f.done()
    except UnsupportedVersion as exc:
        raise ArchiveError(
            f"{where} has archive format version {exc}, this p2pdm reads version "
            f"{ARCHIVE_VERSION}; upgrade p2pdm"
        ) from None
    except WireError as exc:
        raise ArchiveError(
            f"{where} is not a p2pdm export archive, or it is truncated or damaged ({exc})"
        ) from None
    if kdf != KDF_NAME:
        raise ArchiveError(f"{where} uses an unknown key derivation {kdf!r}; upgrade p2pdm")
    if len(sealed) < _NONCE_BYTES + _MAC_BYTES:
        raise ArchiveError(f"{where} is truncated")
    box = nacl.secret.SecretBox(passphrase_key(passphrase, salt, limits))
    try:
        payload = bytes(box.decrypt(sealed))
    except nacl.exceptions.CryptoError:
        raise ArchiveError(
            f"wrong passphrase for {where}, or the archive is damaged; nothing was changed"
        ) from None
    del sealed
    return _decode_payload(payload, where)


def _decode_payload(payload: bytes, where: str) -> ArchiveContents:
    try:
        f = cbor.decode_map(payload, MAX_ARCHIVE_BYTES, "archive contents")
        contents = ArchiveContents(
            seed=f.blob("seed", size=SEED_BYTES),
            name=f.text("name", max_bytes=MAX_NAME_BYTES, min_chars=1),
            store=f.blob("store", max_size=MAX_ARCHIVE_BYTES),
            config=f.opt_blob("config", max_size=MAX_CONFIG_BYTES),
            exported_at_ms=f.integer("exported_at_ms", 0, 2**63 - 1),
        )
        f.done()
        check_display_name(contents.name)
    except (WireError, ConfigError) as exc:
        # Authenticated, yet not what an export writes: a newer or broken p2pdm made it.
        raise ArchiveError(f"the contents of {where} are not what p2pdm expects ({exc})") from None
    return contents


def read_archive_file(path: Path) -> bytes:
    """The bytes of the archive at ``path``, refused by size before they are read.

    Raises :class:`ArchiveError` if it is missing, not a file or too large.
    """
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_ARCHIVE_BYTES:
                raise ArchiveError(
                    f"{path} is {size} bytes, over the {MAX_ARCHIVE_BYTES}-byte limit of an "
                    "archive; it is not p2pdm's"
                )
            data = file.read(MAX_ARCHIVE_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise ArchiveError(f"cannot read the archive {path}: {exc.strerror}") from None
    if len(data) > MAX_ARCHIVE_BYTES:  # it grew while being read
        raise ArchiveError(f"{path} is over the {MAX_ARCHIVE_BYTES}-byte limit of an archive")
    return data


# --- export and import ---------------------------------------------------------


def export_home(home: Home, path: Path, ask_passphrase: Callable[[], str]) -> Exported:
    """Write the archive of ``home`` to the new file ``path`` and mark the home exported.

    ``ask_passphrase`` gives the archive's passphrase; it is called once the
    home is unlocked. Raises :class:`ArchiveError` if ``path`` exists or the
    passphrase is empty, and what unlocking the identity and opening the
    store raise.
    """
    path = path.expanduser().absolute()
    if path.exists():
        raise ArchiveError(
            f"{path} already exists; choose a new file (an archive is never overwritten)"
        )
    if not path.parent.is_dir():
        raise ArchiveError(f"cannot write {path}: {path.parent} is not a directory")
    identity = home.load_identity()
    home.config()  # a broken config.toml is reported before it is copied
    passphrase = ask_passphrase()
    _check_passphrase(passphrase)
    # Hold the lock when no node runs, so none starts between the copy and the mark.
    lock = HomeLock(home.path, "start another")
    try:
        lock.acquire()
        running = False
    except HomeError:  # a node runs: the backup API copies consistently all the same
        running = True
    try:
        with closing(home.open_store()) as store:
            name = store.get_setting("name")
        if not isinstance(name, str):
            raise HomeError(f"the store in {home.path} has no display name; it is incomplete")
        contents = ArchiveContents(
            seed=identity.seed,
            name=name,
            store=snapshot.plain_image(home.store_path, home.store_key),
            config=_read_config(home),
            exported_at_ms=int(home.clock() * 1000),
        )
        data = seal_archive(contents, passphrase, home.random_bytes, home.kdf_limits)
        del contents
        try:
            write_private_file(path, data, replace=False)
        except FileExistsError:
            raise ArchiveError(f"{path} was created meanwhile; it was not overwritten") from None
        ExportMark(int(home.clock() * 1000), str(path)).write(home)
    finally:
        lock.release()  # harmless when not held
    return Exported(path, identity.peer_id, name, len(data), running)


def _read_config(home: Home) -> bytes | None:
    try:
        with open(home.config_path, "rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{home.config_path} is larger than {MAX_CONFIG_BYTES} bytes")
    return raw


def import_home(home: Home, path: Path, ask_passphrase: Callable[[], str]) -> Imported:
    """Restore the archive at ``path`` into ``home``, which must hold no identity or store.

    ``ask_passphrase`` gives the archive's passphrase once the file is read.

    The store and identity file are encrypted with the home's passphrase
    (``P2PDM_PASSPHRASE``) if it has one. Raises :class:`ArchiveError` for
    an unreadable archive or wrong passphrase, :class:`HomeError` for a home
    that is not empty; a failure leaves the home as it was.
    """
    _refuse_used_home(home)  # before the passphrase is asked for nothing
    data = read_archive_file(path)
    contents = open_archive(data, ask_passphrase(), str(path))
    del data
    identity = Identity(contents.seed)
    home.ensure()
    with HomeLock(home.path, "import into it"):
        _refuse_used_home(home)
        file_bytes, store_key = seal_identity(
            contents.seed, home.passphrase, home.random_bytes, home.kdf_limits
        )
        config_written = False
        try:
            snapshot.restore_image(contents.store, home.store_path, store_key)
            with closing(SQLiteStore(home.store_path, key=store_key)) as store:
                _check_store(store, identity, str(path))
            if contents.config is not None and not home.config_path.exists():
                write_private_file(home.config_path, contents.config, replace=False)
                config_written = True
            write_private_file(home.identity_path, file_bytes, replace=False)
        except BaseException:
            for leftover in _store_files(home):
                with suppress(FileNotFoundError):
                    leftover.unlink()
            if config_written:
                with suppress(FileNotFoundError):
                    home.config_path.unlink()
            raise
    return Imported(
        identity.peer_id,
        contents.name,
        store_key is not None,
        config_written,
        contents.config is not None and not config_written,
        contents.exported_at_ms,
    )


def _refuse_used_home(home: Home) -> None:
    taken = [p for p in (home.identity_path, *_store_files(home)) if p.exists() or p.is_symlink()]
    if taken:
        raise HomeError(
            f"{home.path} already holds {taken[0].name}; import restores into an empty "
            "home only (give a new --home); nothing was changed"
        )


def _store_files(home: Home) -> list[Path]:
    return [home.store_path] + [
        Path(str(home.store_path) + suffix) for suffix in STORE_COMPANION_SUFFIXES
    ]


def _check_store(store: SQLiteStore, identity: Identity, where: str) -> None:
    """The restored store belongs to the archive's identity; raises ArchiveError."""
    prekeys = store.get_prekeys()
    try:
        if prekeys is None or not isinstance(store.get_setting("name"), str):
            raise SessionError("no prekeys or no display name")
        OwnPrekeys.from_bytes(identity, prekeys).check()  # the whole state, not only its bundle
    except P2PDMError as exc:
        raise ArchiveError(f"the store in {where} does not fit its identity ({exc})") from None
