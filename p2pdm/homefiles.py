"""The files of a node home that more than the node itself reads: the light half of the home.

How this works: the SDK (:mod:`p2pdm.client`) finds a running node through
two files in its home, ``api_addr`` (``host:port``, written by the running
node) and ``api_token`` (the owner's bearer token). This module names those
files, resolves where the home is (``--home`` beats ``P2PDM_HOME``, which
beats the platform's user data directory), reads and writes them, and holds
the private-file primitives :mod:`p2pdm.daemon.home` builds on. Light on purpose: it
imports the standard library, platformdirs (through :mod:`p2pdm.hints`) and
:mod:`p2pdm.errors` only, so a bot importing the SDK loads no libp2p, no
session libraries, no PyNaCl and no SQLite.

Secret files are written atomically and privately: a 0600 temporary file in
the same directory, fsync, rename, fsync of the directory, so a crash leaves
either the old file or the new one, never half of one. A secret file that
other users may read is refused, as OpenSSH refuses an unprotected private
key; the error says which ``chmod`` fixes it.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from p2pdm import hints
from p2pdm.errors import HomeError

__all__ = [
    "API_ADDR_FILE",
    "API_TOKEN_FILE",
    "DEFAULT_API_PORT",
    "ENV_HOME",
    "ENV_PASSPHRASE",
    "HomeDir",
    "HomeLike",
    "api_addr_path",
    "format_api_addr",
    "fsync_dir",
    "parse_api_addr",
    "read_api_addr",
    "read_api_token",
    "read_private_file",
    "resolve_home",
    "write_api_addr",
    "write_private_file",
]

ENV_HOME: Final = "P2PDM_HOME"
#: The passphrase of an encrypted home (identity file and store).
ENV_PASSPHRASE: Final = "P2PDM_PASSPHRASE"
#: File in the home where the running node writes its API address (host:port).
API_ADDR_FILE: Final = "api_addr"
API_TOKEN_FILE: Final = "api_token"
#: Default local API port (on 127.0.0.1), used when ``api_addr`` is absent.
DEFAULT_API_PORT: Final = 4780

PRIVATE_FILE_MODE: Final = 0o600
# Any permission bit for group or others on a secret file makes us refuse it.
_GROUP_OTHER_BITS: Final = 0o077

#: ``api_addr`` is one short line; anything longer is not ours.
MAX_API_ADDR_CHARS: Final = 300
#: A token is 43 characters; a file far longer than that is not ours.
MAX_API_TOKEN_CHARS: Final = 1024
#: Host names the API may be reached at (it only listens on loopback).
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})


class HomeLike(Protocol):
    """Anything with the home's directory as ``path``, such as :class:`p2pdm.daemon.home.Home`."""

    @property
    def path(self) -> Path: ...


@dataclass(frozen=True, slots=True)
class HomeDir:
    """A home known by its directory alone: all the SDK needs of one."""

    path: Path


def resolve_home(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """The home directory: ``path``, else ``$P2PDM_HOME``, else the default.

    Raises :class:`HomeError` for an empty ``path``.
    """
    if path is not None:
        chosen = os.fspath(path)
        if not chosen:
            raise HomeError("--home is empty; give a directory")
    elif env.get(ENV_HOME):
        chosen = env[ENV_HOME]
    else:
        return hints.default_home()
    return Path(chosen).expanduser().absolute()


# --- private files ---------------------------------------------------------


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; Windows has no directory fsync)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600.

    With ``replace=False`` an existing file is left alone and
    :class:`FileExistsError` is raised, even if another process creates it
    meanwhile. On any failure the temporary file is removed.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            if hasattr(os, "fchmod"):
                os.fchmod(tmp_file.fileno(), PRIVATE_FILE_MODE)  # mkstemp's 0600, made explicit
            tmp_file.write(data)
            tmp_file.flush()
            os.fsync(tmp_file.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
            tmp.unlink()
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def _link_no_clobber(tmp: Path, path: Path) -> None:
    # A hard link fails if the target exists: an atomic "create if absent".
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # A file system without hard links: check, then rename (a small race).
        if path.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)


def read_private_file(path: Path, max_bytes: int, what: str) -> bytes:
    """Read a secret file, refusing one that other users may read.

    Raises :class:`FileNotFoundError` if it is absent, :class:`HomeError`
    if it is exposed, not a file, or too large.
    """
    try:
        file = open(path, "rb")  # noqa: SIM115 -- closed below; errors mapped first
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise HomeError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    with file:
        st = os.fstat(file.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise HomeError(f"{path} is not a regular file")
        if os.name == "posix" and st.st_mode & _GROUP_OTHER_BITS:
            raise HomeError(
                f"{what} {path} is accessible by other users "
                f"(mode {stat.S_IMODE(st.st_mode):o}); run `chmod 600 {path}`"
            )
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HomeError(f"{what} {path} is larger than {max_bytes} bytes; it is not p2pdm's")
    return data


def read_api_token(path: Path) -> str:
    """The token in the API token file ``path``.

    Raises :class:`FileNotFoundError` if it is absent, :class:`HomeError` if
    it is exposed, too large or empty.
    """
    raw = read_private_file(path, MAX_API_TOKEN_CHARS, "the API token file")
    token = raw.decode("ascii", "replace").strip()
    if not token:
        raise HomeError(f"the API token file {path} is empty; delete it")
    return token


# --- the address file ----------------------------------------------------------


def format_api_addr(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_api_addr(
    text: str, where: str = "the API address", *, any_port: bool = False
) -> tuple[str, int]:
    """Parse ``host:port``; raises :class:`HomeError` unless it is a loopback address.

    ``any_port`` also accepts port 0 (listen on a free port)."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]").lower()
    lowest = 0 if any_port else 1
    if not sep or not port_text.isdigit() or not lowest <= int(port_text) < 2**16:
        raise HomeError(f"{where} is not host:port: {text[:60]!r}")
    if host not in _LOOPBACK_HOSTS and not host.startswith("127."):
        if any_port:  # the address to listen on, as the user gave it
            fix = (
                f"use 127.0.0.1:{port_text}; the local API serves this machine only "
                "(from another machine, forward the port with `ssh -L`)"
            )
        else:  # a file the node wrote: someone else did
            fix = "delete it"
        raise HomeError(f"{where} names {host!r}, not a loopback address; {fix}")
    return host, int(port_text)


def api_addr_path(home: HomeLike) -> Path:
    return home.path / API_ADDR_FILE


def read_api_addr(home: HomeLike) -> tuple[str, int]:
    """The API address of the home's node; the default one if the file is absent."""
    path = api_addr_path(home)
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            text = file.read(MAX_API_ADDR_CHARS + 1)
    except FileNotFoundError:
        return "127.0.0.1", DEFAULT_API_PORT
    except OSError as exc:
        raise HomeError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_api_addr(text, str(path))


def write_api_addr(home: HomeLike, host: str, port: int) -> None:
    """Record where the running node's API listens (atomically, mode 0600)."""
    data = (format_api_addr(host, port) + "\n").encode("ascii")
    write_private_file(api_addr_path(home), data, replace=True)
