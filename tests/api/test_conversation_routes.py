"""PATCH /v1/conversations/{id} (timer, muted, archived, pinned) and GET /v1/search,
checked against the served document."""

from __future__ import annotations

import os
from typing import Any

import pytest

from p2pdm.core.identity import Identity
from p2pdm.limits import MAX_PINNED_CONVERSATIONS
from tests.api.conftest import as_token, assert_error, check_documented, make_token
from tests.conftest import Api, deliver


def befriend(alice: Api, bob: Api) -> None:
    alice.node.add_contact_from_invite(bob.node.invite(), "bob")
    bob.node.add_contact_from_invite(alice.node.invite(), "alice")


async def patch(api: Api, who: str, body: Any) -> Any:
    response = await api.call("PATCH", f"/v1/conversations/{who}", json=body)
    assert response.status_code == 200, response.text
    await check_documented(api, response, "PATCH", "/v1/conversations/{conversation}", body)
    return response.json()


async def test_a_timer_set_over_the_api_reaches_the_peer_and_later_messages(
    alice: Api, bob: Api
) -> None:
    befriend(alice, bob)
    changed = await patch(alice, "bob", {"timer_s": 300})
    assert (changed["timer_s"], changed["muted"], changed["archived"]) == (300, False, False)
    sent = (
        await alice.call("POST", "/v1/messages", json={"to": "bob", "text": "soon gone"})
    ).json()
    assert sent["timer_s"] == 300 and sent["expires_at_ms"] > sent["sent_at_ms"]  # the backstop
    deliver(alice.node, bob.node)
    page = (await bob.call("GET", "/v1/conversations/alice/messages")).json()
    assert [(m["notice"], m["timer_s"]) for m in reversed(page["messages"])] == [
        ("set disappearing messages to 5 minutes", 300),
        (None, 300),
    ]
    [conversation] = (await bob.call("GET", "/v1/conversations")).json()["conversations"]
    assert conversation["timer_s"] == 300
    await bob.call("POST", "/v1/conversations/alice/read")
    page = (await bob.call("GET", "/v1/conversations/alice/messages")).json()
    assert page["messages"][0]["expires_at_ms"] is not None
    polled = (
        await bob.call("GET", "/v1/events/poll", params={"types": "conversation.timer"})
    ).json()
    assert [e["detail"] for e in polled["events"]] == ["300"]


@pytest.mark.parametrize(
    "body", [{"timer_s": 42}, {"timer_s": -1}, {"timer_s": "1d"}, {"muted": None}, {}, {"x": 1}]
)
async def test_a_bad_patch_is_400_and_sends_nothing(alice: Api, bob: Api, body: Any) -> None:
    befriend(alice, bob)
    response = await alice.call("PATCH", "/v1/conversations/bob", json=body)
    assert_error(response, 400)
    assert alice.node.store.outbox_count() == 0


async def test_patching_an_unknown_conversation_is_404(alice: Api) -> None:
    response = await alice.call("PATCH", "/v1/conversations/nobody", json={"muted": True})
    assert_error(response, 404)


async def test_mute_and_archive_show_in_the_list_and_in_events(alice: Api, bob: Api) -> None:
    befriend(alice, bob)
    await patch(bob, "alice", {"muted": True, "archived": True})
    [conversation] = (await bob.call("GET", "/v1/conversations")).json()["conversations"]
    assert (conversation["muted"], conversation["archived"]) == (True, True)
    await alice.call("POST", "/v1/messages", json={"to": "bob", "text": "psst"})
    deliver(alice.node, bob.node)
    polled = (await bob.call("GET", "/v1/events/poll", params={"types": "message.received"})).json()
    [event] = polled["events"]
    assert event["notify"] is False and event["message"]["text"] == "psst"


