"""The blocking client's own HTTP (``p2pdm.client._wire``, on ``http.client``).

Against a small HTTP/1.1 server in a thread that records what arrives and on
which connection: the same bytes on the wire as the httpx client sent, one
connection kept for many calls, an idle connection the server closed
replaced before use, a request never sent twice, and every failure mapped
to the SDK's errors.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from p2pdm.client import APIError, Client
from p2pdm.client._wire import MAX_IDLE_CONNECTIONS, Pool, target
from p2pdm.errors import NodeNotRunning
from tests.client.test_package import ANSWER, _expected_result, _wire


@dataclass
class Seen:
    """One request as the server read it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class FakeNode:
    port: int
    seen: list[Seen] = field(default_factory=list)
    #: (request) -> (status, headers, body pieces); body pieces are sent chunked if several.
    answer: Callable[[Seen], tuple[int, dict[str, str], list[bytes]]] | None = None
    #: Close the connection after answering, without saying so (an idle timeout).
    drop_after_answer: bool = False
    #: Read the request, then close without answering.
    drop_before_answer: bool = False
    #: Seconds to wait before answering.
    delay_s: float = 0.0


def _default_answer(seen: Seen) -> tuple[int, dict[str, str], list[bytes]]:
    if seen.method == "DELETE":
        return 204, {}, []
    return 200, {"Content-Type": "application/json"}, [json.dumps(ANSWER).encode()]


def _read_chunked(rfile: Any) -> bytes:
    body = b""
    while True:
        size = int(rfile.readline().split(b";")[0], 16)
        if size == 0:
            rfile.readline()
            return body
        body += rfile.read(size)
        rfile.readline()


