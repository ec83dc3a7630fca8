"""Signals that are worth nothing later (typing): one envelope on a dm stream
to a peer already connected, or nothing.

How this works: :func:`send_now` opens a ``/p2pdm/dm/1.0.0`` stream over the
connection the node already has to the peer (the caller checks it is
connected), writes one ``deliver`` frame and waits for its ack, all within
TYPING_SEND_TIMEOUT_S. Whatever fails, the envelope is dropped: it is never
put in the outbox, retried or deposited at a mailbox.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from p2pdm.core.dm import DM_PROTOCOL, Deliver, decode_ack
from p2pdm.core.identity import PeerId
from p2pdm.errors import P2PDMError
from p2pdm.limits import MAX_CONTROL_FRAME_BYTES, TYPING_SEND_TIMEOUT_S
from p2pdm.services.ports import Network

__all__ = ["send_now"]

log = logging.getLogger("p2pdm.services.dm")


async def send_now(
    network: Network,
    peer: PeerId,
    envelope: bytes,
    addrs: Sequence[str] = (),
    within_s: float = TYPING_SEND_TIMEOUT_S,
) -> bool:
    """Hand ``envelope`` to ``peer`` now (dialing ``addrs`` if not connected);
    True if it acknowledged it within ``within_s``. Never raises for the
    network's or the peer's failures: the envelope is then dropped."""
    with trio.move_on_after(within_s):
        try:
            stream = await network.open_stream(peer, DM_PROTOCOL, addrs)
            try:
                await stream.write_frame(Deliver(0, envelope).encode(), TYPING_SEND_TIMEOUT_S)
                await stream.close_write()
                frame = await stream.read_frame(MAX_CONTROL_FRAME_BYTES, TYPING_SEND_TIMEOUT_S)
                return frame is not None and decode_ack(frame).result == "ok"
            finally:
                await stream.close()
        except P2PDMError as exc:
            log.debug("dropped an ephemeral signal to %s: %s", peer.short(), exc)
    return False
