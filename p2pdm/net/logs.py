"""Taming py-libp2p's logging (NOTES pitfall 13).

py-libp2p logs ordinary disconnects at ERROR, pins some of its loggers to
INFO, and its ``libp2p`` logger has no handler, so Python's last-resort
handler prints them all on stderr. :func:`configure_libp2p_logging` lets
only records of :data:`~p2pdm.net.limits.LIBP2P_LOG_LEVEL` and above through
to the application's own handlers. No libp2p import: loggers go by name.

Also beware: py-libp2p logs some lines through the *root* logger
(``logging.debug(...)``), which runs ``logging.basicConfig()`` if the root
logger has no handler yet. Configure logging before starting a host.
"""

from __future__ import annotations

import logging
import os

from p2pdm.net.limits import LIBP2P_LOG_LEVEL

__all__ = ["configure_libp2p_logging"]


class _ToRoot(logging.Handler):
    """Passes libp2p's records on to the application's handlers (root logger)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


def configure_libp2p_logging(level: int = LIBP2P_LOG_LEVEL) -> None:
    """Stop py-libp2p printing ordinary disconnects to stderr (NOTES pitfall 13).

    Records of ``level`` and above reach the application's handlers. Some
    libp2p modules pin their own logger to INFO, so a level on the parent
    is not enough: the ``libp2p`` logger stops propagation and forwards
    through a handler that filters by level. Left alone when LIBP2P_DEBUG is
    set: then libp2p's own log setup applies.
    """
    if os.environ.get("LIBP2P_DEBUG"):
        return
    libp2p_logger = logging.getLogger("libp2p")
    libp2p_logger.setLevel(level)
    libp2p_logger.propagate = False
    for handler in list(libp2p_logger.handlers):
        if isinstance(handler, _ToRoot):
            libp2p_logger.removeHandler(handler)
    libp2p_logger.addHandler(_ToRoot(level))
