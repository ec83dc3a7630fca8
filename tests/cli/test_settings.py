"""``p2pdm settings`` against a node serving its real API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pdm.cli.settings import parse_value
from p2pdm.errors import ConfigError
from tests.cli.conftest import assert_one_error_line, cli, running_node


async def test_list_and_turn_read_receipts_off(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_node(tmp_path / "alice", "alice") as alice:
        a = ("--home", str(alice.home.path))
        code, out, _ = await cli(capsys, *a, "settings")
        assert code == 0
        assert ["read_receipts", "on"] in [line.split() for line in out.splitlines()]

        code, out, _ = await cli(capsys, *a, "settings", "set", "read_receipts", "off")
        assert code == 0
        assert ["read_receipts", "off"] in [line.split() for line in out.splitlines()]
        assert alice.node.settings()["read_receipts"] is False

        code, out, _ = await cli(capsys, *a, "settings", "--json")
        assert json.loads(out)["read_receipts"] is False

        code, out, err = await cli(capsys, *a, "settings", "set", "read_receipts", "maybe")
        assert (code, out) == (1, "")
        assert_one_error_line(err, "read_receipts is on or off, not 'maybe'")

        code, out, err = await cli(capsys, *a, "settings", "set", "colour", "blue")
        assert (code, out) == (1, "")
        assert_one_error_line(err, "no setting 'colour'", "read_receipts")
        assert alice.node.settings()["read_receipts"] is False  # nothing changed


@pytest.mark.parametrize(
    ("text", "current", "value"),
    [("off", True, False), ("ON", False, True), ("no", True, False), ("Alice K", "", "Alice K")],
)
def test_values_are_read_as_the_settings_type(text: str, current: object, value: object) -> None:
    assert parse_value("x", text, current) == value


def test_a_number_setting_refuses_words() -> None:
    with pytest.raises(ConfigError, match="whole number"):
        parse_value("x", "many", 3)
