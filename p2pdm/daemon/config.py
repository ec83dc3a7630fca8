"""The node's settings file, ``<home>/config.toml``, read into typed :class:`Config`.

How this works: each setting is a field of :class:`Config` with its default;
:func:`read_config` reads the file (absent means defaults), caps its size
before parsing, refuses a key that is not a field by name (so a typo never
silently does nothing) and checks each value against the type of its
field's default (a list of strings for tuples).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

from p2pdm.errors import ConfigError

__all__ = ["CONFIG_FILE", "Config", "read_config"]

CONFIG_FILE: Final = "config.toml"
MAX_CONFIG_BYTES: Final = 1 << 20
#: Longest list a setting may hold (addresses): more is a mistake, not a config.
MAX_CONFIG_LIST_ITEMS: Final = 64


@dataclass(frozen=True, slots=True)
class Config:
    """Settings read from ``<home>/config.toml``.

    Each setting is a field here; a key in the file that is not a field is
    refused by name, so a typo never silently does nothing. Features that
    add settings add fields; :func:`read_config` checks each value against
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
    #: "auto" (empty: serve the DHT only while public), "server" or "client";
    #: ``run --dht-mode`` other than auto wins.
    dht_mode: str = ""
    #: Offer circuit relay v2 to nodes behind NAT; ``run --relay`` turns it on too.
    relay: bool = False
    #: Preferred relays (``…/p2p/<PeerID>``); ``run --relay-peer`` adds to them.
    relay_peers: tuple[str, ...] = ()
    #: Find p2pdm nodes on the LAN by mDNS; ``run --no-mdns`` turns it off too.
    mdns: bool = True


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


def read_config(path: Path) -> Config:
    """Read the settings file at ``path`` (absent means defaults); raises :class:`ConfigError`."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return Config()
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    defaults = {f.name: f.default for f in fields(Config)}
    values: dict[str, object] = {}
    for key, value in data.items():
        if key not in defaults:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        values[key] = _config_value(path, key, value, defaults[key])
    return Config(**values)  # type: ignore[arg-type]
