"""The groups routes on a served node, with members joined by hand."""

from __future__ import annotations

from p2pdm.node.node import Node
from tests.conftest import make_node, serving
from tests.node.conftest import acquainted, flush


async def test_group_routes_end_to_end() -> None:
    alice, bob, carol = (make_node(n) for n in ("alice", "bob", "carol"))
    acquainted(alice, bob, carol)
    nodes: tuple[Node, ...] = (alice, bob, carol)
    async with serving(alice) as a, serving(bob) as b:
        made = await a.call("POST", "/v1/groups", json={"name": "team", "members": ["bob"]})
        assert made.status_code == 201, made.text
        group = made.json()
        assert group["state"] == "active" and group["me_admin"] and group["log_length"] == 1
        assert [m["name"] for m in group["members"]] == [None, "bob"]
        flush(*nodes)
        seen = (await b.call("GET", "/v1/groups/team")).json()
        assert seen["id"] == group["id"] and not seen["me_admin"]
        added = await a.call(
            "POST", f"/v1/groups/{group['id']}/members", json={"members": ["carol"]}
        )
        assert added.status_code == 200 and len(added.json()["members"]) == 3
        refused = await b.call("POST", "/v1/groups/team/members", json={"members": ["carol"]})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "group_refused"
        sent = await a.call("POST", "/v1/messages", json={"to": "team", "text": "hi team"})
        assert sent.status_code == 201, sent.text
        message = sent.json()
        assert message["group"] == group["id"]
        assert message["delivery"] == {"members": 2, "delivered": 0, "read": 0, "failed": 0}
        flush(*nodes)
        listed = (await b.call("GET", "/v1/conversations")).json()["conversations"]
        tagged = [c for c in listed if c["group"] is not None]
        assert tagged and tagged[0]["group"] == {"id": group["id"], "name": "team"}
        assert tagged[0]["name"] == "team"  # the group's name, not a member's
        page = (await b.call("GET", f"/v1/conversations/{group['id']}/messages")).json()
        assert [m["text"] for m in page["messages"]] == ["hi team", None, None]
        assert page["messages"][0]["group"] == group["id"]
        # Each change left its notice, newest first; Bob's are Alice's, incoming.
        notices = [(m["kind"], m["direction"], m["notice"]) for m in page["messages"][1:]]
        assert notices == [
            ("group_notice", "in", "added carol"),
            ("group_notice", "in", "created the group 'team'"),
        ]
        bob.mark_read(bytes.fromhex(group["id"]))  # a read receipt to the author
        flush(*nodes)
        shown = (await a.call("GET", f"/v1/messages/{message['id']}")).json()
        assert shown["delivery"] == {"members": 2, "delivered": 1, "read": 1, "failed": 0}
        events = (await b.call("GET", "/v1/events/poll", params={"since": 0})).json()["events"]
        kinds = [e["type"] for e in events]
        assert "group.created" in kinds and "group.changed" in kinds
        created = next(e for e in events if e["type"] == "group.created")
        assert created["group"]["id"] == group["id"] and created["change"]["kind"] == "create"
        keyed = {"to": "team", "text": "once", "idempotency_key": "k1"}
        first = await a.call("POST", "/v1/messages", json=keyed)
        again = await a.call("POST", "/v1/messages", json=keyed)
        assert first.status_code == 201 and again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        other = await a.call("POST", "/v1/messages", json={**keyed, "text": "twice"})
        assert other.status_code == 422
        gid = group["id"]
        timed = await a.call("PATCH", f"/v1/conversations/{gid}", json={"timer_s": 3600})
        assert timed.status_code == 200, timed.text
        assert (await a.call("GET", f"/v1/groups/{gid}")).json()["timer_s"] == 3600
        flush(*nodes)
        assert (await b.call("GET", f"/v1/groups/{gid}")).json()["timer_s"] == 3600
        place = {"to": "team", "location": {"lat": 48.1, "lon": 11.6, "label": "café"}}
        where = await a.call("POST", "/v1/messages", json=place)
        assert where.status_code == 201 and where.json()["kind"] == "location", where.text
        flush(*nodes)
        kinds = [
            m["kind"]
            for m in (await b.call("GET", f"/v1/conversations/{group['id']}/messages")).json()[
                "messages"
            ]
        ]
        assert "location" in kinds
        renamed = await a.call("PATCH", "/v1/groups/team", json={"name": "crew", "timer_s": 300})
        assert renamed.json()["name"] == "crew" and renamed.json()["timer_s"] == 300
        listed = (await a.call("GET", "/v1/conversations")).json()["conversations"]
        [entry] = [c for c in listed if c["id"] == gid]
        assert (entry["name"], entry["group"]["name"]) == ("crew", "crew")
        assert entry["peer"] in {str(bob.peer_id), str(carol.peer_id)}  # one member
        patched = await a.call("PATCH", f"/v1/conversations/{gid}", json={"muted": True})
        assert patched.json()["name"] == "crew"
        left = await b.call("POST", f"/v1/groups/{group['id']}/leave")
        assert left.json()["state"] == "left"
        flush(*nodes)
        members = (await a.call("GET", "/v1/groups/crew")).json()["members"]
        assert len(members) == 2


