"""Where sealed blobs live: files under ``<home>/blobs/``, or memory in tests.

How this works: a blob is kept exactly as it travels, sealed chunk after
sealed chunk (:mod:`p2pdm.core.blob`), so it is encrypted at rest; its key
is in the store. A file is named by the hex of its blob id (or, while an
upload is still being sealed, a random hex name with ``.part``): a name a
peer gave is never part of a path. The directory is mode 0700, its files
0600. :class:`MemoryBlobFiles` keeps the same bytes in a dict.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

from p2pdm.errors import StoreError

__all__ = ["BLOBS_DIR", "BlobFiles", "DirBlobFiles", "MemoryBlobFiles"]

#: The folder of a home that holds blobs.
BLOBS_DIR: Final = "blobs"
_DIR_MODE: Final = 0o700
_FILE_MODE: Final = 0o600
#: Pieces one ``pwritev`` takes at most (POSIX guarantees IOV_MAX >= 16;
#: Linux takes 1024): a run longer than this is written in several calls.
_MAX_IOV: Final = 16


class BlobFiles(Protocol):
    """Byte files by name (a blob id's hex, or an upload's temporary name)."""

    def length(self, name: str) -> int:
        """Bytes in the file; 0 if there is none."""
        ...

    def write_at(self, name: str, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` and drop anything after it (creates the file)."""
        ...

    def write_chunks(self, name: str, offset: int, chunks: Sequence[bytes]) -> None:
        """Write ``chunks`` one after another from ``offset`` and drop anything
        after them (creates the file): one open and one write for a run."""
        ...

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; raises StoreError if there is no file."""
        ...

    def rename(self, old: str, new: str) -> None: ...
    def delete(self, name: str) -> bool: ...
    def names(self) -> list[str]: ...


#: A blob's hex id, or an upload's random hex name with ``.part``.
_NAME: Final = re.compile(r"[0-9a-f]{64}|[0-9a-f]{32}\.part")


def _check(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a blob file name")
    return name


class DirBlobFiles:
    """Blob files in one directory (created mode 0700 on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / _check(name)

    def length(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            return 0

    def write_at(self, name: str, offset: int, data: bytes) -> None:
        self.write_chunks(name, offset, (data,))

    def write_chunks(self, name: str, offset: int, chunks: Sequence[bytes]) -> None:
        path = self._path(name)
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, _FILE_MODE)
            except FileNotFoundError:  # the first file: make the directory
                self.directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, _FILE_MODE)
            try:
                os.ftruncate(fd, offset)
                pieces = [memoryview(chunk) for chunk in chunks if chunk]
                while pieces:  # a regular file takes all at once; a short write goes on
                    done = os.pwritev(fd, pieces[:_MAX_IOV], offset)
                    offset += done
                    while pieces and done >= len(pieces[0]):
                        done -= len(pieces[0])
                        pieces.pop(0)
                    if done:
                        pieces[0] = pieces[0][done:]
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot write blob file {name}: {exc.strerror}") from exc

    def read(self, name: str, offset: int, length: int) -> bytes:
        try:
            with self._path(name).open("rb") as file:
                file.seek(offset)
                return file.read(length)
        except OSError as exc:
            raise StoreError(f"cannot read blob file {name}: {exc.strerror}") from exc

    def rename(self, old: str, new: str) -> None:
        try:
            os.replace(self._path(old), self._path(new))
        except OSError as exc:
            raise StoreError(f"cannot rename blob file {old}: {exc.strerror}") from exc

    def delete(self, name: str) -> bool:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot delete blob file {name}: {exc.strerror}") from exc
        return True

    def names(self) -> list[str]:
        try:
            return sorted(
                p.name for p in self.directory.iterdir() if _NAME.fullmatch(p.name) and p.is_file()
            )
        except FileNotFoundError:
            return []


class MemoryBlobFiles:
    """Blob files in a dict, for tests and simulations."""

    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}

    def length(self, name: str) -> int:
        return len(self.files.get(_check(name), b""))

    def write_at(self, name: str, offset: int, data: bytes) -> None:
        self.write_chunks(name, offset, (data,))

    def write_chunks(self, name: str, offset: int, chunks: Sequence[bytes]) -> None:
        file = self.files.setdefault(_check(name), bytearray())
        del file[offset:]
        file.extend(bytes(offset - len(file)))
        for chunk in chunks:
            file.extend(chunk)

    def read(self, name: str, offset: int, length: int) -> bytes:
        if name not in self.files:
            raise StoreError(f"no blob file {name}")
        return bytes(self.files[name][offset : offset + length])

    def rename(self, old: str, new: str) -> None:
        self.files[_check(new)] = self.files.pop(_check(old))

    def delete(self, name: str) -> bool:
        return self.files.pop(name, None) is not None

    def names(self) -> list[str]:
        return sorted(self.files)
