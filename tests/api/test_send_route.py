"""One route from the API to the messenger: a send resolves its contact and checks its
idempotency key once each, over real HTTP."""

from __future__ import annotations

import os
from collections import Counter

import pytest

import p2pdm.node.key_waits as key_waits_module
from p2pdm.core.identity import Identity, PeerId
from p2pdm.node.node import Node
from p2pdm.store.memory import MemoryStore
from tests.conftest import make_node, serving


class CountingStore(MemoryStore):
    """A memory store that counts idempotency-key lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def sent_with(self, scope: str, key: str) -> bytes | None:
        self.calls["sent_with"] += 1
        return super().sent_with(scope, key)


class CountingNode(Node):
    """A node that counts how often what the user typed is resolved to a contact."""

    resolved = 0

    def resolve(self, who: str) -> PeerId:
        self.resolved += 1
        return super().resolve(who)


async def test_a_send_resolves_and_checks_its_key_once() -> None:
    store = CountingStore()
    node = CountingNode(Identity.generate(os.urandom(32)), store)
    node.add_contact_from_invite(make_node("bob").invite())
    body = {"to": "bob", "text": "once", "idempotency_key": "k"}
    async with serving(node) as api:
        first = await api.call("POST", "/v1/messages", json=body)
        assert first.status_code == 201, first.text
        assert (node.resolved, store.calls["sent_with"]) == (1, 1)
        again = await api.call("POST", "/v1/messages", json=body)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        assert (node.resolved, store.calls["sent_with"]) == (2, 2)
        plain = await api.call("POST", "/v1/messages", json={"to": "bob", "text": "no key"})
        assert plain.status_code == 201
        assert (node.resolved, store.calls["sent_with"]) == (3, 2)
    assert len(store.outbox_for(node.resolve("bob"))) == 2


async def _nowhere(peer: PeerId) -> None:
    """A DHT in which nobody has published yet."""
    return None


async def test_a_send_to_a_peer_not_found_yet_is_accepted_and_says_it_waits() -> None:
    """POST /v1/messages to a contact added by PeerID whose keys are not found:
    201, ``queued``, the note in ``status_detail``; a retry with the same
    idempotency key gives the same waiting message."""
    node = make_node("alice")
    node.fetch_bundle = _nowhere
    bob = make_node("bob")
    node.add_contact_by_peer_id(str(bob.peer_id), "bob")
    body = {"to": "bob", "text": "are you up yet?", "idempotency_key": "w"}
    async with serving(node) as api:
        sent = await api.call("POST", "/v1/messages", json=body)
        assert sent.status_code == 201, sent.text
        shown = sent.json()
        assert shown["status"] == "queued"
        assert shown["status_detail"].startswith(
            "waiting for bob's keys: bob is not found in the network yet since "
        )
        again = await api.call("POST", "/v1/messages", json=body)
        assert again.status_code == 200 and again.json()["id"] == shown["id"]
        read = await api.call("GET", f"/v1/messages/{shown['id']}")
        assert read.json()["status_detail"] == shown["status_detail"]
    assert len(node.store.key_waits(bob.peer_id)) == 1


async def test_a_file_or_a_place_to_a_peer_not_found_yet_waits_too() -> None:
    """Files and places to a contact whose keys are not found are accepted as a
    text is: 201, ``queued``, the same note; both wait in order."""
    node = make_node("alice")
    node.fetch_bundle = _nowhere
    bob = make_node("bob")
    node.add_contact_by_peer_id(str(bob.peer_id), "bob")
    async with serving(node) as api:
        up = await api.call(
            "POST", "/v1/media", content=b"the menu", headers={"Content-Type": "text/plain"}
        )
        assert up.status_code == 201, up.text
        sent = await api.call(
            "POST", "/v1/messages", json={"to": "bob", "media": [up.json()["id"]], "text": "menu"}
        )
        place = await api.call(
            "POST", "/v1/messages", json={"to": "bob", "location": {"lat": 52.1, "lon": 4.3}}
        )
        for answer in (sent, place):
            assert answer.status_code == 201, answer.text
            assert answer.json()["status"] == "queued"
            assert answer.json()["status_detail"].startswith("waiting for bob's keys: ")
    assert [w.message_id.hex() for w in node.store.key_waits(bob.peer_id)] == [
        sent.json()["id"],
        place.json()["id"],
    ]


async def test_past_the_waiting_bound_a_send_is_a_clear_no_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When MAX_KEY_WAITS messages wait for keys, one more to an unfound peer
    is refused with 422 ``no_session`` saying why (not a store error); nothing
    is stored for it."""
    monkeypatch.setattr(key_waits_module, "MAX_KEY_WAITS", 2)
    node = make_node("alice")
    node.fetch_bundle = _nowhere
    bob = make_node("bob")
    node.add_contact_by_peer_id(str(bob.peer_id), "bob")
    async with serving(node) as api:
        for text in ("one", "two"):
            ok = await api.call("POST", "/v1/messages", json={"to": "bob", "text": text})
            assert ok.status_code == 201, ok.text
        refused = await api.call("POST", "/v1/messages", json={"to": "bob", "text": "three"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "no_session"
        assert (
            "2 messages already wait for their recipients' keys"
            in refused.json()["error"]["message"]
        )
    assert len(node.store.key_waits(bob.peer_id)) == 2
    assert node.store.counts()["messages"] == 2
