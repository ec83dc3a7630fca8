"""Scoped API tokens and idempotent sends, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import DeliveryStatus, Direction, StoredMessage, direct_conversation_id
from p2pdm.limits import MAX_API_TOKENS
from p2pdm.node.node import Node
from p2pdm.node.tokens import authenticate, create_token, hash_token
from tests.api.conftest import as_token, assert_error, check_documented, make_token
from tests.conftest import Api, make_node, serving
from tests.store.conftest import receive

CAROL = str(Identity.generate(b"\x09" * 32).peer_id)


@pytest.fixture
async def alice() -> AsyncIterator[Api]:
    """Alice's API, with Bob (keys from his invite) and Carol (PeerID only) as contacts."""
    node = make_node("alice")
    node.add_contact_from_invite(make_node("bob").invite())
    node.add_contact_by_peer_id(CAROL, "carol")
    async with serving(node) as api:
        yield api


async def test_tokens_are_made_listed_and_revoked(alice: Api) -> None:
    secret, made = await make_token(alice, scope="read", name="reader")
    assert made["name"] == "reader" and made["scope"] == "read" and made["contacts"] == []
    assert secret.startswith("p2pdm_") and len(secret) > 40
    [stored] = alice.node.store.list_tokens()
    assert stored.secret_hash == hash_token(secret)  # only the hash is kept
    assert secret.encode() not in repr(stored).encode()
    _, unnamed = await make_token(alice, scope="send", contacts=["bob"])
    assert unnamed["name"].startswith("send-")
    assert unnamed["contacts"] == [str(alice.node.resolve("bob"))]
    response = await alice.call("GET", "/v1/tokens")
    await check_documented(alice, response, "GET", "/v1/tokens")
    assert [t["name"] for t in response.json()["tokens"]] == ["reader", unnamed["name"]]
    async with as_token(alice, secret) as reader:
        assert (await reader.get("/v1/node")).status_code == 200
        response = await alice.call("DELETE", "/v1/tokens/reader")
        assert response.status_code == 204
        await check_documented(alice, response, "DELETE", "/v1/tokens/{name}")
        assert_error(await reader.get("/v1/node"), 401, "unauthorized")  # at once
    assert_error(await alice.call("DELETE", "/v1/tokens/reader"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"scope": "root"}, 400, "invalid"),
        ({"scope": "admin", "contacts": ["bob"]}, 400, "invalid"),
        ({"scope": "read", "name": "owner"}, 400, "invalid"),
        ({"scope": "read", "name": "has space"}, 400, "invalid"),
        ({"scope": "read", "name": "x" * 65}, 400, "invalid"),
        ({"scope": "read", "contacts": ["nobody"]}, 404, "not_found"),
        ({"scope": "read", "contacts": "bob"}, 400, "bad_request"),
        ({"scope": "read", "contacts": ["bob"] * 257}, 400, "bad_request"),
        ({"scope": "read", "colour": "red"}, 400, "bad_request"),
        ({}, 400, "bad_request"),
    ],
)
async def test_bad_token_requests_are_4xx(
    alice: Api, body: dict[str, Any], status: int, code: str
) -> None:
    response = await alice.call("POST", "/v1/tokens", json=body)
    assert_error(response, status, code)
    await check_documented(alice, response, "POST", "/v1/tokens")
    assert alice.node.store.list_tokens() == []


async def test_a_taken_name_and_too_many_tokens_are_422(alice: Api) -> None:
    await make_token(alice, scope="read", name="bot")
    assert_error(await alice.call("POST", "/v1/tokens", json={"scope": "read", "name": "bot"}), 422)
    for n in range(MAX_API_TOKENS - 1):
        await make_token(alice, scope="read", name=f"bot{n}")
    response = await alice.call("POST", "/v1/tokens", json={"scope": "read"})
    assert "revoke one" in assert_error(response, 422, "rejected")


async def test_scopes_are_enforced(alice: Api) -> None:
    reader, _ = await make_token(alice, scope="read")
    sender, _ = await make_token(alice, scope="send")
    send = {"to": "bob", "text": "hi"}
    async with as_token(alice, reader) as client:
        for method, path in [("GET", "/v1/contacts"), ("GET", "/v1/events/poll")]:
            assert (await client.request(method, path)).status_code == 200
        response = await client.post("/v1/messages", json=send)
        assert "'send'" in assert_error(response, 403, "forbidden_scope")
        await check_documented(alice, response, "POST", "/v1/messages")
        assert_error(await client.post("/v1/conversations/bob/read"), 403, "forbidden_scope")
        assert_error(await client.get("/v1/tokens"), 403, "forbidden_scope")
    async with as_token(alice, sender) as client:
        assert (await client.post("/v1/messages", json=send)).status_code == 201
        assert_error(await client.patch("/v1/settings", json={"name": "x"}), 403)
        assert_error(await client.post("/v1/contacts", json={"peer_id": CAROL}), 403)
        assert_error(await client.post("/v1/tokens", json={"scope": "admin"}), 403)
    assert alice.node.settings()["name"] == "alice"
    assert len(alice.node.store.list_tokens()) == 2


