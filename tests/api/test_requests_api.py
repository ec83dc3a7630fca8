"""``/v1/blocked`` and ``/v1/requests`` over HTTP: answers match the document."""

from __future__ import annotations

from p2pdm.api.app import openapi_document
from tests.api.conftest import assert_error, conforms
from tests.conftest import Api, deliver, make_node


def _response_schema(path: str, method: str, status: str) -> dict[str, object]:
    operation = openapi_document()["paths"][path][method]
    schema: dict[str, object] = operation["responses"][status]["content"]["application/json"][
        "schema"
    ]
    return schema


async def _a_request_from(alice: Api, bob: Api) -> None:
    """Alice writes to Bob, who does not know her: a request at Bob's."""
    alice.node.add_contact_from_invite(bob.node.invite(), "bob")
    alice.node.send_text(bob.node.peer_id, "hello from a stranger")
    deliver(alice.node, bob.node)


async def test_block_list_and_unblock(alice: Api, bob: Api) -> None:
    doc = openapi_document()
    peer = str(bob.node.peer_id)
    made = await alice.call("POST", "/v1/blocked", json={"peer_id": peer})
    assert made.status_code == 201
    conforms(_response_schema("/v1/blocked", "post", "201"), made.json(), doc)
    again = await alice.call("POST", "/v1/blocked", json={"peer_id": peer})
    assert again.status_code == 200 and again.json()["peer_id"] == peer
    listed = await alice.call("GET", "/v1/blocked")
    conforms(_response_schema("/v1/blocked", "get", "200"), listed.json(), doc)
    assert [b["peer_id"] for b in listed.json()["blocked"]] == [peer]
    # Sending to a blocked peer is a clear 409.
    refused = await alice.call("POST", "/v1/messages", json={"to": peer, "text": "hi"})
    assert "unblock" in assert_error(refused, 409, "peer_blocked")
    assert (await alice.call("DELETE", f"/v1/blocked/{peer}")).status_code == 204
    assert_error(await alice.call("DELETE", f"/v1/blocked/{peer}"), 404, "not_found")
    # A stranger is listed by its fingerprint: that unblocks it too, as does a PeerID's start.
    for name in ("~" + listed.json()["blocked"][0]["fingerprint"], peer[:14]):
        await alice.call("POST", "/v1/blocked", json={"peer_id": peer})
        assert (await alice.call("DELETE", f"/v1/blocked/{name}")).status_code == 204, name
    assert_error(await alice.call("DELETE", "/v1/blocked/~nobody"), 404, "not_found")
    assert_error(await alice.call("POST", "/v1/blocked", json={"peer_id": "nobody"}), 404)
    assert_error(
        await alice.call("POST", "/v1/blocked", json={"peer_id": str(alice.node.peer_id)}), 400
    )


async def test_requests_are_listed_then_accepted(alice: Api, bob: Api) -> None:
    doc = openapi_document()
    await _a_request_from(alice, bob)
    listed = await bob.call("GET", "/v1/requests")
    conforms(_response_schema("/v1/requests", "get", "200"), listed.json(), doc)
    [request] = listed.json()["requests"]
    assert request["peer_id"] == str(alice.node.peer_id) and request["count"] == 1
    assert request["preview"] == "hello from a stranger"
    accepted = await bob.call("POST", f"/v1/requests/{request['peer_id']}/accept")
    assert accepted.status_code == 200, accepted.text
    conforms(_response_schema("/v1/requests/{peer}/accept", "post", "200"), accepted.json(), doc)
    # Keys came with the stranger's session: writing back needs nothing more.
    assert accepted.json()["has_prekeys"] is True
    assert (await bob.call("GET", "/v1/requests")).json() == {"requests": []}
    assert_error(await bob.call("POST", f"/v1/requests/{request['peer_id']}/decline"), 404)


async def test_requests_declined_or_blocked_are_deleted(alice: Api, bob: Api) -> None:
    await _a_request_from(alice, bob)
    peer = str(alice.node.peer_id)
    declined = await bob.call("POST", f"/v1/requests/{peer}/decline")
    assert declined.json() == {"deleted": 1, "blocked": False}
    assert bob.node.conversations() == []
    alice.node.send_text(bob.node.peer_id, "again")
    deliver(alice.node, bob.node)
    blocked = await bob.call("POST", f"/v1/requests/{peer}/block")
    assert blocked.json() == {"deleted": 1, "blocked": True}
    assert bob.node.is_blocked(alice.node.peer_id) and bob.node.conversations() == []


async def test_blocking_a_stranger_by_its_fingerprint_deletes_its_request(
    alice: Api, bob: Api
) -> None:
    await _a_request_from(alice, bob)
    shown = (await bob.call("GET", "/v1/requests")).json()["requests"][0]
    blocked = await bob.call("POST", "/v1/blocked", json={"peer_id": "~" + shown["fingerprint"]})
    assert blocked.status_code == 201, blocked.text
    assert blocked.json()["peer_id"] == str(alice.node.peer_id)
    assert (await bob.call("GET", "/v1/requests")).json() == {"requests": []}
    assert bob.node.conversations() == []
    again = await bob.call("POST", "/v1/blocked", json={"peer_id": shown["fingerprint"]})
    assert again.status_code == 200, again.text
    gone = await bob.call("DELETE", f"/v1/blocked/{str(alice.node.peer_id)[:14]}")
    assert gone.status_code == 204 and bob.node.blocked() == []
    assert_error(await bob.call("DELETE", f"/v1/blocked/~{shown['fingerprint']}"), 404)


async def test_a_batch_refuses_a_blocked_peer_per_item_and_stamps_a_strangers(
    alice: Api, bob: Api
) -> None:
    carol = make_node("carol")
    alice.node.add_contact_from_invite(bob.node.invite(), "bob")  # Bob does not know Alice
    alice.node.add_contact_from_invite(carol.invite(), "carol")
    blocked = await alice.call("POST", "/v1/blocked", json={"peer_id": "carol"})
    assert blocked.status_code == 201, blocked.text
    body = {
        "messages": [
            {"to": "bob", "text": "one"},
            {"to": "carol", "text": "not to carol"},
            {"to": "bob", "text": "two"},
        ]
    }
    response = await alice.call("POST", "/v1/messages/batch", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r.get("status") for r in results] == ["queued", None, "queued"]
    assert results[1]["error"]["code"] == "peer_blocked"
    assert alice.node.store.outbox_for(carol.peer_id) == []
    assert deliver(alice.node, bob.node) == [alice.node.peer_id] * 2  # stamped: both arrive
    assert bob.node.messenger.dropped_unstamped == 0
    assert [r.count for r in bob.node.requests()] == [2]


async def test_an_action_on_a_strangers_conversation_goes_stamped(alice: Api, bob: Api) -> None:
    await _a_request_from(alice, bob)
    [sent] = alice.node.messages(bob.node.peer_id, 10).messages
    alice.node.messenger.stamps._stamps.clear()  # made again before the action, off the loop
    reacted = await alice.call(
        "POST", f"/v1/messages/{sent.id.hex()}/reactions", json={"emoji": "👋"}
    )
    assert reacted.status_code == 200, reacted.text
    assert len(alice.node.messenger.stamps._stamps) == 1
    deliver(alice.node, bob.node)
    shown = bob.node.store.get_message(sent.id)
    assert shown is not None and bob.node.extras([shown])[shown.id].reactions == {
        "👋": [alice.node.peer_id]
    }
