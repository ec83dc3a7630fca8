"""Shared by the core tests: fixed identities and ids, so encodings are reproducible."""

from __future__ import annotations

from p2pdm.core.identity import Identity

ALICE = Identity(bytes([1]) * 32)
BOB = Identity(bytes([2]) * 32)
CAROL = Identity(bytes([3]) * 32)
#: A message id and a conversation id, 16 bytes each.
ID = bytes(range(16))
CONV = bytes(range(16, 32))