async def test_search_over_the_api_is_plain_text_and_newest_first(alice: Api, bob: Api) -> None:
    befriend(alice, bob)
    for text in ("lunch at noon", 'a "quoted" lunch NEAR( here', "dinner"):
        await alice.call("POST", "/v1/messages", json={"to": "bob", "text": text})
    for query in ("lunch", '"quoted', "NEAR(", "lunch*", "AND OR NOT"):
        response = await alice.call("GET", "/v1/search", params={"q": query})
        assert response.status_code == 200, (query, response.text)
        await check_documented(alice, response, "GET", "/v1/search")
    results = (await alice.call("GET", "/v1/search", params={"q": "lunch"})).json()["results"]
    assert [r["snippet"] for r in results] == ['a "quoted" [lunch] NEAR( here', "[lunch] at noon"]
    one = await alice.call("GET", "/v1/search", params={"q": "lunch", "peer": "bob", "limit": 1})
    assert len(one.json()["results"]) == 1
    for params in ({"q": ""}, {"q": "!!!"}, {"q": "x" * 300}, {}, {"q": "a", "limit": 0}):
        assert_error(await alice.call("GET", "/v1/search", params=params), 400)
    assert_error(await alice.call("GET", "/v1/search", params={"q": "a", "peer": "zed"}), 404)


async def test_a_token_limited_to_a_contact_finds_only_its_messages(alice: Api, bob: Api) -> None:
    befriend(alice, bob)
    await alice.call("POST", "/v1/messages", json={"to": "bob", "text": "shared word"})
    carol_only, _ = await make_token(alice, scope="read", contacts=[str(alice.node.peer_id)])
    async with as_token(alice, carol_only) as limited:
        response = await limited.get("/v1/search", params={"q": "word"})
    assert response.status_code == 200 and response.json()["results"] == []


async def test_typing_without_a_connection_says_why_and_keeps_nothing(alice: Api, bob: Api) -> None:
    befriend(alice, bob)
    response = await alice.call("POST", "/v1/conversations/bob/typing")
    assert response.status_code == 200, response.text
    await check_documented(alice, response, "POST", "/v1/conversations/{conversation}/typing")
    assert response.json() == {"sent": False, "reason": "not connected to the peer now"}
    assert alice.node.store.outbox_count() == 0


async def test_pinned_conversations_lead_the_list_up_to_the_limit(alice: Api, bob: Api) -> None:
    befriend(alice, bob)
    others = [str(Identity(os.urandom(32)).peer_id) for _ in range(MAX_PINNED_CONVERSATIONS)]
    for n, peer in enumerate(others):
        added = await alice.call("POST", "/v1/contacts", json={"peer_id": peer, "name": f"c{n}"})
        assert added.status_code == 201, added.text
    await alice.call("POST", "/v1/messages", json={"to": "bob", "text": "newest"})
    pinned = await patch(alice, "c0", {"pinned": True})
    assert pinned["pinned"] is True
    listed = (await alice.call("GET", "/v1/conversations")).json()["conversations"]
    assert [(c["name"], c["pinned"]) for c in listed] == [("c0", True), ("bob", False)]
    for n in range(1, MAX_PINNED_CONVERSATIONS):
        await patch(alice, f"c{n}", {"pinned": True})
    # One more is refused and changes nothing; pinning a pinned one again is fine.
    refused = await alice.call("PATCH", "/v1/conversations/bob", json={"pinned": True})
    assert_error(refused, 422, "action_refused")
    assert f"at most {MAX_PINNED_CONVERSATIONS} chats" in refused.json()["error"]["message"]
    assert (await patch(alice, "c0", {"pinned": True}))["pinned"] is True
    listed = (await alice.call("GET", "/v1/conversations")).json()["conversations"]
    assert [c["name"] for c in listed] == [f"c{n}" for n in reversed(range(5))] + ["bob"]
    await patch(alice, "c2", {"pinned": False})
    assert (await patch(alice, "bob", {"pinned": True}))["pinned"] is True
    listed = (await alice.call("GET", "/v1/conversations")).json()["conversations"]
    assert [c["name"] for c in listed][:2] == ["bob", "c4"] and listed[-1]["name"] == "c2"
    assert_error(await alice.call("PATCH", "/v1/conversations/bob", json={"pinned": None}), 400)
    # Each change is an event, for the node's other pages and bots (pinning c0
    # again changed nothing: no event).
    polled = (
        await alice.call("GET", "/v1/events/poll", params={"types": "conversation.changed"})
    ).json()["events"]
    assert [e["detail"] for e in polled] == ["pinned"] * 7
    assert polled[-1]["conversation_id"] == listed[0]["id"]
