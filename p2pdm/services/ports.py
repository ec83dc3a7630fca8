"""The ports the protocol services reach the outside through.

A service is handed the narrow thing it uses, never the whole host:
:class:`Network` is what the libp2p host (:class:`p2pdm.net.Host`) and the
tests' fake network (``tests/fakenet.py``) provide. Keeping it here, apart
from any service, lets direct delivery use the mailbox client without the
two importing each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from p2pdm.core.identity import PeerId
from p2pdm.net.stream import Stream

__all__ = ["Network"]


class Network(Protocol):
    """What the services need from the libp2p host (see ``p2pdm.net``)."""

    def set_handler(self, protocol: str, handler: Callable[[Stream], Awaitable[None]]) -> None: ...
    async def open_stream(
        self, peer: PeerId, protocol: str, addrs: Sequence[str] = ()
    ) -> Stream: ...
    async def find_peer(
        self,
        peer: PeerId,
        timeout: float,  # noqa: ASYNC109
        *,
        fresh: bool = False,
    ) -> list[str]: ...
    def peer_addrs(self, peer: PeerId) -> list[str]: ...
    async def disconnect(self, peer: PeerId) -> None: ...

    # The DHT, for mailboxes: signed records and provider records.
    async def get_record(
        self,
        key: str,
        timeout: float,  # noqa: ASYNC109
        *,
        keep: bool = True,
    ) -> bytes | None: ...
    async def put_record(self, key: str, value: bytes) -> int:
        """Store a record here and at the peers closest to ``key``; how many peers hold it now."""
        ...

    async def provide(self, key: bytes) -> None: ...
    async def find_providers(
        self,
        key: bytes,
        timeout: float,  # noqa: ASYNC109
    ) -> list[tuple[PeerId, list[str]]]: ...
