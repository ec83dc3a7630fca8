"""Shared by the core tests: fixed identities and ids, so encodings are reproducible, and
signed inner messages built from a map."""

from __future__ import annotations

from typing import Any

from p2pdm.core import cbor
from p2pdm.core.identity import Identity

ALICE = Identity(bytes([1]) * 32)
BOB = Identity(bytes([2]) * 32)
CAROL = Identity(bytes([3]) * 32)
#: A message id and a conversation id, 16 bytes each.
ID = bytes(range(16))
CONV = bytes(range(16, 32))


def inner_map(body: Any = None, kind: str = "text", **changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "v": 1,
        "id": ID,
        "from": ALICE.peer_id.raw,
        "to": BOB.peer_id.raw,
        "conv": CONV,
        "ts": 1_700_000_000_000,
        "kind": kind,
        "body": {"text": "hi"} if body is None else body,
    }
    m.update(changes)
    return m


def signed(m: dict[str, Any], identity: Identity = ALICE, domain: str = "msg/v1") -> bytes:
    """Sign a message map the way the spec says: over the canonical CBOR without 'sig'."""
    unsigned = {k: v for k, v in m.items() if k != "sig"}
    return cbor.encode({**unsigned, "sig": identity.sign(domain, cbor.encode(unsigned))})
