"""The SDK's shape: a light import, and both clients made from one table with the same wire."""

from __future__ import annotations

import inspect
import json
import ssl
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from p2pdm.client import DEFAULT_TIMEOUT_S, APIError, AsyncClient, Client
from p2pdm.client._operations import Endpoint, Operations
from p2pdm.errors import HomeError, NodeNotRunning
from p2pdm.homefiles import write_private_file

#: What a bot importing the SDK must not pay for: the node, its store, its
#: network and session code, and the libraries behind them.
HEAVY_MODULES = (
    "libp2p",
    "doubleratchet",
    "x3dh",
    "nacl",
    "sqlite3",
    "p2pdm.daemon.home",
    "p2pdm.node.node",
    "p2pdm.daemon.runner",
    "p2pdm.node.messenger",
    "p2pdm.store",
    "p2pdm.net",
    "p2pdm.core",
)


def _home_with_a_node(path: Path, port: int = 4999) -> Path:
    path.mkdir(exist_ok=True)
    (path / "api_addr").write_text(f"127.0.0.1:{port}\n")
    write_private_file(path / "api_token", b"the-token\n", replace=False)
    return path


def test_importing_the_sdk_and_finding_a_node_loads_no_node_code(tmp_path: Path) -> None:
    home = _home_with_a_node(tmp_path / "home")
    script = textwrap.dedent(
        f"""
        import sys
        import p2pdm.client
        client = p2pdm.client.Client.for_home({str(home)!r})
        assert client.address == "127.0.0.1:4999", client.address
        heavy = {HEAVY_MODULES!r}
        loaded = sorted(
            name for name in sys.modules
            if any(name == h or name.startswith(h + ".") for h in heavy)
        )
        print(",".join(loaded))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""  # none of HEAVY_MODULES


def test_for_home_takes_a_directory_or_a_home(tmp_path: Path) -> None:
    from p2pdm.daemon.home import Home

    home = _home_with_a_node(tmp_path / "home", port=4781)
    for given in (home, str(home), Home(home)):
        with Client.for_home(given) as client:
            assert (client.address, client.home) == ("127.0.0.1:4781", home)
    (home / "api_token").chmod(0o644)
    with pytest.raises(HomeError, match="chmod 600"):
        Client.for_home(home)
    with Client.for_home(home, token="scoped") as client:  # the file is not read
        assert client.home == home
    with pytest.raises(NodeNotRunning, match=r"p2pdm --home .* run"):
        Client.for_home(tmp_path / "nothing here")
    with pytest.raises(HomeError, match="--home is empty"):
        Client.for_home("")


# --- one table, the same wire from both clients ---------------------------------

Row = tuple[str, tuple[Any, ...], dict[str, Any], str, str, Any]


def _wire() -> list[Row]:
    """(method name, args, kwargs) → (HTTP method, raw path and query, JSON body or None):
    what each call sent before the clients were made from the table. Made
    afresh for each client: some arguments are one-shot iterators."""
    return [
        ("node", (), {}, "GET", "/v1/node", None),
        ("mailboxes", (), {}, "GET", "/v1/mailboxes", None),
        ("contacts", (), {}, "GET", "/v1/contacts", None),
        (
            "add_contact",
            (" p2pdm:abc ",),
            {"name": "Bob"},
            "POST",
            "/v1/contacts",
            {"invite": "p2pdm:abc", "name": "Bob"},
        ),
        ("add_contact", ("12D3KooW",), {}, "POST", "/v1/contacts", {"peer_id": "12D3KooW"}),
        ("delete_contact", ("a b/c",), {}, "DELETE", "/v1/contacts/a%20b%2Fc", None),
        ("send", ("bob", "hi"), {}, "POST", "/v1/messages", {"to": "bob", "text": "hi"}),
        (
            "send",
            ("bob", "hi"),
            {"idempotency_key": "k"},
            "POST",
            "/v1/messages",
            {"to": "bob", "text": "hi", "idempotency_key": "k"},
        ),
        (
            "send_many",
            (iter([{"to": "bob", "text": "hi"}, {"to": "eve", "text": "yo"}]),),
            {},
            "POST",
            "/v1/messages/batch",
            {"messages": [{"to": "bob", "text": "hi"}, {"to": "eve", "text": "yo"}]},
        ),
        ("message", ("m?1",), {}, "GET", "/v1/messages/m%3F1", None),
        ("react", ("m1", "👍"), {}, "POST", "/v1/messages/m1/reactions", {"emoji": "👍"}),
        ("forward", ("m1", "eve"), {}, "POST", "/v1/messages/m1/forward", {"to": "eve"}),
        (
            "forward",
            ("m1", "eve"),
            {"idempotency_key": "k"},
            "POST",
            "/v1/messages/m1/forward",
            {"to": "eve", "idempotency_key": "k"},
        ),
        ("edit", ("m1", "new"), {}, "PATCH", "/v1/messages/m1", {"text": "new"}),
        ("unsend", ("m1",), {}, "DELETE", "/v1/messages/m1", None),
        ("delete_for_me", ("m1",), {}, "DELETE", "/v1/messages/m1?for=me", None),
        ("delete_conversation", ("bob",), {}, "DELETE", "/v1/conversations/bob", None),
        ("conversations", (), {}, "GET", "/v1/conversations", None),
        ("messages", ("bob #2",), {}, "GET", "/v1/conversations/bob%20%232/messages", None),
        (
            "messages",
            ("bob",),
            {"before": 7, "limit": 2},
            "GET",
            "/v1/conversations/bob/messages?limit=2&before=7",
            None,
        ),
        ("mark_read", ("bob",), {}, "POST", "/v1/conversations/bob/read", None),
        ("blocked", (), {}, "GET", "/v1/blocked", None),
        ("block", ("bob",), {}, "POST", "/v1/blocked", {"peer_id": "bob"}),
        ("unblock", ("b b",), {}, "DELETE", "/v1/blocked/b%20b", None),
        ("requests", (), {}, "GET", "/v1/requests", None),
        ("accept_request", ("12D3",), {}, "POST", "/v1/requests/12D3/accept", None),
        ("decline_request", ("12D3",), {}, "POST", "/v1/requests/12D3/decline", None),
        ("block_request", ("12D3",), {}, "POST", "/v1/requests/12D3/block", None),
        ("mark_message_read", ("m",), {}, "POST", "/v1/messages/m/read", None),
        ("settings", (), {}, "GET", "/v1/settings", None),
        (
            "update_settings",
            ({"read_receipts": False},),
            {},
            "PATCH",
            "/v1/settings",
            {"read_receipts": False},
        ),
        ("update_settings", ({},), {}, "PATCH", "/v1/settings", {}),
        ("poll_events", (), {}, "GET", "/v1/events/poll?since=0&timeout=0", None),
        (
            "poll_events",
            (3, 5),
            {"limit": 10, "types": iter(["a", "b"])},
            "GET",
            "/v1/events/poll?since=3&timeout=5&limit=10&types=a%2Cb",
            None,
        ),
        (
            "create_token",
            ("send",),
            {"contacts": iter(["bob"]), "name": "bot"},
            "POST",
            "/v1/tokens",
            {"scope": "send", "contacts": ["bob"], "name": "bot"},
        ),
        ("create_token", ("read",), {}, "POST", "/v1/tokens", {"scope": "read", "contacts": []}),
        ("tokens", (), {}, "GET", "/v1/tokens", None),
        ("revoke_token", ("echo bot",), {}, "DELETE", "/v1/tokens/echo%20bot", None),
        (
            "send_media",
            ("bob", ["ab"]),
            {"caption": "look"},
            "POST",
            "/v1/messages",
            {"to": "bob", "media": ["ab"], "text": "look"},
        ),
        (
            "send_location",
            ("bob", 52.5, 13.4),
            {"label": "Berlin"},
            "POST",
            "/v1/messages",
            {"to": "bob", "location": {"lat": 52.5, "lon": 13.4, "label": "Berlin"}},
        ),
        ("fetch_media", ("ab",), {}, "POST", "/v1/media/ab/download", None),
        ("profile", (), {}, "GET", "/v1/profile", None),
        (
            "update_profile",
            (),
            {"handle": "alice.k", "bio": "", "avatar": b"\xff\xd8"},
            "PATCH",
            "/v1/profile",
            {"handle": "alice.k", "bio": "", "avatar": "/9g="},
        ),
        ("clear_profile", (), {}, "DELETE", "/v1/profile", None),
        ("find", ("@Alice K",), {}, "GET", "/v1/directory?handle=%40Alice+K", None),
        ("login_link", (), {}, "POST", "/v1/sessions/codes", None),
        ("sessions", (), {}, "GET", "/v1/sessions", None),
        ("revoke_session", ("web-session-1",), {}, "DELETE", "/v1/sessions/web-session-1", None),
        (
            "update_conversation",
            ("bob",),
            {"timer_s": 300, "muted": False},
            "PATCH",
            "/v1/conversations/bob",
            {"timer_s": 300, "muted": False},
        ),
        ("search", ("a b",), {"peer": "bob"}, "GET", "/v1/search?q=a+b&peer=bob", None),
        ("typing", ("bob",), {}, "POST", "/v1/conversations/bob/typing", None),
        (
            "share_live_location",
            ("bob", 52.5, 13.4),
            {"duration_s": 900},
            "POST",
            "/v1/conversations/bob/live-location",
            {"lat": 52.5, "lon": 13.4, "duration_s": 900},
        ),
        ("stop_live_location", ("bob",), {}, "DELETE", "/v1/conversations/bob/live-location", None),
        ("live_locations", ("bob",), {}, "GET", "/v1/conversations/bob/live-location", None),
        (
            "create_group",
            ("Bakery team", iter(["bob", "carol"])),
            {},
            "POST",
            "/v1/groups",
            {"name": "Bakery team", "members": ["bob", "carol"]},
        ),
        (
            "create_group",
            ("Ephemeral", ["bob"]),
            {"timer_s": 3600},
            "POST",
            "/v1/groups",
            {"name": "Ephemeral", "members": ["bob"], "timer_s": 3600},
        ),
        ("groups", (), {}, "GET", "/v1/groups", None),
        ("group", ("Bakery team",), {}, "GET", "/v1/groups/Bakery%20team", None),
        (
            "add_group_members",
            ("g1", iter(["dave"])),
            {},
            "POST",
            "/v1/groups/g1/members",
            {"members": ["dave"]},
        ),
        ("remove_group_member", ("g1", "dave"), {}, "DELETE", "/v1/groups/g1/members/dave", None),
        ("leave_group", ("g1",), {}, "POST", "/v1/groups/g1/leave", None),
        ("update_group", ("g1",), {"name": "Bakers"}, "PATCH", "/v1/groups/g1", {"name": "Bakers"}),
        (
            "update_group",
            ("g1",),
            {"add_admins": iter(["bob"]), "timer_s": 0},
            "PATCH",
            "/v1/groups/g1",
            {"timer_s": 0, "admins": {"add": ["bob"]}},
        ),
        (
            "update_group",
            ("g1",),
            {"remove_admins": ["bob"]},
            "PATCH",
            "/v1/groups/g1",
            {"admins": {"remove": ["bob"]}},
        ),
        ("set_group_photo", ("g1", "ab"), {}, "PATCH", "/v1/groups/g1", {"photo": "ab"}),
        ("set_group_photo", ("g1", None), {}, "PATCH", "/v1/groups/g1", {"photo": None}),
        (
            "send_location",
            ("g1", 1.0, 2.0),
            {"idempotency_key": "k"},
            "POST",
            "/v1/messages",
            {"to": "g1", "location": {"lat": 1.0, "lon": 2.0}, "idempotency_key": "k"},
        ),
        ("accept_group", ("g1",), {}, "POST", "/v1/groups/g1/accept", None),
        ("decline_group", ("g1",), {}, "POST", "/v1/groups/g1/decline", None),
        ("block_group", ("g1",), {}, "POST", "/v1/groups/g1/block", None),
    ]


#: The answer the fake node gives: every field a result may be picked from.
ANSWER = {
    "contacts": ["c"],
    "conversations": ["v"],
    "live_locations": ["l"],
    "read": ["r"],
    "tokens": ["t"],
    "blocked": ["b"],
    "requests": ["q"],
    "results": ["s"],
    "sessions": ["s"],
    "groups": ["g"],
    "id": 1,
}
#: The result each method returns from ANSWER (or from 204 for a DELETE).
RESULTS = {
    "contacts": ["c"],
    "conversations": ["v"],
    "mark_read": ["r"],
    "live_locations": ["l"],
    "tokens": ["t"],
    "blocked": ["b"],
    "requests": ["q"],
    "sessions": ["s"],
    "search": ["s"],
    "send_many": ["s"],
    "groups": ["g"],
}


def _fake_node(seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json=ANSWER)

    return answer


def _check(request: httpx.Request, method: str, target: str, body: Any) -> None:
    assert (request.method, request.url.raw_path.decode()) == (method, target)
    assert request.headers["authorization"] == "Bearer t"
    if body is None:
        assert request.content == b""
    else:
        assert json.loads(request.content) == body


def _expected_result(name: str, http_method: str) -> Any:
    return None if http_method == "DELETE" else RESULTS.get(name, ANSWER)


def test_the_sync_client_sends_what_it_always_sent() -> None:
    seen: list[httpx.Request] = []
    with Client("127.0.0.1", 1, "t", transport=httpx.MockTransport(_fake_node(seen))) as client:
        for name, args, kwargs, method, target, body in _wire():
            result = getattr(client, name)(*args, **dict(kwargs))
            assert result == _expected_result(name, method), name
            _check(seen.pop(), method, target, body)


async def test_the_async_client_sends_the_same() -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(_fake_node(seen))
    async with AsyncClient("127.0.0.1", 1, "t", transport=transport) as client:
        for name, args, kwargs, method, target, body in _wire():
            result = await getattr(client, name)(*args, **dict(kwargs))
            assert result == _expected_result(name, method), name
            _check(seen.pop(), method, target, body)


def test_a_long_poll_gets_its_wait_on_top_of_the_timeout() -> None:
    seen: list[httpx.Request] = []
    with Client("127.0.0.1", 1, "t", transport=httpx.MockTransport(_fake_node(seen))) as client:
        client.poll_events(timeout_s=20)
        client.contacts()
    assert [r.extensions["timeout"]["read"] for r in seen] == [
        DEFAULT_TIMEOUT_S + 20,
        DEFAULT_TIMEOUT_S,
    ]


def test_bad_arguments_fail_as_a_method_call_would_and_send_nothing() -> None:
    seen: list[httpx.Request] = []
    with Client("127.0.0.1", 1, "t", transport=httpx.MockTransport(_fake_node(seen))) as client:
        with pytest.raises(TypeError):
            client.send("bob", "hi", "positional key")  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            client.messages()  # type: ignore[call-arg]
    assert seen == []


def test_a_refusal_is_an_api_error_from_both_clients() -> None:
    refuse = httpx.MockTransport(
        lambda _: httpx.Response(404, json={"error": {"code": "not_found", "message": "no bob"}})
    )
    with (
        Client("127.0.0.1", 1, "t", transport=refuse) as client,
        pytest.raises(APIError) as refused,
    ):
        client.send("bob", "hi")
    assert (refused.value.status, refused.value.code, str(refused.value)) == (
        404,
        "not_found",
        "no bob",
    )


def test_every_row_is_a_method_of_both_clients_with_one_signature() -> None:
    rows = {name for name, row in vars(Operations).items() if isinstance(row, Endpoint)}
    assert rows == {name for name, *_ in _wire()}  # every row is checked on the wire above
    for name in rows:
        sync, coroutine = getattr(Client, name), getattr(AsyncClient, name)
        assert inspect.signature(sync) == inspect.signature(coroutine)
        assert next(iter(inspect.signature(sync).parameters)) == "self"
        assert inspect.iscoroutinefunction(coroutine)
        assert not inspect.iscoroutinefunction(sync)
        assert sync.__doc__ and sync.__doc__ == coroutine.__doc__
        assert (sync.__qualname__, coroutine.__qualname__) == (
            f"Client.{name}",
            f"AsyncClient.{name}",
        )


def test_a_client_loads_no_ca_bundle_and_never_talks_unverified_tls() -> None:
    """The local API is plain HTTP: no CA bundle is read for it (a fifth of a
    CLI command's time), and a TLS connection would be refused, not unverified."""
    from p2pdm.client._http import _no_tls
    from p2pdm.client._wire import Pool

    context = _no_tls()
    assert context.cert_store_stats()["x509_ca"] == 0
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    client = AsyncClient("127.0.0.1", 4999, "token")
    assert client._httpx_options()["verify"].cert_store_stats()["x509_ca"] == 0
    assert str(client._http.base_url).startswith("http://")
    with Client("127.0.0.1", 4999, "token") as sync:
        assert isinstance(sync._http, Pool)  # plain http.client connections, no TLS at all
