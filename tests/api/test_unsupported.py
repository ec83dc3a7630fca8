"""A message of a kind this version does not know, as the API shows it."""

from __future__ import annotations

from p2pdm.core.kinds import UnknownBody
from tests.api.conftest import check_documented
from tests.conftest import make_node, serving


async def test_an_unknown_kind_is_listed_as_an_unsupported_message() -> None:
    alice, bob = make_node("alice"), make_node("bob")
    alice.add_contact_from_invite(bob.invite(), "bob")
    bob.add_contact_from_invite(alice.invite(), "alice")
    # What a newer version sends: a kind this one has no module for.
    out = bob.messenger._send(alice.peer_id, UnknownBody("reaction", {"emoji": "🎉"}))
    alice.messenger.receive(out.outbox.envelope)
    async with serving(alice) as api:
        path = f"/v1/messages/{out.outbox.message_id.hex()}"
        response = await api.call("GET", path)
        assert response.status_code == 200, response.text
        await check_documented(api, response, "GET", "/v1/messages/{message_id}")
        message = response.json()
        assert (message["kind"], message["text"], message["unsupported"]) == (
            "reaction",
            None,
            True,
        )
        assert message["direction"] == "in" and message["request"] is False
        conversations = (await api.call("GET", "/v1/conversations")).json()["conversations"]
        assert conversations[0]["unread"] == 1
        bob_text = bob.messenger.send_text(alice.peer_id, "a text")
        alice.messenger.receive(bob_text.outbox.envelope)
        response = await api.call("GET", f"/v1/messages/{bob_text.outbox.message_id.hex()}")
        assert (response.json()["text"], response.json()["unsupported"]) == ("a text", False)
