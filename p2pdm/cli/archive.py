"""``p2pdm export FILE`` and ``p2pdm import FILE``: moving a node to another machine.

How this works: both commands ask for the archive's passphrase (from
``P2PDM_EXPORT_PASSPHRASE`` for scripts, else typed at the terminal,
twice for an export) and hand over to :mod:`p2pdm.daemon.archive`. The
old home's own passphrase (``P2PDM_PASSPHRASE``) unlocks it for the export;
the new home's, if set, encrypts it at the import.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Final, TextIO

from p2pdm import hints
from p2pdm.daemon.archive import export_home, import_home
from p2pdm.daemon.home import ENV_PASSPHRASE, Home
from p2pdm.errors import ArchiveError

__all__ = [
    "ENV_EXPORT_PASSPHRASE",
    "archive_passphrase",
    "export",
    "export_arguments",
    "import_",
    "import_arguments",
]

#: The archive's passphrase, for scripts; without it the commands ask at the terminal.
ENV_EXPORT_PASSPHRASE: Final = "P2PDM_EXPORT_PASSPHRASE"


def _interactive() -> bool:
    return sys.stdin.isatty()


def archive_passphrase(*, confirm: bool) -> str:
    """The archive passphrase: ``$P2PDM_EXPORT_PASSPHRASE``, else typed (twice if ``confirm``).

    Raises :class:`ArchiveError` if it is empty, the two differ, or there is
    no terminal to ask at.
    """
    passphrase = os.environ.get(ENV_EXPORT_PASSPHRASE)
    if passphrase is None:
        if not _interactive():
            raise ArchiveError(
                f"no terminal to ask for the archive passphrase; set {ENV_EXPORT_PASSPHRASE}"
            )
        passphrase = getpass.getpass("Archive passphrase: ")
        if confirm and getpass.getpass("The same passphrase again: ") != passphrase:
            raise ArchiveError("the two passphrases differ; nothing was written")
    if not passphrase:
        raise ArchiveError(
            f"the archive passphrase is empty; choose one (or set {ENV_EXPORT_PASSPHRASE})"
        )
    return passphrase


def export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the archive to write (a new file)")


def export(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    done = export_home(home, Path(args.file), lambda: archive_passphrase(confirm=True))
    print(f"Exported {done.name} ({done.peer_id}) to {done.path} ({done.size} bytes).", file=out)
    print(
        f"On the new machine: `p2pdm import {done.path.name}` (into an empty home), then "
        "`p2pdm run`.",
        file=out,
    )
    if done.node_was_running:
        print(
            "The node is running here: stop it now; what it receives from now on is not in "
            "the archive.",
            file=out,
        )
    print(
        f"This home now refuses `{hints.command(home.path, 'run')}`: two copies running at "
        "once would break your sessions with your contacts.",
        file=out,
    )
    return 0


def import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="an archive written by `p2pdm export`")


def import_(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    done = import_home(home, Path(args.file), lambda: archive_passphrase(confirm=False))
    protection = (
        f"encrypted with the passphrase in {ENV_PASSPHRASE}"
        if done.encrypted
        else f"not encrypted (set {ENV_PASSPHRASE} before the import to encrypt it)"
    )
    print(f"Imported {done.name} ({done.peer_id}) into {home.path}.", file=out)
    print(f"The identity and store are {protection}.", file=out)
    if done.config_kept:
        print(f"The archive's config.toml was not used: {home.config_path} was kept.", file=out)
    print(
        f"Run `{hints.command(home.path, 'run')}`; only this copy should run from now on.",
        file=out,
    )
    return 0
