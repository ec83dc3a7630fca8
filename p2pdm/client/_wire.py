"""The blocking client's HTTP: keep-alive HTTP/1.1 on the standard library's ``http.client``.

Why not httpx here: the CLI makes one or a few calls and exits, and httpx's
import, with its connection pool (httpcore, which imports trio and anyio
whenever they are installed), was about a third of a CLI command's time and
memory. The local API is plain HTTP/1.1 on a loopback or LAN address, which
``http.client`` speaks fully.

How this works: a :class:`Pool` keeps the connections that are idle
between calls (at most :data:`MAX_IDLE_CONNECTIONS`), so one client making
calls one after another uses one TCP connection for all of them, and a
client shared by threads opens one per concurrent call. Before an idle
connection is reused it is checked as httpcore checks it: if the node closed
it meanwhile (hypercorn drops idle connections after a few seconds) the
socket reads as ready, and a new connection is opened instead. A request is
never sent twice: a failure after it went out is reported, as httpx did.

Failures are one :class:`TransportError` whose ``kind`` says what the
clients make of it: ``unreachable`` (nothing listening: the node is not
running), ``timeout`` or ``failed``. The answer is a :class:`Reply` (the
whole body) or, for a download, a :class:`Streamed` read piece by piece.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal
from urllib.parse import quote, urlencode

__all__ = [
    "MAX_IDLE_CONNECTIONS",
    "Pool",
    "Reply",
    "Streamed",
    "TransportError",
    "encode_json",
    "target",
]

#: Idle keep-alive connections a client keeps for its next calls. One is
#: enough for calls made one after another (the CLI, most scripts); a few
#: more serve a client shared by threads without reconnecting each time.
MAX_IDLE_CONNECTIONS: Final = 4

#: Characters left as they are in a request's path: those a path may hold
#: (RFC 3986 ``pchar`` and ``/``), and ``%`` since segments arrive quoted.
_PATH_SAFE: Final = "/:@!$&'()*+,;=%~"

Kind = Literal["unreachable", "timeout", "failed"]


class TransportError(Exception):
    """The node could not be asked, or did not answer; ``kind`` says which."""

    def __init__(self, kind: Kind, detail: str) -> None:
        super().__init__(detail)
        self.kind: Kind = kind
        self.detail = detail


@contextmanager
def _closed_on_failure(connection: http.client.HTTPConnection) -> Iterator[None]:
    """Close ``connection`` if the block fails; a transport failure leaves as
    :class:`TransportError`, anything else as it is."""
    try:
        yield
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise _failure(exc) from None
    except BaseException:
        connection.close()
        raise


def _failure(exc: BaseException) -> TransportError:
    if isinstance(exc, TimeoutError):
        return TransportError("timeout", str(exc) or "timed out")
    return TransportError("failed", str(exc) or type(exc).__name__)


def _query_value(value: Any) -> str:
    """A query value as httpx wrote it: ``true``/``false``, ``""`` for None."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def target(path: str, params: dict[str, Any] | None = None) -> str:
    """The request target for ``path`` and ``params`` (a list value: the key once per item)."""
    path, _, query = path.partition("?")
    items: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        items.extend((key, _query_value(v)) for v in values)
    encoded = urlencode(items)
    query = "&".join(q for q in (query, encoded) if q)
    return quote(path, safe=_PATH_SAFE) + (f"?{query}" if query else "")


def encode_json(value: Any) -> bytes:
    """A JSON body, byte for byte as httpx encodes one."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class Reply:
    """A whole answer: status, headers and body."""

    def __init__(self, status_code: int, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        """The body decoded from JSON; raises ValueError if it is not JSON."""
        return json.loads(self.content)


class Streamed(Reply):
    """An answer whose body is read piece by piece (:meth:`iter_bytes`) or whole (:meth:`read`)."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        super().__init__(response.status, response.headers, b"")
        self._response = response

    def iter_bytes(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes; raises TransportError."""
        while True:
            try:
                piece = self._response.read(size)
            except (OSError, http.client.HTTPException) as exc:
                raise _failure(exc) from None
            if not piece:
                return
            yield piece

    def read(self) -> bytes:
        """The rest of the body (it is then :attr:`content`); raises TransportError."""
        self.content = b"".join(self.iter_bytes(1 << 16))
        return self.content


class Pool:
    """Keep-alive HTTP/1.1 connections to one node, with headers sent on every request."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host = host
        self.port = port
        self.headers = headers
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _take(self, timeout: float) -> http.client.HTTPConnection:
        """An idle connection the node has not closed, or a new one; raises TransportError."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                break
            sock = connection.sock
            # Readable while idle: the node closed it (or sent what no request
            # asked for); either way it can't carry a request.
            if sock is not None and not select.select([sock], [], [], 0)[0]:
                sock.settimeout(timeout)
                return connection
            connection.close()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.connect()
        except TimeoutError as exc:
            raise _failure(exc) from None
        except OSError as exc:
            raise TransportError("unreachable", str(exc)) from None
        if connection.sock is not None:
            # A request's last small piece (a chunked upload's end) goes out
            # at once, not after the node's delayed acknowledgement.
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        if connection.sock is None:  # the node said it closes it
            return
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()

    def _send(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        url: str,
        body: bytes | Iterable[bytes] | None,
        headers: dict[str, str] | None,
    ) -> http.client.HTTPResponse:
        connection.request(
            method,
            url,
            body=body,
            headers={**self.headers, **(headers or {})},
            encode_chunked=body is not None and not isinstance(body, bytes),
        )
        return connection.getresponse()

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request and read its whole answer; raises TransportError.

        ``body``: bytes, or pieces sent as they come (chunked).
        """
        connection = self._take(timeout)
        with _closed_on_failure(connection):
            response = self._send(connection, method, url, body, headers)
            reply = Reply(response.status, response.headers, response.read())
        self._give_back(connection)
        return reply

    @contextmanager
    def stream(self, method: str, url: str, *, timeout: float) -> Iterator[Streamed]:
        """Send one request, its answer read inside the ``with``; raises TransportError."""
        connection = self._take(timeout)
        with _closed_on_failure(connection):
            response = self._send(connection, method, url, None, None)
        try:
            yield Streamed(response)
        except BaseException:
            connection.close()
            raise
        if response.isclosed():  # read to its end: the connection can carry the next
            self._give_back(connection)
        else:
            connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
