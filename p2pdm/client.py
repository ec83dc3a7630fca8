"""A synchronous client for a running node's local API (the CLI's chat commands use it).

How this works: :meth:`Client.for_home` finds the node of a home the way
``ipfs`` finds its daemon: the address the running node wrote to
``<home>/api_addr`` (``host:port``; absent means 127.0.0.1 on
:data:`~p2pdm.node.DEFAULT_API_PORT`) and the bearer token in
``<home>/api_token``. No token file, or nothing listening, means no node is
running: :class:`~p2pdm.errors.NodeNotRunning`. A refusal from the API
(4xx/5xx) is an :class:`APIError` carrying the API's own one-line message.

Bots can use it too::

    with Client.for_home(Home()) as node:
        node.send("bob", "hello")
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import httpx

from p2pdm.errors import HomeError, NodeNotRunning, P2PDMError
from p2pdm.home import Home, write_private_file
from p2pdm.node import DEFAULT_API_PORT

__all__ = [
    "API_ADDR_FILE",
    "DEFAULT_TIMEOUT_S",
    "APIError",
    "Client",
    "format_api_addr",
    "parse_api_addr",
    "read_api_addr",
    "write_api_addr",
]

#: File in the home where the running node writes its API address (host:port).
API_ADDR_FILE: Final = "api_addr"
#: A node answers local calls from its store in milliseconds; this long
#: without an answer means it is stuck, and the CLI should say so, not hang.
DEFAULT_TIMEOUT_S: Final = 10.0
#: ``api_addr`` is one short line; anything longer is not ours.
MAX_API_ADDR_CHARS: Final = 300
#: Host names the client sends the token to (the API only listens on loopback).
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})


class APIError(P2PDMError):
    """The node refused a request; the message is the node's own explanation."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# --- the address file ----------------------------------------------------------


def format_api_addr(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_api_addr(
    text: str, where: str = "the API address", *, any_port: bool = False
) -> tuple[str, int]:
    """Parse ``host:port``; raises :class:`HomeError` unless it is a loopback address.

    ``any_port`` also accepts port 0 (listen on a free port)."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]").lower()
    lowest = 0 if any_port else 1
    if not sep or not port_text.isdigit() or not lowest <= int(port_text) < 2**16:
        raise HomeError(f"{where} is not host:port: {text[:60]!r}")
    if host not in _LOOPBACK_HOSTS and not host.startswith("127."):
        raise HomeError(f"{where} names {host!r}, not a loopback address; delete it")
    return host, int(port_text)


def api_addr_path(home: Home) -> Path:
    return home.path / API_ADDR_FILE


def read_api_addr(home: Home) -> tuple[str, int]:
    """The API address of the home's node; the default one if the file is absent."""
    path = api_addr_path(home)
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            text = file.read(MAX_API_ADDR_CHARS + 1)
    except FileNotFoundError:
        return "127.0.0.1", DEFAULT_API_PORT
    except OSError as exc:
        raise HomeError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_api_addr(text, str(path))


def write_api_addr(home: Home, host: str, port: int) -> None:
    """Record where the running node's API listens (atomically, mode 0600)."""
    data = (format_api_addr(host, port) + "\n").encode("ascii")
    write_private_file(api_addr_path(home), data, replace=True)


# --- the client --------------------------------------------------------------------


class Client:
    """Calls on one node's local API; raises :class:`NodeNotRunning` or :class:`APIError`."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        *,
        home: Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.address = format_api_addr(host, port)
        self.home = home
        self._http = httpx.Client(
            base_url=f"http://{self.address}",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
            trust_env=False,  # never send the token through an HTTP proxy
        )

    @classmethod
    def for_home(cls, home: Home, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Client:
        """A client for the node running on ``home``; raises :class:`NodeNotRunning`."""
        if not home.api_token_path.is_file():
            raise cls._not_running(home.path)
        host, port = read_api_addr(home)
        return cls(host, port, home.api_token(), home=home.path, timeout_s=timeout_s)

    @staticmethod
    def _not_running(home: Path | None) -> NodeNotRunning:
        where = f" for {home}" if home is not None else ""
        return NodeNotRunning(f"no p2pdm node is running{where}; start one with p2pdm run")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One API call; returns the decoded JSON body (None for 204)."""
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.ConnectError:
            raise self._not_running(self.home) from None
        except httpx.TimeoutException:
            raise APIError(
                0, "timeout", f"the node at {self.address} did not answer in time"
            ) from None
        except httpx.HTTPError as exc:
            raise APIError(0, "transport", f"the node at {self.address} failed: {exc}") from None
        if response.is_success:
            return None if response.status_code == 204 else self._json(response)
        raise self._error(response)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise APIError(
                response.status_code, "bad_response", f"{self.address} did not answer in JSON"
            ) from None

    def _error(self, response: httpx.Response) -> APIError:
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", f"HTTP {response.status_code} from {self.address}"
        if response.status_code == 401:
            token = f"{self.home}/api_token" if self.home else "its token"
            message = f"the node at {self.address} did not accept {token}: {message}"
        return APIError(response.status_code, code, message)

    # --- the endpoints (see docs/api.md) ---

    def node(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/node")
        return result

    def contacts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/v1/contacts")["contacts"]
        return result

    def add_contact(self, invite_or_peer_id: str, name: str | None = None) -> dict[str, Any]:
        """Add a contact from a ``p2pdm:`` invite, or else a PeerID."""
        key = "invite" if invite_or_peer_id.strip().lower().startswith("p2pdm:") else "peer_id"
        body: dict[str, Any] = {key: invite_or_peer_id.strip()}
        if name is not None:
            body["name"] = name
        result: dict[str, Any] = self.request("POST", "/v1/contacts", json=body)
        return result

    def delete_contact(self, peer_id: str) -> None:
        self.request("DELETE", f"/v1/contacts/{_segment(peer_id)}")

    def send(self, to: str, text: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/v1/messages", json={"to": to, "text": text})
        return result

    def message(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/v1/messages/{_segment(message_id)}")
        return result

    def conversations(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/v1/conversations")["conversations"]
        return result

    def messages(self, who: str, limit: int | None = None, before: int | None = None) -> Any:
        """A page ``{"messages": [...], "next_before": ...}``, newest first."""
        params = {k: v for k, v in (("limit", limit), ("before", before)) if v is not None}
        return self.request("GET", f"/v1/conversations/{_segment(who)}/messages", params=params)

    def mark_read(self, who: str) -> list[str]:
        result: list[str] = self.request("POST", f"/v1/conversations/{_segment(who)}/read")["read"]
        return result

    def mark_message_read(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/v1/messages/{_segment(message_id)}/read")
        return result

    def settings(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/settings")
        return result

    def update_settings(self, patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PATCH", "/v1/settings", json=patch)
        return result


def _segment(value: str) -> str:
    """``value`` quoted as one URL path segment (names may hold spaces, '?', '#')."""
    return quote(value, safe="")