@contextmanager
def fake_node() -> Iterator[FakeNode]:
    node: FakeNode

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            if self.headers.get("Transfer-Encoding") == "chunked":
                body = _read_chunked(self.rfile)
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen = Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                self.client_address[1],
            )
            node.seen.append(seen)
            if node.drop_before_answer:
                self.close_connection = True
                return
            time.sleep(node.delay_s)
            status, headers, pieces = (node.answer or _default_answer)(seen)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if len(pieces) > 1:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in pieces:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            else:
                if status != 204:
                    self.send_header("Content-Length", str(len(b"".join(pieces))))
                self.end_headers()
                self.wfile.write(b"".join(pieces))
            self.wfile.flush()
            if node.drop_after_answer:
                self.close_connection = True

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    server = _QuietServer(("127.0.0.1", 0), Handler)
    node = FakeNode(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield node
    finally:
        server.shutdown()
        server.server_close()


class _QuietServer(ThreadingHTTPServer):
    """The fake node's server: closing it waits for its handler threads, and a
    handler that fails (the client gave up: a timeout test) is not printed to
    stderr, where a later test's captured output would get it."""

    daemon_threads = False
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Nothing: the client's side of such a failure is what the tests check."""


def test_the_sync_client_sends_what_httpx_sent_on_the_wire() -> None:
    """Every row of the operations table: the same method, target, headers and body."""
    with fake_node() as node, Client("127.0.0.1", node.port, "t") as client:
        for name, args, kwargs, method, path, body in _wire():
            result = getattr(client, name)(*args, **dict(kwargs))
            assert result == _expected_result(name, method), name
            seen = node.seen.pop()
            assert (seen.method, seen.target) == (method, path), name
            assert seen.headers["authorization"] == "Bearer t"
            assert seen.headers["accept"] == "application/json"
            if body is None:
                assert seen.body == b"", name
                assert "content-type" not in seen.headers
            else:
                assert json.loads(seen.body) == body, name
                assert seen.headers["content-type"] == "application/json"
        assert node.seen == []


def test_targets_are_quoted_as_httpx_quoted_them() -> None:
    assert target("/v1/messages/a b", {}) == "/v1/messages/a%20b"
    assert target("/v1/x", {"types": ["a.b", "c"], "flag": True, "off": False}) == (
        "/v1/x?types=a.b&types=c&flag=true&off=false"
    )
    assert target("/v1/x?limit=5", {"q": "é &"}) == "/v1/x?limit=5&q=%C3%A9+%26"
    assert target("/v1/search", {}) == "/v1/search"


def test_one_connection_carries_every_call_of_a_client() -> None:
    with fake_node() as node, Client("127.0.0.1", node.port, "t") as client:
        for _ in range(5):
            client.contacts()
            client.delete_contact("bob")  # an empty (204) answer keeps it too
    assert len(node.seen) == 10
    assert len({seen.client_port for seen in node.seen}) == 1


def test_an_idle_connection_the_node_closed_is_replaced_and_nothing_is_sent_twice() -> None:
    with fake_node() as node, Client("127.0.0.1", node.port, "t") as client:
        node.drop_after_answer = True  # as hypercorn does after its keep-alive timeout
        for _ in range(3):
            client.send("bob", "hi")
            time.sleep(0.05)  # the close reaches the client while the connection idles
    assert [seen.method for seen in node.seen] == ["POST"] * 3  # each sent once
    assert len({seen.client_port for seen in node.seen}) == 3


def test_a_request_the_node_drops_unanswered_fails_once_and_is_not_retried() -> None:
    """httpx did not retry a request once sent; nor does this transport."""
    with fake_node() as node, Client("127.0.0.1", node.port, "t") as client:
        client.contacts()  # a kept connection, so the drop happens on a reused one
        node.drop_before_answer = True
        with pytest.raises(APIError) as failed:
            client.send("bob", "hi")
        assert (failed.value.status, failed.value.code) == (0, "transport")
        assert str(failed.value).startswith(f"the node at 127.0.0.1:{node.port} failed: ")
        assert [seen.method for seen in node.seen] == ["GET", "POST"]
        node.drop_before_answer = False
        assert client.request("GET", "/v1/contacts") == ANSWER  # on a new connection


def test_nothing_listening_means_the_node_is_not_running(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with Client("127.0.0.1", port, "t", home=tmp_path) as client, pytest.raises(NodeNotRunning):
        client.node()


def test_a_node_that_does_not_answer_in_time_is_a_timeout() -> None:
    with fake_node() as node, Client("127.0.0.1", node.port, "t", timeout_s=0.2) as client:
        node.delay_s = 1.0
        with pytest.raises(APIError) as failed:
            client.node()
        assert (failed.value.status, failed.value.code, failed.value.transient) == (
            0,
            "timeout",
            True,
        )
        assert str(failed.value) == f"the node at 127.0.0.1:{node.port} did not answer in time"


def test_refusals_and_bad_answers_become_api_errors(tmp_path: Path) -> None:
    answers: list[tuple[int, dict[str, str], list[bytes]]] = [
        (404, {}, [b'{"error": {"code": "not_found", "message": "no bob"}}']),
        (401, {}, [b'{"error": {"code": "unauthorized", "message": "bad token"}}']),
        (502, {}, [b"<html>proxy</html>"]),
        (200, {}, [b"not json"]),
    ]
    with fake_node() as node, Client("127.0.0.1", node.port, "t", home=tmp_path) as client:
        node.answer = lambda _seen: answers.pop(0)
        errors = []
        for _ in range(4):
            with pytest.raises(APIError) as refused:
                client.send("bob", "hi")
            errors.append((refused.value.status, refused.value.code, str(refused.value)))
    address = f"127.0.0.1:{node.port}"
    assert errors == [
        (404, "not_found", "no bob"),
        (
            401,
            "unauthorized",
            f"the node at {address} did not accept {tmp_path}/api_token: bad token",
        ),
        (502, "http_error", f"HTTP 502 from {address}"),
        (200, "bad_response", f"{address} did not answer in JSON"),
    ]


def test_an_upload_streams_its_file_in_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: several pieces
    (tmp_path / "a b.bin").write_bytes(data)
    with fake_node() as node, Client("127.0.0.1", node.port, "t") as client:
        node.answer = lambda _seen: (200, {}, [b'{"id": "m1", "name": "a b.bin"}'])
        assert client.upload_file(tmp_path / "a b.bin")["id"] == "m1"
    (seen,) = node.seen
    assert (seen.method, seen.target) == ("POST", "/v1/media?name=a+b.bin")
    assert seen.headers["transfer-encoding"] == "chunked"
    assert seen.headers["content-type"] == "application/octet-stream"
    assert seen.body == data


def test_a_download_streams_to_its_file_and_keeps_the_connection(tmp_path: Path) -> None:
    pieces = [b"x" * 70_000, b"y" * 70_000, b"z"]
    with fake_node() as node, Client("127.0.0.1", node.port, "t") as client:
        node.answer = lambda _seen: (
            200,
            {"Content-Disposition": "attachment; filename*=UTF-8''..%2Fphoto.jpg"},
            pieces,
        )
        saved = client.download("b1", tmp_path)
        node.answer = None
        client.contacts()
    assert saved == tmp_path / "photo.jpg" and saved.read_bytes() == b"".join(pieces)
    assert [seen.target for seen in node.seen] == ["/v1/media/b1", "/v1/contacts"]
    assert len({seen.client_port for seen in node.seen}) == 1


def test_a_refused_download_is_an_api_error(tmp_path: Path) -> None:
    with fake_node() as node, Client("127.0.0.1", node.port, "t") as client:
        node.answer = lambda _seen: (
            404,
            {},
            [b'{"error": {"code": "not_found", "message": "no such file"}}'],
        )
        with pytest.raises(APIError, match="no such file"):
            client.download("b1", tmp_path)
        assert list(tmp_path.iterdir()) == []


def test_a_client_shared_by_threads_keeps_a_bounded_number_of_connections() -> None:
    with fake_node() as node, Client("127.0.0.1", node.port, "t") as client:
        node.delay_s = 0.05
        threads = [threading.Thread(target=client.contacts) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert len(node.seen) == 8
        assert isinstance(client._http, Pool)
        assert 1 <= len(client._http._idle) <= MAX_IDLE_CONNECTIONS
