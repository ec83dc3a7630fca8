"""What the store keeps of messages waiting for their recipient's prekeys.

How this works: a message to a peer added by PeerID alone cannot be
encrypted until the peer's prekey bundle is found in the DHT (a node that
just started has not published it yet). The message is stored as any
outgoing message is (``queued``, its status history telling why it waits)
and a :class:`KeyWait` row says it has no envelope yet. When the bundle is
found the node encrypts it, queues its envelope and drops the row in one
transaction; when ``expires_at_ms`` passes first, the message fails and the
row goes. At most MAX_KEY_WAITS rows; deleting the message deletes its row
(SQLite: ``ON DELETE CASCADE``; the memory store skips rows whose message is
gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from p2pdm.core.identity import PeerId

__all__ = ["KeyWait", "KeyWaitStore"]


@dataclass(frozen=True, slots=True)
class KeyWait:
    """A stored outgoing message with no envelope yet: ``peer``'s prekeys are not found."""

    message_id: bytes
    peer: PeerId
    held_at_ms: int
    #: When the message fails if the prekeys are still not found.
    expires_at_ms: int


class KeyWaitStore(Protocol):
    def hold_for_keys(self, wait: KeyWait) -> None:
        """Keep ``wait`` (replacing one of the same message); raises StoreError
        past MAX_KEY_WAITS rows."""
        ...

    def key_waits(self, peer: PeerId | None = None) -> list[KeyWait]:
        """The messages waiting for ``peer``'s prekeys (everyone's if None), in
        the order the messages were stored; at most MAX_KEY_WAITS."""
        ...

    def drop_key_wait(self, message_id: bytes) -> bool:
        """Forget a message's wait; False if it had none."""
        ...
