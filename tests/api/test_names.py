"""A contact's name never takes over another contact: the attack through the real API.

Alice's node serves its API over real HTTP; Bob and a stranger X are real
nodes whose invites Alice adds, and whose queued envelopes are handed over
as the delivery service would. X calls itself by Bob's PeerID, or "bob" in
some case: whatever it does, Bob's PeerID and Bob's name still mean Bob.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import Contact
from p2pdm.node.node import Node
from p2pdm.store.sqlite import SQLiteStore
from tests.api.conftest import as_token, assert_error, check_documented, make_token
from tests.conftest import Api, deliver, make_node, serving


@pytest.fixture
async def alice() -> AsyncIterator[Api]:
    async with serving(make_node("alice")) as api:
        yield api


async def add(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.call("POST", "/v1/contacts", json=body)
    assert response.status_code == 201, response.text
    await check_documented(api, response, "POST", "/v1/contacts", body)
    added: dict[str, Any] = response.json()
    return added


async def send(api: Api, to: str, text: str) -> dict[str, Any]:
    response = await api.call("POST", "/v1/messages", json={"to": to, "text": text})
    assert response.status_code == 201, response.text
    sent: dict[str, Any] = response.json()
    return sent


async def hijack_attempt(alice: Api, x_name: str | None) -> tuple[Node, Node, dict[str, Any]]:
    """Alice adds Bob, then a stranger X whose invite calls X ``x_name`` (None: Bob's PeerID)."""
    bob, x = make_node("bob"), make_node("x")
    x.update_settings({"name": str(bob.peer_id) if x_name is None else x_name})
    await add(alice, invite=bob.invite())
    added = await add(alice, invite=x.invite())
    return bob, x, added


async def assert_bob_is_bob(alice: Api, bob: Node, x: Node) -> None:
    """Sends to Bob by name (any case) and PeerID reach Bob; reading "bob" reads Bob."""
    bob_id = str(bob.peer_id)
    for to in ("bob", "BOB", bob_id):
        sent = await send(alice, to, f"for Bob via {to}")
        assert sent["peer"] == bob_id
        stored = alice.node.message(sent["id"])[0]
        assert stored.peer == bob.peer_id
    assert alice.node.store.outbox_for(x.peer_id) == []
    assert len(alice.node.store.outbox_for(bob.peer_id)) == 3
    # Bob really gets them (they are sealed for his key).
    assert deliver(alice.node, bob) == [alice.node.peer_id] * 3
    assert [m.peer for m in bob.messages(alice.node.peer_id).messages] == [alice.node.peer_id] * 3
    for who in ("bob", bob_id):
        response = await alice.call("GET", f"/v1/conversations/{who}/messages")
        assert response.status_code == 200
        peers = {m["peer"] for m in response.json()["messages"]}
        assert peers == {bob_id}


async def test_an_invite_named_with_bobs_peer_id_cannot_take_bobs_messages(alice: Api) -> None:
    bob, x, added = await hijack_attempt(alice, None)
    assert added["peer_id"] == str(x.peer_id)
    assert added["name"] == x.peer_id.short() != str(bob.peer_id)
    assert added["renamed_from"] == str(bob.peer_id)
    await assert_bob_is_bob(alice, bob, x)


@pytest.mark.parametrize("x_name", ["bob", "BOB", "Bob"])
async def test_an_invite_named_like_bob_in_any_case_is_renamed(alice: Api, x_name: str) -> None:
    bob, x, added = await hijack_attempt(alice, x_name)
    assert added["name"] == f"{x_name} ({x.peer_id.short()})"
    assert added["renamed_from"] == x_name
    assert added["name_from_invite"] is True and added["fingerprint"] == x.peer_id.short()
    await assert_bob_is_bob(alice, bob, x)
    # X's own conversation is under X's new name or PeerID, never Bob's.
    sent = await send(alice, added["name"], "for X")
    assert sent["peer"] == str(x.peer_id)


async def test_a_token_scoped_to_bobs_peer_id_is_not_scoped_to_x(alice: Api) -> None:
    bob, x, _ = await hijack_attempt(alice, None)
    for contact in (str(bob.peer_id), "bob"):
        secret, made = await make_token(alice, scope="send", contacts=[contact])
        assert made["contacts"] == [str(bob.peer_id)]
        async with as_token(alice, secret) as client:
            response = await client.post("/v1/messages", json={"to": str(x.peer_id), "text": "x"})
            assert_error(response, 403, "forbidden_contact")
            response = await client.post("/v1/messages", json={"to": "bob", "text": "b"})
            assert response.status_code == 201 and response.json()["peer"] == str(bob.peer_id)
            listed = (await client.get("/v1/contacts")).json()["contacts"]
            assert [c["peer_id"] for c in listed] == [str(bob.peer_id)]


async def test_a_chosen_name_that_is_a_peer_id_or_taken_is_refused(alice: Api) -> None:
    bob, carol = make_node("bob"), make_node("carol")
    await add(alice, invite=bob.invite(), name="Bobby")
    for name in ("bobby", "BOBBY", " Bobby ", str(bob.peer_id), str(carol.peer_id)):
        response = await alice.call(
            "POST", "/v1/contacts", json={"invite": carol.invite(), "name": name}
        )
        assert_error(response, 409, "name_refused")
        await check_documented(alice, response, "POST", "/v1/contacts")
    assert [c.peer_id for c in alice.node.contacts()] == [bob.peer_id]
    # Renaming a contact to its own name, in another case, is fine.
    renamed = await add(alice, peer_id=str(bob.peer_id), name="BOBBY")
    assert (renamed["name"], renamed["name_from_invite"], renamed["renamed_from"]) == (
        "BOBBY",
        False,
        None,
    )
    # Re-adding Bob from his invite keeps the name Alice chose.
    again = await add(alice, invite=bob.invite())
    assert (again["name"], again["name_from_invite"]) == ("BOBBY", False)


def test_a_store_with_ambiguous_names_is_fixed_when_opened(tmp_path: Path) -> None:
    """Contacts saved before names were checked: the later of two gives way."""
    me = Identity.generate(os.urandom(32))
    bob, x, y = (Identity.generate(os.urandom(32)).peer_id for _ in range(3))
    store = SQLiteStore(tmp_path / "store.sqlite")
    store.put_contact(Contact(bob, "bob", added_at_ms=1, name_from_invite=True))
    store.put_contact(Contact(x, "BOB", added_at_ms=2, name_from_invite=True))
    store.put_contact(Contact(y, str(bob), added_at_ms=3, name_from_invite=True))
    store.close()
    store = SQLiteStore(tmp_path / "store.sqlite")
    node = Node(me, store)
    names = {c.peer_id: c.name for c in node.contacts()}
    assert names == {bob: "bob", x: f"BOB ({x.short()})", y: y.short()}
    assert node.resolve("bob") == bob
    assert node.resolve(str(bob)) == bob
    store.close()


def test_resolving_text_that_is_a_peer_id_never_looks_at_names() -> None:
    node = make_node("alice")
    bob = Identity.generate(os.urandom(32)).peer_id
    stranger = Identity.generate(os.urandom(32)).peer_id
    node.add_contact_by_peer_id(str(bob), "bob")
    assert node.resolve(f" {stranger} ") == stranger  # a stranger's PeerID is still a PeerID
    assert node.resolve("Bob") == bob
    assert isinstance(node.resolve(str(bob)), PeerId)
