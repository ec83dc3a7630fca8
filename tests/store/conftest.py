"""Shared by the store tests: the PeerIDs of contacts."""

from __future__ import annotations

from p2pdm.core.identity import PeerId

ALICE = PeerId.from_public_key(b"\x02" * 32)
BOB = PeerId.from_public_key(b"\x03" * 32)
CAROL = PeerId.from_public_key(b"\x04" * 32)