async def test_a_new_group_shows_its_creation_notice() -> None:
    """Before anyone writes, the group's conversation holds only its notice
    "created the group" on every member (read, no delivery), can be marked
    read; an id that is no group stays 404."""
    alice, bob = make_node("alice"), make_node("bob")
    acquainted(alice, bob)
    async with serving(alice) as a, serving(bob) as b:
        made = await a.call("POST", "/v1/groups", json={"name": "quiet", "members": ["bob"]})
        gid = made.json()["conversation"]
        flush(alice, bob)
        for api in (a, b):
            page = await api.call("GET", f"/v1/conversations/{gid}/messages")
            assert page.status_code == 200, page.text
            [notice] = page.json()["messages"]  # no message yet: the group's notice
            assert notice["notice"] == "created the group 'quiet'"
            assert notice["direction"] == ("out" if api is a else "in")
            assert notice["status"] == "read" and notice["delivery"] is None
            read = await api.call("POST", f"/v1/conversations/{gid}/read")
            assert read.status_code == 200, read.text
        stranger = await a.call("GET", f"/v1/conversations/{'ab' * 16}/messages")
        assert stranger.status_code == 404
        await a.call("POST", "/v1/messages", json={"to": "quiet", "text": "first"})
        flush(alice, bob)
        page = (await b.call("GET", f"/v1/conversations/{gid}/messages")).json()
        assert [m["text"] for m in page["messages"]] == ["first", None]


async def test_a_group_photo_through_the_api() -> None:
    """PATCH with an upload's id sets the photo; every member's group JSON names
    it and serves it (its own type, nosniff, sandboxed); null removes it; a
    non-picture, a bomb and an unknown id are refused with one clear error."""
    from tests.media_files import bomb_png
    from tests.node.test_group_photo import picture

    alice, bob = make_node("alice"), make_node("bob")
    acquainted(alice, bob)
    async with serving(alice) as a, serving(bob) as b:
        made = await a.call("POST", "/v1/groups", json={"name": "pics", "members": ["bob"]})
        gid = made.json()["id"]
        assert made.json()["photo"] is None
        flush(alice, bob)
        assert (await b.call("GET", f"/v1/groups/{gid}/photo")).status_code == 404
        up = await a.call(
            "POST", "/v1/media", content=picture(), headers={"Content-Type": "image/png"}
        )
        assert up.status_code == 201, up.text
        patched = await a.call("PATCH", f"/v1/groups/{gid}", json={"photo": up.json()["id"]})
        assert patched.status_code == 200, patched.text
        photo = patched.json()["photo"]
        assert photo["type"] == "image/webp" and 0 < photo["size"] <= 32 << 10
        assert photo["url"] == f"/v1/groups/{gid}/photo?v={photo['tag']}"
        flush(alice, bob)
        seen = (await b.call("GET", f"/v1/groups/{gid}")).json()
        assert seen["photo"] == photo
        served = await b.call("GET", photo["url"])
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/webp"
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["content-security-policy"] == "sandbox"
        assert len(served.content) == photo["size"]
        events = (await b.call("GET", "/v1/events/poll", params={"since": 0})).json()["events"]
        changes = [e["change"] for e in events if e["type"] == "group.changed"]
        assert changes[-1]["kind"] == "photo" and changes[-1]["photo"] == photo["tag"]
        for data, mime in ((b"just words", "text/plain"), (bomb_png(), "application/x-blob")):
            bad = await a.call("POST", "/v1/media", content=data, headers={"Content-Type": mime})
            assert bad.status_code == 201, bad.text
            refused = await a.call("PATCH", f"/v1/groups/{gid}", json={"photo": bad.json()["id"]})
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == "media_refused"
        unknown = await a.call("PATCH", f"/v1/groups/{gid}", json={"photo": "ab" * 32})
        assert unknown.status_code == 404
        not_admin = await b.call("PATCH", f"/v1/groups/{gid}", json={"photo": None})
        assert not_admin.status_code == 422
        assert not_admin.json()["error"]["code"] == "group_refused"
        removed = await a.call("PATCH", f"/v1/groups/{gid}", json={"photo": None})
        assert removed.status_code == 200 and removed.json()["photo"] is None
        flush(alice, bob)
        assert (await b.call("GET", f"/v1/groups/{gid}")).json()["photo"] is None
        assert (await b.call("GET", f"/v1/groups/{gid}/photo")).status_code == 404


