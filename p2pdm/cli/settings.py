"""``p2pdm settings`` and ``p2pdm settings set KEY VALUE``: the node's settings.

A client of the running node's local API, like the chat commands. The node
knows each setting's type; the value typed is read as that type (``on``/``off``
and the like for a switch), so ``p2pdm settings set read_receipts off`` works
as people say it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Final, TextIO

from p2pdm.cli.chat import print_table, safe_text
from p2pdm.client import Client
from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError

__all__ = ["parse_value", "settings", "settings_arguments"]

EXIT_OK: Final = 0
#: Words read as a switch's two positions.
_ON: Final = frozenset({"on", "true", "yes", "1"})
_OFF: Final = frozenset({"off", "false", "no", "0"})


def settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the settings as JSON")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    change = actions.add_parser(
        "set",
        help="change one setting",
        description="Change one setting, e.g. `p2pdm settings set read_receipts off`.",
    )
    change.add_argument("key", metavar="KEY")
    change.add_argument("value", metavar="VALUE")


def parse_value(key: str, text: str, current: object) -> object:
    """``text`` read as the type of the setting's ``current`` value; raises ConfigError."""
    if isinstance(current, bool):
        word = text.strip().lower()
        if word in _ON:
            return True
        if word in _OFF:
            return False
        raise ConfigError(f"{key} is on or off, not {text!r}")
    if isinstance(current, int):
        try:
            return int(text, 10)
        except ValueError:
            raise ConfigError(f"{key} is a whole number, not {text!r}") from None
    return text


def settings(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    with Client.for_home(home) as node:
        current = node.settings()
        if getattr(args, "action", None) == "set":
            if args.key not in current:
                known = ", ".join(sorted(current))
                raise ConfigError(f"no setting {args.key!r}; the settings are: {known}")
            value = parse_value(args.key, args.value, current[args.key])
            current = node.update_settings({args.key: value})
    if args.json:
        print(json.dumps(current, ensure_ascii=False), file=out)
        return EXIT_OK
    rows = [[key, _shown(value)] for key, value in sorted(current.items())]
    print_table(["SETTING", "VALUE"], rows, out)
    return EXIT_OK


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return safe_text(str(value))
