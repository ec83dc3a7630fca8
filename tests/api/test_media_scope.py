"""Which API tokens may read which files: a file goes with its conversation,
and an upload no message carries yet only with the token that uploaded it."""

from __future__ import annotations

from p2pdm.core.identity import Identity, PeerId
from tests.api.conftest import as_token, make_token
from tests.conftest import make_node, serving

CAROL = str(PeerId.from_public_key(Identity.generate(b"\x07" * 32).public_key))


async def test_a_file_is_read_only_by_tokens_that_see_its_conversation() -> None:
    node = make_node("alice")
    node.add_contact_from_invite(make_node("bob").invite(), "bob")
    node.add_contact_by_peer_id(CAROL, "carol")
    async with serving(node) as api:
        reader, _ = await make_token(api, scope="read", name="reader")
        bot, _ = await make_token(api, scope="send", name="bot")
        bob_reader, _ = await make_token(api, scope="read", name="bobs", contacts=["bob"])
        carol_reader, _ = await make_token(api, scope="read", name="carols", contacts=["carol"])
        text = {"Content-Type": "text/plain"}
        own = (await api.call("POST", "/v1/media", content=b"draft", headers=text)).json()["id"]
        async with as_token(api, bot) as client:
            bots = (await client.post("/v1/media", content=b"bot's", headers=text)).json()["id"]
            # An upload no message carries: its uploader and admin tokens only.
            assert (await client.get(f"/v1/media/{bots}")).status_code == 200
            assert (await client.get(f"/v1/media/{own}")).status_code == 404
        assert (await api.call("GET", f"/v1/media/{bots}")).status_code == 200  # the owner
        async with as_token(api, reader) as client:
            for blob in (own, bots):
                assert (await client.get(f"/v1/media/{blob}")).status_code == 404
                assert (await client.get(f"/v1/media/{blob}/thumbnail")).status_code == 404

        # Once sent to Bob, it goes with that conversation.
        sent = await api.call("POST", "/v1/messages", json={"to": "bob", "media": [own]})
        assert sent.status_code == 201, sent.text
        for token, status in ((reader, 200), (bob_reader, 200), (carol_reader, 404)):
            async with as_token(api, token) as client:
                response = await client.get(f"/v1/media/{own}")
                assert response.status_code == status, token
        async with as_token(api, bob_reader) as client:
            assert (await client.get(f"/v1/media/{bots}")).status_code == 404