async def test_a_token_limited_to_a_contact_sees_only_that_conversation(alice: Api) -> None:
    node = alice.node
    bob, carol = node.resolve("bob"), node.resolve("carol")
    to_bob = node.send_text(bob, "for Bob")
    receive(node.store, _incoming(node, carol, b"\x05" * 16))  # Carol wrote to Alice
    node.peer_online(carol)
    secret, _ = await make_token(alice, scope="send", contacts=["bob"])
    async with as_token(alice, secret) as client:
        contacts = (await client.get("/v1/contacts")).json()["contacts"]
        assert [c["name"] for c in contacts] == ["bob"]
        conversations = (await client.get("/v1/conversations")).json()["conversations"]
        assert [c["peer"] for c in conversations] == [str(bob)]
        assert (await client.get("/v1/conversations/bob/messages")).status_code == 200
        response = await client.get("/v1/conversations/carol/messages")
        assert_error(response, 403, "forbidden_contact")
        assert_error(await client.post("/v1/conversations/carol/read"), 403, "forbidden_contact")
        response = await client.post("/v1/messages", json={"to": "carol", "text": "hi"})
        assert_error(response, 403, "forbidden_contact")
        assert (await client.get(f"/v1/messages/{to_bob.id.hex()}")).status_code == 200
        assert_error(await client.get(f"/v1/messages/{'05' * 16}"), 404, "not_found")
        assert_error(await client.post(f"/v1/messages/{'05' * 16}/read"), 404, "not_found")
        events = (await client.get("/v1/events/poll")).json()["events"]
        assert {e["peer"] for e in events} == {str(bob)}  # not Carol's message or presence
    assert node.store.get_message(b"\x05" * 16).status == DeliveryStatus.DELIVERED  # type: ignore[union-attr]


def _incoming(node: Node, peer: PeerId, message_id: bytes) -> StoredMessage:
    return StoredMessage(
        id=message_id,
        conversation_id=direct_conversation_id(node.peer_id, peer),
        peer=peer,
        direction=Direction.IN,
        kind="text",
        body=b"\xa1dtextbhi",
        sent_at_ms=1,
        stored_at_ms=1,
        status=DeliveryStatus.DELIVERED,
    )


def test_authenticate_checks_the_owner_and_every_stored_hash() -> None:
    node = make_node("alice")
    _, secret = create_token(node.store, "read", now_ms=1)
    stored = node.store.list_tokens()
    assert authenticate("owner-secret", "owner-secret", stored).name == "owner"  # type: ignore[union-attr]
    grant = authenticate(secret, "owner-secret", stored)
    assert grant is not None and grant.scope == "read" and grant.contacts is None
    assert authenticate(secret + "x", "owner-secret", stored) is None
    assert authenticate("", "owner-secret", stored) is None


# --- idempotent sends ---------------------------------------------------------------


async def test_a_retried_send_returns_the_same_message(alice: Api) -> None:
    body = {"to": "bob", "text": "exactly once", "idempotency_key": "key-1"}
    first = await alice.call("POST", "/v1/messages", json=body)
    assert first.status_code == 201
    await check_documented(alice, first, "POST", "/v1/messages", body)
    again = await alice.call("POST", "/v1/messages", json=body)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    await check_documented(alice, again, "POST", "/v1/messages", body)
    assert again.json()["id"] == first.json()["id"]
    by_peer_id = {**body, "to": str(alice.node.resolve("bob"))}  # same contact, other spelling
    assert (await alice.call("POST", "/v1/messages", json=by_peer_id)).json()["id"] == first.json()[
        "id"
    ]
    assert alice.node.store.counts()["messages"] == 1
    assert len(alice.node.store.outbox_for(alice.node.resolve("bob"))) == 1
    # Another token has its own keys.
    secret, _ = await make_token(alice, scope="send", name="bot")
    async with as_token(alice, secret) as bot:
        other = await bot.post("/v1/messages", json=body)
        assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    # Without a key, every request is a new message.
    plain = {"to": "bob", "text": "exactly once"}
    ids = {(await alice.call("POST", "/v1/messages", json=plain)).json()["id"] for _ in range(2)}
    assert len(ids) == 2


async def test_a_reused_key_for_another_message_is_422(alice: Api) -> None:
    body = {"to": "bob", "text": "one", "idempotency_key": "k"}
    assert (await alice.call("POST", "/v1/messages", json=body)).status_code == 201
    for changed in ({**body, "text": "two"}, {**body, "to": "carol"}):
        response = await alice.call("POST", "/v1/messages", json=changed)
        assert_error(response, 422, "idempotency_key_reused")
    for key in ("", "k" * 256, 5):
        response = await alice.call("POST", "/v1/messages", json={**body, "idempotency_key": key})
        assert_error(response, 400, "bad_request")
    assert alice.node.store.counts()["messages"] == 1


async def test_a_failed_send_does_not_use_up_its_key(alice: Api) -> None:
    body = {"to": "carol", "text": "no keys yet", "idempotency_key": "k2"}
    assert_error(await alice.call("POST", "/v1/messages", json=body), 422, "no_session")
    assert alice.node.store.sent_with("owner", "k2") is None
    response = await alice.call("POST", "/v1/messages", json={**body, "to": "bob"})
    assert response.status_code == 201
