"""Session state in the form p2pdm wrote before the compact one (version 1:
each ratchet in the ``doubleratchet`` package's JSON), to test upgrades."""

from __future__ import annotations

import json

from p2pdm.core import cbor
from p2pdm.core.session import PeerSessions


def legacy_bytes(sessions: PeerSessions) -> bytes:
    """``sessions`` as the version before the compact form saved them."""
    items = []
    for s in sessions.sessions:
        h = s.pending_header
        items.append(
            {
                "dr": json.dumps(s.ratchet.json).encode(),
                "ad": s.associated_data,
                "sid": s.session_id,
                "hdr": None
                if h is None
                else {"ek": h.ephemeral_key, "spk": h.signed_prekey, "opk": h.one_time_prekey},
            }
        )
    return cbor.encode({"v": 1, "sessions": items})
