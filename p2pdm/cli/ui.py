"""``p2pdm ui``: a one-time sign-in link to the web app; the signed-in browsers.

How this works: the command asks the running node for a login code through
the public API with the owner's token (``POST /v1/sessions/codes``), prints
the link and, unless ``--no-open``, hands it to the default browser (when
Python's :mod:`webbrowser` finds one; a machine without one just gets the
printed link). The link works once, for five minutes. ``--sessions`` lists
the signed-in browsers, ``revoke ID`` signs one out (it stops at once).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import webbrowser
from contextlib import suppress
from typing import Final, TextIO

from p2pdm.cli.chat import print_table
from p2pdm.client import Client
from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError

__all__ = ["ui", "ui_arguments"]

EXIT_OK: Final = 0
TIME_FORMAT: Final = "%Y-%m-%d %H:%M"


def ui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=("revoke",),
        help="revoke: sign out the browser of session ID (see --sessions)",
    )
    parser.add_argument("session", nargs="?", metavar="ID", help="the session to revoke")
    parser.add_argument(
        "--no-open", action="store_true", help="only print the link, do not open a browser"
    )
    parser.add_argument(
        "--sessions", action="store_true", help="list the signed-in browsers instead"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def ui(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as client:
        if args.action == "revoke":
            if not args.session:
                raise ConfigError("name the session to revoke: p2pdm ui revoke ID (see --sessions)")
            client.revoke_session(args.session)
            print(f"Signed out {args.session}.", file=out)
            return EXIT_OK
        if args.sessions:
            sessions = client.sessions()
            if args.json:
                print(json.dumps(sessions, indent=2), file=out)
            elif not sessions:
                print("No browser is signed in.", file=out)
            else:
                rows = [[str(s["id"]), _when(int(s["created_at_ms"]))] for s in sessions]
                print_table(["SESSION", "SIGNED IN"], rows, out)
            return EXIT_OK
        link = client.login_link()
    url = str(link["url"])
    if args.json:
        print(json.dumps(link), file=out)
    else:
        print(f"Open the web app: {url}", file=out)
        print("The link works once, for 5 minutes.", file=out)
    if not args.no_open and _has_browser():
        with suppress(webbrowser.Error):  # no browser after all: the link is enough
            webbrowser.open(url)
    return EXIT_OK


#: Environment variables that say a graphical browser can be started.
_GRAPHICAL: Final = ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY")


def _has_browser() -> bool:
    """Whether to start a browser: never a text one in this very terminal (over SSH)."""
    return sys.platform in ("darwin", "win32") or any(os.environ.get(v) for v in _GRAPHICAL)


def _when(at_ms: int) -> str:
    return time.strftime(TIME_FORMAT, time.localtime(at_ms / 1000))
