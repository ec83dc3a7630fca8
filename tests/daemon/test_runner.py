"""Run options: command line over config.toml (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pdm.daemon.home import Home
from p2pdm.daemon.runner import RunOptions
from p2pdm.errors import ConfigError
from p2pdm.node.node import DEFAULT_API_PORT, DEFAULT_LISTEN

BOOT_A = "/ip4/10.0.0.1/tcp/4701/p2p/12D3KooWGjssTSMGSG4tCMJCc5ju1r33TjS8GXjjaNVe3zGHAKcB"
BOOT_B = "/ip4/10.0.0.2/tcp/4701/p2p/12D3KooWHvMNA1YPq9Cc8dWGuVpvfPCKc5o9pK9pqLLpKPCja1fG"


def home_with_config(tmp_path: Path, text: str) -> Home:
    home = Home(tmp_path / "home", env={})
    home.ensure()
    home.config_path.write_text(text)
    return home


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    options = RunOptions.resolve(Home(tmp_path / "home", env={}))
    assert options.listen == DEFAULT_LISTEN
    assert options.api == ("127.0.0.1", DEFAULT_API_PORT)
    assert options.bootstrap == ()


def test_command_line_wins_and_bootstrap_lists_are_joined(tmp_path: Path) -> None:
    home = home_with_config(
        tmp_path,
        f'listen = ["/ip4/0.0.0.0/tcp/5000"]\napi = "127.0.0.1:5001"\nbootstrap = ["{BOOT_A}"]\n',
    )
    from_file = RunOptions.resolve(home)
    assert from_file.listen == ("/ip4/0.0.0.0/tcp/5000",)
    assert from_file.api == ("127.0.0.1", 5001)
    options = RunOptions.resolve(
        home, listen=["/ip4/127.0.0.1/tcp/0"], api="[::1]:0", bootstrap=[BOOT_B, BOOT_A]
    )
    assert options.listen == ("/ip4/127.0.0.1/tcp/0",)
    assert options.api == ("::1", 0)
    assert options.bootstrap == (BOOT_B, BOOT_A)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('listen = "/ip4/0.0.0.0/tcp/1"\n', "listen must be a list"),
        ("bootstrap = [1, 2]\n", "bootstrap must be a list"),
        ("api = 4780\n", "api must be a str"),
        ('lisen = ["x"]\n', "unknown setting 'lisen'"),
    ],
)
def test_a_mistyped_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunOptions.resolve(home_with_config(tmp_path, text))


def test_the_api_must_stay_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        RunOptions.resolve(Home(tmp_path / "home", env={}), api="0.0.0.0:4780")
