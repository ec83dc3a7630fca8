"""What a node tells an observer (the simulator's measurements) as it works.

How this works: a :class:`NodeObserver` is given to :class:`~p2pdm.node.node.Node`
at construction and kept as ``node.observer``; the services call it at the
points worth measuring. The default, :data:`NO_OBSERVER`, does nothing. An
observer must be quick and must not raise: it runs inside the receive path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, Protocol

if TYPE_CHECKING:
    from p2pdm.errors import P2PDMError
    from p2pdm.node.messenger import Received

__all__ = ["NO_OBSERVER", "NodeObserver", "Path"]

#: How an envelope reached the node: on a dm stream from its sender, or
#: fetched from a mailbox.
Path = Literal["direct", "mailbox"]


class NodeObserver(Protocol):
    """Told what happens to each envelope that reaches the node."""

    def envelope_accepted(self, received: Received, path: Path) -> None:
        """An envelope was accepted and committed (a message, a receipt, a request…)."""

    def envelope_refused(self, error: P2PDMError) -> None:
        """The messenger refused an envelope with ``error`` (replayed, forged, rate-limited…)."""


class _NoObserver:
    def envelope_accepted(self, received: Received, path: Path) -> None:
        pass

    def envelope_refused(self, error: P2PDMError) -> None:
        pass


#: The observer of a node nobody watches.
NO_OBSERVER: Final[NodeObserver] = _NoObserver()
