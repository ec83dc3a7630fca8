"""Message actions over the API: two real nodes on loopback, and the refusals of the routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from tests.api.conftest import assert_error, check_documented
from tests.conftest import Api, Peer, deliver, node


async def _wait(peer: Peer, message_id: str, check: Any, deadline: float = 20) -> dict[str, Any]:
    with trio.fail_after(deadline):
        while True:
            response = await peer.http.get(f"/v1/messages/{message_id}")
            if response.status_code == 200 and check(response.json()):
                return dict(response.json())
            await trio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.net
async def test_reply_react_edit_unsend_between_two_real_nodes(tmp_path: Path) -> None:
    async with node(tmp_path, "bob") as b, node(tmp_path, "alice", b.running) as a:
        await a.call("POST", "/v1/contacts", json={"invite": b.running.node.invite()})
        await b.call("POST", "/v1/contacts", json={"invite": a.running.node.invite()})
        sent = await a.call("POST", "/v1/messages", json={"to": b.id, "text": "lunch?"})
        first = sent["id"]
        await _wait(b, first, lambda m: m["text"] == "lunch?")
        reply = await b.call(
            "POST", "/v1/messages", json={"to": a.id, "text": "yes", "reply_to": first}
        )
        assert reply["reply_to"] == {"id": first, "text": "lunch?", "available": True}
        reacted = await b.call("POST", f"/v1/messages/{first}/reactions", json={"emoji": "👍"})
        assert reacted["reactions"] == {"👍": [b.id]}
        got = await _wait(a, reply["id"], lambda m: m["reply_to"] is not None)
        assert got["reply_to"]["text"] == "lunch?"
        await _wait(a, first, lambda m: m["reactions"] == {"👍": [b.id]})

        edited = await a.call("PATCH", f"/v1/messages/{first}", json={"text": "lunch at 1?"})
        assert edited["edited"] is True and edited["text"] == "lunch at 1?"
        await _wait(b, first, lambda m: m["edited"] and m["text"] == "lunch at 1?")

        response = await a.http.delete(f"/v1/messages/{first}")
        assert response.status_code == 204, response.text
        gone = await _wait(b, first, lambda m: m["unsent"])
        assert gone["text"] is None and gone["reactions"] == {}
        page = await b.call("GET", f"/v1/conversations/{a.id}/messages")
        shown = {m["id"]: m for m in page["messages"]}
        assert shown[reply["id"]]["reply_to"] == {"id": first, "text": None, "available": False}
        events = await b.call(
            "GET", "/v1/events/poll", params={"types": "message.edited,message.unsent"}
        )
        assert [(e["type"], e["message_id"]) for e in events["events"]] == [
            ("message.edited", first),
            ("message.unsent", first),
        ]
        reactions = await a.call("GET", "/v1/events/poll", params={"types": "message.reaction"})
        [event] = reactions["events"]
        assert event["detail"] == "👍" and event["message"]["id"] == first


async def _pair(alice: Api, bob: Api) -> None:
    alice.node.add_contact_from_invite(bob.node.invite(), "bob")
    bob.node.add_contact_from_invite(alice.node.invite(), "alice")


async def test_the_routes_refuse_what_the_rules_refuse(alice: Api, bob: Api) -> None:
    await _pair(alice, bob)
    sent = await alice.call("POST", "/v1/messages", json={"to": "bob", "text": "mine"})
    mine = sent.json()["id"]
    deliver(alice.node, bob.node)
    # bob may not edit or unsend alice's message
    assert_error(
        await bob.call("PATCH", f"/v1/messages/{mine}", json={"text": "x"}), 422, "action_refused"
    )
    assert_error(await bob.call("DELETE", f"/v1/messages/{mine}"), 422, "action_refused")
    # a reply to a message that is not in the conversation
    other = "00" * 16
    response = await bob.call(
        "POST", "/v1/messages", json={"to": "alice", "text": "re", "reply_to": other}
    )
    assert_error(response, 400)
    for not_an_emoji in ("a b", "ok"):
        response = await bob.call(
            "POST", f"/v1/messages/{mine}/reactions", json={"emoji": not_an_emoji}
        )
        assert_error(response, 400)
    # a body with another field, or without its one field, is refused
    for method, path, body in (
        ("POST", f"/v1/messages/{mine}/reactions", {"emoji": "👍", "text": "x"}),
        ("POST", f"/v1/messages/{mine}/reactions", {}),
        ("PATCH", f"/v1/messages/{mine}", {"text": "x", "emoji": "👍"}),
        ("PATCH", f"/v1/messages/{mine}", {}),
    ):
        assert_error(await bob.call(method, path, json=body), 400)
    assert bob.node.store.outbox_for(alice.node.peer_id) == []
    # deleting for me sends nothing, and is gone
    response = await bob.call("DELETE", f"/v1/messages/{mine}", params={"for": "me"})
    assert response.status_code == 204
    assert_error(await bob.call("GET", f"/v1/messages/{mine}"), 404)
    assert bob.node.store.outbox_for(alice.node.peer_id) == []
    response = await alice.call("DELETE", "/v1/conversations/bob")
    assert response.status_code == 204
    assert (await alice.call("GET", "/v1/conversations")).json()["conversations"] == []


async def test_taking_a_reaction_back_says_whether_there_was_one(alice: Api, bob: Api) -> None:
    await _pair(alice, bob)
    sent = await alice.call("POST", "/v1/messages", json={"to": "bob", "text": "hi"})
    mine = sent.json()["id"]
    deliver(alice.node, bob.node)
    route = "/v1/messages/{message_id}/reactions"
    nothing = await bob.call("POST", f"/v1/messages/{mine}/reactions", json={"emoji": ""})
    assert nothing.status_code == 200 and nothing.json()["removed"] is False
    await check_documented(bob, nothing, "POST", route)
    assert bob.node.store.outbox_for(alice.node.peer_id) == []  # nothing to tell Alice
    liked = await bob.call("POST", f"/v1/messages/{mine}/reactions", json={"emoji": "👍"})
    assert liked.json()["removed"] is None and liked.json()["reactions"] == {
        "👍": [str(bob.node.peer_id)]
    }
    await check_documented(bob, liked, "POST", route)
    back = await bob.call("POST", f"/v1/messages/{mine}/reactions", json={"emoji": ""})
    assert back.json()["removed"] is True and back.json()["reactions"] == {}
    assert len(bob.node.store.outbox_for(alice.node.peer_id)) == 2
