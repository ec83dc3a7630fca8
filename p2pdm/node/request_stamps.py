"""The request stamps this node puts on what it sends to people who may not know it.

How this works: a recipient drops an envelope from a stranger that carries
no valid request stamp (docs/protocol.md §18.2). The sender cannot see the
recipient's contacts, so it stamps every envelope to a peer until the
conversation shows that the peer knows it: a message from the peer (in
p2pdm, writing to someone makes them your contact) or one of ours the peer
read (read receipts go to contacts only). A stamp is good for a day, so it
is minted once per recipient and day and kept (MAX_CACHED_REQUEST_STAMPS).

:meth:`RequestStamps.prepare` mints off the event loop before an async send,
by the rule of :func:`~p2pdm.node.offloop.off_loop` (a worker thread; on the
loop under a virtual clock); :meth:`RequestStamps.for_peer` is what the messenger
asks while it builds the envelope, and mints inline only if nothing was
prepared (a synchronous caller).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial

from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import stamp_day
from p2pdm.core.model import direct_conversation_id
from p2pdm.core.request_stamp import mint_request_stamp
from p2pdm.limits import MAX_CACHED_REQUEST_STAMPS
from p2pdm.node.offloop import off_loop
from p2pdm.store.base import Store

__all__ = ["RequestStamps"]


class RequestStamps:
    """Request stamps from ``me`` at ``bits`` of work, cached per recipient and day."""

    def __init__(self, me: PeerId, store: Store, bits: int, now_ms: Callable[[], int]) -> None:
        self.me = me
        self.store = store
        #: The work a stamp proves, and the least this node asks of strangers.
        self.bits = bits
        self.now_ms = now_ms
        self._stamps: OrderedDict[tuple[PeerId, int], bytes] = OrderedDict()
        #: Peers known to have this node as a contact (no stamp needed).
        self._known: OrderedDict[PeerId, None] = OrderedDict()

    def needed(self, peer: PeerId) -> bool:
        """True until the conversation with ``peer`` shows that it knows this node."""
        if peer in self._known:
            return False
        if not self.store.conversation_answered(direct_conversation_id(self.me, peer)):
            return True
        self._known[peer] = None
        while len(self._known) > MAX_CACHED_REQUEST_STAMPS:
            self._known.popitem(last=False)
        return False

    def _cached(self, peer: PeerId, day: int) -> bytes | None:
        stamp = self._stamps.get((peer, day))
        if stamp is not None:
            self._stamps.move_to_end((peer, day))
        return stamp

    def _keep(self, peer: PeerId, day: int, stamp: bytes) -> bytes:
        self._stamps[peer, day] = stamp
        while len(self._stamps) > MAX_CACHED_REQUEST_STAMPS:
            self._stamps.popitem(last=False)
        return stamp

    def for_peer(self, peer: PeerId) -> bytes | None:
        """The stamp to put on an envelope to ``peer`` now; None if none is needed."""
        if not self.needed(peer):
            return None
        now = self.now_ms()
        day = stamp_day(now)
        cached = self._cached(peer, day)
        if cached is not None:
            return cached
        return self._keep(peer, day, mint_request_stamp(peer, self.me, now, self.bits))

    async def prepare(self, peer: PeerId) -> None:
        """Mint today's stamp for ``peer`` off the loop if one will be needed."""
        if not self.needed(peer):
            return
        now = self.now_ms()
        day = stamp_day(now)
        if self._cached(peer, day) is None:
            mint = partial(mint_request_stamp, peer, self.me, now, self.bits)
            self._keep(peer, day, await off_loop(mint))
