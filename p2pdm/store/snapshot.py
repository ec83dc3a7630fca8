"""A store as bytes and back: the consistent copy an export archive carries.

How this works: :func:`plain_image` copies the store file with SQLite's
online backup API, which reads one consistent snapshot even while the node
writes to the file from another connection (WAL mode). A plain store is
backed up into an in-memory database whose image
(:meth:`sqlite3.Connection.serialize`) is the result. An encrypted store
(SQLCipher) is backed up into an in-memory database under the same key,
and its rows are then copied into a plain in-memory database: SQLCipher's
backup works only between encrypted databases, and its Python binding
cannot serialize. Either way no plain copy ever touches the disk.

:func:`restore_image` does the reverse for a new home: the image is opened
in memory, checked, and written to a new store file, encrypted under the
new home's key if it has one (rows copied into a SQLCipher connection, so
the plain bytes again stay in memory).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress
from pathlib import Path
from typing import Final

from p2pdm.errors import StoreError
from p2pdm.store.cipher import connect_encrypted, db_errors
from p2pdm.store.database import BUSY_TIMEOUT_MS, FILE_MODE

__all__ = ["plain_image", "restore_image"]

#: SQLite keeps these beside a database file; a restore refuses to start over them.
_COMPANION_SUFFIXES: Final = ("-wal", "-shm", "-journal")


#: Bytes 18 and 19 of a database header: the file format versions for writing
#: and reading, 1 for a rollback journal and 2 for WAL.
_FORMAT_BYTES: Final = slice(18, 20)
_ROLLBACK_FORMAT: Final = b"\x01\x01"


def _rollback_format(image: bytes) -> bytes:
    """``image`` marked as a rollback-journal database: a copy of a WAL-mode file
    keeps the WAL mark, and an in-memory database carrying it cannot be opened."""
    if len(image) < _FORMAT_BYTES.stop or image[_FORMAT_BYTES] == _ROLLBACK_FORMAT:
        return image
    fixed = bytearray(image)
    fixed[_FORMAT_BYTES] = _ROLLBACK_FORMAT
    return bytes(fixed)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy_database(src: sqlite3.Connection, dst: sqlite3.Connection) -> None:
    """Copy every table, row, index, trigger and the AUTOINCREMENT counters of
    ``src`` into the empty ``dst`` (autocommit mode), in one transaction.

    A virtual table (the FTS5 search index) is created, not filled: its
    shadow tables, which creating it makes, are copied row for row instead,
    so the index arrives as it was. Triggers come last, after the rows."""
    objects = src.execute(
        "SELECT type, name, sql FROM sqlite_master "
        "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    ).fetchall()
    (user_version,) = src.execute("PRAGMA user_version").fetchone()
    dst.execute("BEGIN IMMEDIATE")
    try:
        tables = [(name, sql) for kind, name, sql in objects if kind == "table"]
        virtual = {n for n, sql in tables if sql.upper().startswith("CREATE VIRTUAL TABLE")}
        # Virtual tables first: a table made again after a migration can come
        # after its shadow tables in the schema's order.
        tables.sort(key=lambda table: table[0] not in virtual)
        for name, sql in tables:
            if name in virtual:
                dst.execute(sql)
                continue
            made = dst.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
            if made and any(name.startswith(f"{v}_") for v in virtual):
                dst.execute(f"DELETE FROM {_quote(name)}")  # a shadow table: its rows follow
            else:
                dst.execute(sql)
            rows = src.execute(f"SELECT * FROM {_quote(name)}")
            marks = ", ".join("?" * len(rows.description))
            dst.executemany(f"INSERT INTO {_quote(name)} VALUES ({marks})", rows)
        has_sequence = src.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
        ).fetchone()
        if has_sequence:
            dst.execute("DELETE FROM sqlite_sequence")
            dst.executemany(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                src.execute("SELECT name, seq FROM sqlite_sequence"),
            )
        for kind, _name, sql in objects:
            if kind != "table":
                dst.execute(sql)
        dst.execute(f"PRAGMA user_version = {int(user_version):d}")
        dst.execute("COMMIT")
    except BaseException:
        with suppress(*db_errors()):
            dst.execute("ROLLBACK")
        raise


def plain_image(path: Path, key: bytes | None) -> bytes:
    """A consistent plain SQLite image of the store at ``path`` (encrypted under ``key``
    if given), made while a node may be writing to it. Raises StoreError."""
    if not path.is_file():
        raise StoreError(f"no message store at {path}")
    timeout = BUSY_TIMEOUT_MS / 1000
    try:
        with closing(sqlite3.connect(":memory:", isolation_level=None)) as plain:
            if key is None:
                with closing(sqlite3.connect(path, timeout=timeout)) as src:
                    src.backup(plain)  # pages=-1: one step, so one snapshot
            else:
                with (
                    closing(connect_encrypted(str(path), key, timeout)) as src,
                    closing(connect_encrypted(":memory:", key, timeout)) as copy,
                ):
                    src.backup(copy)
                    _copy_database(copy, plain)
            return _rollback_format(plain.serialize())
    except db_errors() as exc:
        raise StoreError(f"cannot copy the message store {path}: {exc}") from exc


def restore_image(image: bytes, path: Path, key: bytes | None) -> None:
    """Write the plain SQLite ``image`` as a new store file at ``path``, encrypted under
    ``key`` if given. Raises StoreError if the image is not a sound SQLite database or
    a store file is already there; a failure leaves no file behind."""
    for existing in [path, *(Path(str(path) + s) for s in _COMPANION_SUFFIXES)]:
        if existing.exists():
            raise StoreError(f"{existing} already exists; it was not overwritten")
    try:
        with closing(sqlite3.connect(":memory:", isolation_level=None)) as source:
            source.deserialize(_rollback_format(image))
            (verdict,) = source.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise StoreError(f"the store in the archive is damaged ({verdict})")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
            os.close(fd)
            try:
                if key is None:
                    with closing(sqlite3.connect(path)) as target:
                        source.backup(target)
                else:
                    with closing(
                        connect_encrypted(str(path), key, BUSY_TIMEOUT_MS / 1000)
                    ) as target:
                        _copy_database(source, target)
            except BaseException:
                for leftover in [path, *(Path(str(path) + s) for s in _COMPANION_SUFFIXES)]:
                    with suppress(FileNotFoundError):
                        leftover.unlink()
                raise
    except db_errors(OSError) as exc:
        raise StoreError(f"cannot restore the message store at {path}: {exc}") from exc
