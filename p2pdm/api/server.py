"""Serving the local API with hypercorn inside the node's own trio loop.

How this works: :func:`serve_api` binds the listening socket itself, then
hands it to hypercorn's trio worker. Binding first means a busy port or a
bad address is one clear :class:`ConfigError` (hypercorn would raise it in
nested exception groups and leave its socket unclosed), port 0 gives the
real port straight from the socket, and the socket is closed by whoever
opened it. ``hypercorn.trio.serve`` is this same worker without the option
of passing sockets in.

The API binds to loopback addresses only: the Host check in
:mod:`p2pdm.api.guard` would refuse every request addressed to any other
name anyway, so a public bind could only expose the port, never serve it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from functools import partial
from pathlib import Path
from typing import Any, Final, cast

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.typing import ASGIFramework
from hypercorn.utils import wrap_app

from p2pdm.api._hypercorn import coalesce_response_head
from p2pdm.api.app import create_app
from p2pdm.api.handlers_web import DemoControl
from p2pdm.api.sessions import LoginCodes
from p2pdm.errors import ConfigError
from p2pdm.node.node import Node

__all__ = ["serve_api"]

log = logging.getLogger("p2pdm.api")

#: Pending connections the kernel queues for the API (a few local clients).
LISTEN_BACKLOG: Final = 64
#: An idle keep-alive connection is closed after this long; clients reconnect.
KEEP_ALIVE_TIMEOUT_S: Final = 5.0
#: On shutdown, requests in flight get this long to finish.
GRACEFUL_TIMEOUT_S: Final = 2.0


#: hypercorn's own log: its "Running on …" banner would repeat the node's
#: start-up line, so only its warnings and errors are shown.
_server_log = logging.getLogger("p2pdm.api.server")
_server_log.setLevel(logging.WARNING)

coalesce_response_head()  # a response's head and body in one write


def _hypercorn_config() -> Config:
    config = Config()
    config.accesslog = None  # the node's log is for events, not every local poll
    config.errorlog = _server_log
    config.include_server_header = False
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT_S
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    return config


Address = tuple[socket.AddressFamily, tuple[str, int]]


async def _loopback_addresses(host: str, port: int) -> list[Address]:
    """The loopback addresses ``host`` names, in resolver order; raises :class:`ConfigError`."""
    try:
        infos = await trio.socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot resolve the API host {host!r}: {exc}") from None
    found: list[Address] = []
    for family, _, _, _, sockaddr in infos:
        candidate = (family, (str(sockaddr[0]), port))
        loopback = ipaddress.ip_address(candidate[1][0].split("%", 1)[0]).is_loopback
        if loopback and candidate not in found:
            found.append(candidate)
    if not found:
        raise ConfigError(
            "the local API listens on loopback addresses only (127.0.0.1, ::1, localhost), "
            f"not {host!r}"
        )
    return found


def _listen(addresses: list[Address]) -> socket.socket:
    """A listening socket on the first address that can be bound (``localhost``
    may name ::1 on a host without IPv6); raises :class:`ConfigError`."""
    failures = []
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if os.name == "posix":
                # Rebind at once after a restart; on Windows this flag would let
                # another process share the port, so it stays off there.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            failures.append(f"{_shown(address[0])}:{address[1]}: {exc.strerror or exc}")
            continue
        return sock
    raise ConfigError(f"cannot serve the local API on {'; '.join(failures)}")


async def serve_api(
    node: Node,
    token: str,
    host: str,
    port: int,
    *,
    login_codes: LoginCodes | None = None,
    demo: DemoControl | None = None,
    home: Path | None = None,
    task_status: Any = trio.TASK_STATUS_IGNORED,  # trio.TaskStatus[tuple[str, int]]
) -> None:
    """Serve the local API for ``node`` until cancelled.

    Reports the bound ``(host, port)`` through ``task_status`` once it
    accepts connections (``port=0`` picks a free port). ``login_codes``: the
    web app's unspent sign-in codes, when the caller makes some too; ``demo``:
    the local demo bot the daemon runs; ``home``: the node's home (for hints). Raises
    :class:`ConfigError` if ``host`` is not a loopback address or the port
    cannot be bound.
    """
    sock = _listen(await _loopback_addresses(host, port))
    try:
        bound_host, bound_port = sock.getsockname()[:2]
        # Starlette and hypercorn type the same ASGI callable differently.
        asgi = cast(ASGIFramework, create_app(node, token, login_codes, demo, home))
        app = wrap_app(asgi, 0, "asgi")  # 0: the WSGI body cap, unused for ASGI
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(worker_serve, app, _hypercorn_config(), sockets=Sockets([], [sock], []))
            )
            log.debug("local API on http://%s:%d/v1/", _shown(bound_host), bound_port)
            task_status.started((bound_host, bound_port))
    finally:
        sock.close()


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host
