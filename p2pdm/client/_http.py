"""What both clients share but the I/O: finding the node, one request, reading its answer.

A :class:`_Call` is one API request and which field of the answer is the
result; :class:`_BaseClient` turns the answer into the result or an
:class:`APIError`, and a failure to get one into :class:`NodeNotRunning` or
an :class:`APIError`. The two clients only send: the async one through
httpx, the blocking one through :mod:`p2pdm.client._wire` (the standard
library's ``http.client``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, Self, TypeVar, cast

from p2pdm import hints
from p2pdm.client._wire import TransportError
from p2pdm.errors import NodeNotRunning, P2PDMError
from p2pdm.homefiles import (
    API_TOKEN_FILE,
    HomeDir,
    HomeLike,
    format_api_addr,
    read_api_addr,
    read_api_token,
    resolve_home,
)

__all__ = ["DEFAULT_TIMEOUT_S", "APIError"]

#: A node answers local calls from its store in milliseconds; this long
#: without an answer means it is stuck, and the CLI should say so, not hang.
DEFAULT_TIMEOUT_S: Final = 10.0

T = TypeVar("T")

if TYPE_CHECKING:
    import ssl


class _Answer(Protocol):
    """What both HTTP stacks' answers offer (an ``httpx.Response``, a ``_wire.Reply``)."""

    @property
    def status_code(self) -> int: ...
    @property
    def is_success(self) -> bool: ...
    def json(self) -> Any: ...


def _no_tls() -> ssl.SSLContext:
    """The TLS context of a client of the local API, which is plain HTTP on a
    loopback or LAN address: verifying, with no CA loaded. httpx's default
    loads the system's CA bundle for every client (about 45 ms and 1.6 MiB,
    a fifth of a CLI command's time); with this one nothing is loaded, and a
    TLS connection, should one ever be made, is refused, never unverified."""
    import ssl  # only httpx's clients need a context

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class APIError(P2PDMError):
    """The node refused a request; the message is the node's own explanation.

    ``status`` is the HTTP status (0 if the node never answered), ``code`` the
    API's error code (``not_found``, ``forbidden_scope``, …).
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def transient(self) -> bool:
        """True for failures worth retrying later: no answer, or the node busy."""
        return self.status in (0, 503)


@dataclass(frozen=True)  # no slots: ``_Call[X](...)`` sets __orig_class__
class _Call(Generic[T]):
    """One API request, and which field of the answer is the result."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    #: The answer's field that holds the result; None: the whole body.
    pick: str | None = None
    #: Extra seconds to allow for the answer (a long poll waits on purpose).
    wait_s: float = 0.0

    def result(self, body: Any) -> T:
        return cast(T, body if self.pick is None or body is None else body[self.pick])


def _not_running(home: Path | None) -> NodeNotRunning:
    where = f" for {home}" if home is not None else ""
    start = hints.command(home, "run")
    return NodeNotRunning(f"no p2pdm node is running{where}; start one with `{start}`")


class _BaseClient:
    """What both clients share: the address, the token, and reading answers."""

    def __init__(
        self, host: str, port: int, token: str, home: Path | None, timeout_s: float
    ) -> None:
        self.address = format_api_addr(host, port)
        self.home = home
        self._timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _httpx_options(self) -> dict[str, Any]:
        """The arguments of an ``httpx.Client`` or ``AsyncClient`` for this node."""
        return {
            "base_url": f"http://{self.address}",
            "headers": self._headers,
            "timeout": self._timeout_s,
            "trust_env": False,  # never send the token through an HTTP proxy
            "verify": _no_tls(),
        }

    def _request(self, call: _Call[Any]) -> dict[str, Any]:
        """The arguments of httpx's ``request`` for ``call``."""
        return {
            "method": call.method,
            "url": call.path,
            "json": call.json,
            "params": call.params,
            "timeout": self._timeout_s + call.wait_s,
        }

    @classmethod
    def for_home(
        cls,
        home: HomeLike | str | os.PathLike[str],
        *,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> Self:
        """A client for the node running on ``home`` (with ``token``, else the owner's).

        ``home`` is a :class:`~p2pdm.daemon.home.Home` or the home's directory.
        Raises :class:`NodeNotRunning` if no token is given and the home has
        no API token file.
        """
        if isinstance(home, str | os.PathLike):
            home = HomeDir(resolve_home(home, os.environ))
        if token is None:
            token_path = home.path / API_TOKEN_FILE
            if not token_path.is_file():
                raise _not_running(home.path)
            try:
                token = read_api_token(token_path)
            except FileNotFoundError:  # removed since: the node is gone
                raise _not_running(home.path) from None
        host, port = read_api_addr(home)
        return cls(host, port, token, home=home.path, timeout_s=timeout_s)

    def _transport_error(self, exc: TransportError) -> P2PDMError:
        if exc.kind == "unreachable":
            return _not_running(self.home)
        if exc.kind == "timeout":
            return APIError(0, "timeout", f"the node at {self.address} did not answer in time")
        return APIError(0, "transport", f"the node at {self.address} failed: {exc.detail}")

    def _answer(self, call: _Call[T], response: _Answer) -> T:
        if not response.is_success:
            raise self._error(response)
        if response.status_code == 204:
            return call.result(None)
        try:
            body = response.json()
        except ValueError:
            raise APIError(
                response.status_code, "bad_response", f"{self.address} did not answer in JSON"
            ) from None
        return call.result(body)

    def _error(self, response: _Answer) -> APIError:
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", f"HTTP {response.status_code} from {self.address}"
        if response.status_code == 401:
            token = f"{self.home}/api_token" if self.home else "its token"
            message = f"the node at {self.address} did not accept {token}: {message}"
        return APIError(response.status_code, code, message)
