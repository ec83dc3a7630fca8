"""Direct delivery: the outbox scheduler, the senders and the ``/p2pdm/dm/1.0.0`` receiver.

One job per module: :mod:`.scheduler` decides when to send what to whom;
:mod:`.sender` runs one stream per recipient with a window of envelopes in
flight (the bookkeeping is :class:`p2pdm.core.sendwindow.SendWindow`);
:mod:`.deposits` leaves what could not be delivered at mailboxes and
:mod:`.fetcher` brings in our own; :mod:`.receiver` serves the protocol and
commits what arrives; :mod:`.outbox` is what all of them record in the
store; :mod:`.service` wires them into :class:`Delivery`. Limits live in
:mod:`p2pdm.services.limits`; the names tests use are re-exported here.
"""

from __future__ import annotations

from p2pdm.services.dm.outbox import backoff_ms
from p2pdm.services.dm.service import Delivery
from p2pdm.services.limits import (
    MAX_STREAMS_PER_PEER,
    REACH_TIMEOUT,
    RETRY_BASE_SECONDS,
    RETRY_MAX_SECONDS,
    SCHEDULER_MAX_SLEEP,
)
from p2pdm.services.ports import Network

__all__ = [
    "MAX_STREAMS_PER_PEER",
    "REACH_TIMEOUT",
    "RETRY_BASE_SECONDS",
    "RETRY_MAX_SECONDS",
    "SCHEDULER_MAX_SLEEP",
    "Delivery",
    "Network",
    "backoff_ms",
]
