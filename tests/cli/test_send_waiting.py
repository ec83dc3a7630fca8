"""``p2pdm send`` to a contact added by PeerID whose keys are not found yet:
accepted, and one line says it waits for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pdm.core.identity import PeerId
from p2pdm.core.model import DeliveryStatus
from p2pdm.core.wire import PrekeyBundle
from tests.cli.conftest import cli, running_pair


async def _nowhere(peer: PeerId) -> PrekeyBundle | None:
    """A DHT in which nobody has published yet."""
    return None


async def test_a_send_before_the_peer_is_found_says_it_waits_for_its_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.fetch_bundle = _nowhere
        alice.node.add_contact_by_peer_id(str(bob.node.peer_id), "bob")
        code, out, err = await cli(capsys, "--home", str(alice.home.path), "send", "bob", "hi")
        assert (code, err) == (0, "")
        [line] = out.splitlines()
        assert (
            ": queued (waiting for bob's keys: bob is not found in the network yet since " in line
        )
        assert f"`p2pdm --home {alice.home.path} read bob` shows its delivery." in line
        [wait] = alice.node.store.key_waits(bob.node.peer_id)
        stored = alice.node.store.get_message(wait.message_id)
        assert stored is not None and stored.status is DeliveryStatus.QUEUED


async def test_a_file_before_the_peer_is_found_says_it_waits_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    photo = tmp_path / "notes.txt"
    photo.write_text("the notes")
    async with running_pair(tmp_path) as (alice, bob):
        alice.node.fetch_bundle = _nowhere
        alice.node.add_contact_by_peer_id(str(bob.node.peer_id), "bob")
        home = str(alice.home.path)
        code, out, err = await cli(capsys, "--home", home, "send", "bob", "--file", str(photo))
        assert (code, err) == (0, "")
        assert ": queued (waiting for bob's keys: " in out
        [wait] = alice.node.store.key_waits(bob.node.peer_id)
        stored = alice.node.store.get_message(wait.message_id)
        assert stored is not None and stored.kind == "media"