async def test_group_files_and_places_honour_idempotency_keys() -> None:
    """A retried group file or place with the same key is the same message (200,
    Idempotent-Replayed), sent once to each member; the key used for another
    message (a text, another group's, a place for files) is a conflict."""
    alice, bob = make_node("alice"), make_node("bob")
    acquainted(alice, bob)
    async with serving(alice) as a, serving(bob) as b:
        made = await a.call("POST", "/v1/groups", json={"name": "keys", "members": ["bob"]})
        gid = made.json()["id"]
        other = await a.call("POST", "/v1/groups", json={"name": "other", "members": ["bob"]})
        flush(alice, bob)
        up = await a.call(
            "POST", "/v1/media", content=b"menu", headers={"Content-Type": "text/plain"}
        )
        files = {"to": gid, "media": [up.json()["id"]], "idempotency_key": "f1"}
        place = {"to": gid, "location": {"lat": 1.5, "lon": 2.5}, "idempotency_key": "p1"}
        for keyed in (files, place):
            first = await a.call("POST", "/v1/messages", json=keyed)
            again = await a.call("POST", "/v1/messages", json=keyed)
            assert first.status_code == 201, first.text
            assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
            assert again.json()["id"] == first.json()["id"]
        flush(alice, bob)
        page = (await b.call("GET", f"/v1/conversations/{gid}/messages")).json()["messages"]
        assert sorted(m["kind"] for m in page) == ["group_notice", "location", "media"]
        for clash in (
            {**place, "idempotency_key": "f1"},
            {**files, "to": other.json()["id"]},
            {"to": gid, "text": "hello", "idempotency_key": "p1"},
        ):
            refused = await a.call("POST", "/v1/messages", json=clash)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == "idempotency_key_reused"


async def test_a_message_forwarded_to_a_group_reaches_its_members() -> None:
    """Bob's text and a file of Alice's own, forwarded by Alice into a group,
    arrive there as her messages."""
    alice, bob = make_node("alice"), make_node("bob")
    acquainted(alice, bob)
    async with serving(alice) as a, serving(bob) as b:
        made = await a.call("POST", "/v1/groups", json={"name": "news", "members": ["bob"]})
        gid = made.json()["id"]
        hers = await a.call("POST", "/v1/messages", json={"to": "bob", "text": "fresh bread"})
        up = await a.call(
            "POST", "/v1/media", content=b"menu", headers={"Content-Type": "text/plain"}
        )
        files = await a.call("POST", "/v1/messages", json={"to": "bob", "media": [up.json()["id"]]})
        for original in (hers.json(), files.json()):
            copy = await a.call(
                "POST", f"/v1/messages/{original['id']}/forward", json={"to": "news"}
            )
            assert copy.status_code == 201, copy.text
            assert copy.json()["group"] == gid
        flush(alice, bob)
        page = (await b.call("GET", f"/v1/conversations/{gid}/messages")).json()["messages"]
        # (In the order they arrived, which need not be the order sent.)
        assert sorted((m["kind"], m["text"] or "") for m in page) == [
            ("group_notice", ""),
            ("media", ""),
            ("text", "fresh bread"),
        ]
        [media] = [m for m in page if m["kind"] == "media"]
        assert media["media"][0]["id"] == up.json()["id"]
