"""POST /v1/messages/batch over real HTTP: each message sent or refused on its own, in
order, all committed at once; the body checked whole; tokens see only their contacts."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import trio

from p2pdm.api import MAX_API_BODY_BYTES
from p2pdm.client import AsyncClient
from p2pdm.core.identity import Identity, PeerId
from p2pdm.errors import IdempotencyConflict
from p2pdm.limits import MAX_TEXT_BYTES
from p2pdm.node.batch_send import MAX_BATCH_MESSAGES, SendItem
from p2pdm.node.node import Node
from p2pdm.store.sqlite import SQLiteStore
from tests.api.conftest import as_token, assert_error, check_documented, make_token
from tests.conftest import TOKEN, Api, make_node, serving

BATCH = "/v1/messages/batch"
#: Bound on a test's sends through the group commits (they take milliseconds).
SUBMIT_TIMEOUT_S = 10


class GroupCountingStore(SQLiteStore):
    """A store that counts its group commits."""

    groups = 0

    def group(self) -> AbstractContextManager[None]:
        self.groups += 1
        return super().group()


def _alice_with(tmp_path: Path, *names: str) -> tuple[Node, GroupCountingStore, dict[str, PeerId]]:
    # SQLite, as a node runs it (the memory store copies itself per savepoint).
    store = GroupCountingStore(tmp_path / "alice.sqlite", synchronous="NORMAL")
    node = Node(Identity.generate(os.urandom(32)), store)
    peers = {}
    for name in names:
        peers[name] = node.add_contact_from_invite(make_node(name).invite()).contact.peer_id
    return node, store, peers


def _queued(node: Node, peer: PeerId) -> int:
    return len(node.store.outbox_for(peer))


async def _batch(api: Api, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    body = {"messages": messages}
    response = await api.call("POST", BATCH, json=body)
    assert response.status_code == 200, response.text
    await check_documented(api, response, "POST", BATCH, body)
    results: list[dict[str, Any]] = response.json()["results"]
    assert len(results) == len(messages)
    return results


async def test_each_message_is_sent_or_refused_on_its_own_in_order(tmp_path: Path) -> None:
    node, store, peers = _alice_with(tmp_path, "bob", "carol")
    wide = "é" * (MAX_TEXT_BYTES // 2 + 1)  # within the characters, over the bytes
    async with serving(node) as api:
        results = await _batch(
            api,
            [
                {"to": "bob", "text": "one"},
                {"to": "nobody", "text": "lost"},
                {"to": "carol", "text": "two"},
                {"to": "bob", "text": wide},
                {"to": str(peers["bob"]), "text": "three"},
            ],
        )
    assert [r.get("status") for r in results] == ["queued", None, "queued", None, "queued"]
    assert results[1]["error"]["code"] == "not_found"
    assert results[3]["error"]["code"] == "invalid"
    assert all(r["replayed"] is False for r in results if "id" in r)
    ids = [r["id"] for r in results if "id" in r]
    assert len(set(ids)) == 3
    assert [node.message(i)[0].peer for i in ids] == [peers["bob"], peers["carol"], peers["bob"]]
    assert [node.message(i)[0].body for i in ids] != []
    assert (_queued(node, peers["bob"]), _queued(node, peers["carol"])) == (2, 1)
    assert store.groups == 1  # the whole batch in one commit


async def test_an_idempotency_key_works_per_message(tmp_path: Path) -> None:
    node, _, peers = _alice_with(tmp_path, "bob")
    batch = [
        {"to": "bob", "text": "a", "idempotency_key": "k1"},
        {"to": "bob", "text": "b", "idempotency_key": "k2"},
        {"to": "bob", "text": "c"},
    ]
    async with serving(node) as api:
        first = await _batch(api, batch)
        assert [r["replayed"] for r in first] == [False, False, False]
        again = await _batch(api, batch)
        # The keyed ones are the messages made before; the unkeyed one is new.
        assert [r["id"] for r in again[:2]] == [r["id"] for r in first[:2]]
        assert [r["replayed"] for r in again] == [True, True, False]
        assert again[2]["id"] != first[2]["id"]
        mixed = await _batch(
            api,
            [
                {"to": "bob", "text": "not a", "idempotency_key": "k1"},  # reused for other text
                {"to": "bob", "text": "d", "idempotency_key": "k3"},
                {"to": "bob", "text": "d", "idempotency_key": "k3"},  # twice in one batch
            ],
        )
        assert mixed[0]["error"]["code"] == "idempotency_key_reused"
        assert mixed[1]["replayed"] is False
        assert (mixed[2]["id"], mixed[2]["replayed"]) == (mixed[1]["id"], True)
        # The single route sees the same keys (per token).
        single = await api.call(
            "POST", "/v1/messages", json={"to": "bob", "text": "a", "idempotency_key": "k1"}
        )
        assert single.status_code == 200 and single.json()["id"] == first[0]["id"]
    assert _queued(node, peers["bob"]) == 5  # a, b, c, c again, d


async def test_a_token_sends_only_to_its_contacts(tmp_path: Path) -> None:
    node, _, peers = _alice_with(tmp_path, "bob", "carol")
    async with serving(node) as api:
        secret, _ = await make_token(api, scope="send", contacts=["bob"], name="bot")
        async with as_token(api, secret) as bot:
            response = await bot.post(
                BATCH,
                json={
                    "messages": [
                        {"to": "carol", "text": "no"},
                        {"to": "bob", "text": "yes"},
                        {"to": str(peers["carol"]), "text": "no"},
                    ]
                },
            )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r.get("error", {}).get("code") for r in results] == [
            "forbidden_contact",
            None,
            "forbidden_contact",
        ]
        reader, _ = await make_token(api, scope="read", name="reader")
        async with as_token(api, reader) as read_only:
            refused = await read_only.post(BATCH, json={"messages": [{"to": "bob", "text": "x"}]})
        assert_error(refused, 403, "forbidden_scope")
    assert (_queued(node, peers["bob"]), _queued(node, peers["carol"])) == (1, 0)


async def test_a_body_that_breaks_the_rules_is_refused_whole(tmp_path: Path) -> None:
    node, store, peers = _alice_with(tmp_path, "bob")
    ok = {"to": "bob", "text": "fine"}
    refused_bodies: list[Any] = [
        {},
        {"messages": []},
        {"messages": [ok] * (MAX_BATCH_MESSAGES + 1)},
        {"messages": ok},
        {"messages": [ok, "text"]},
        {"messages": [ok, {"to": "bob"}]},
        {"messages": [ok, {"to": "bob", "text": " \n "}]},
        {"messages": [ok, {"to": "bob", "text": "x" * (MAX_TEXT_BYTES + 1)}]},
        {"messages": [ok, {"to": "bob", "text": "x", "idempotency_key": ""}]},
        {"messages": [ok, {"to": "bob", "text": "x", "reply_to": None}]},
        {"messages": [ok], "more": 1},
        [ok],
    ]
    async with serving(node) as api:
        for body in refused_bodies:
            assert_error(await api.call("POST", BATCH, json=body), 400, "bad_request")
        huge = {"messages": [{"to": "bob", "text": "x" * 60_000}] * 5}
        assert_error(await api.call("POST", BATCH, json=huge), 413)
        assert len(str(huge)) > MAX_API_BODY_BYTES
        # The most a batch holds is accepted.
        full = await _batch(api, [{"to": "bob", "text": str(i)} for i in range(MAX_BATCH_MESSAGES)])
    assert all(r["status"] == "queued" for r in full)
    assert _queued(node, peers["bob"]) == MAX_BATCH_MESSAGES
    assert store.groups == 1


async def test_the_sdk_sends_many(tmp_path: Path) -> None:
    node, _, peers = _alice_with(tmp_path, "bob")
    async with serving(node) as api, AsyncClient("127.0.0.1", api.port, TOKEN) as client:
        results = await client.send_many(
            [
                {"to": "bob", "text": "hi", "idempotency_key": "s1"},
                {"to": "nobody", "text": "hi"},
            ]
        )
        assert results[0]["status"] == "queued"
        assert results[1]["error"]["code"] == "not_found"
        again = await client.send_many([{"to": "bob", "text": "hi", "idempotency_key": "s1"}])
        assert again[0] == {**results[0], "replayed": True}
    assert _queued(node, peers["bob"]) == 1


async def test_a_batch_is_one_group_beside_concurrent_sends(tmp_path: Path) -> None:
    """With the node's group commits running (as `p2pdm run` has them), a batch is
    one piece of work: never split across commits, its refusals its own."""
    node, store, peers = _alice_with(tmp_path, "bob")
    items = [SendItem(peers["bob"], f"m{i}") for i in range(3)]
    items.append(SendItem(peers["bob"], "dup", ("owner", "k")))
    items.append(SendItem(peers["bob"], "not dup", ("owner", "k")))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.batcher.run)
        outcomes: list[Any] = []

        async def single() -> None:
            outcomes.append(await node.submit(peers["bob"], "alone"))

        # The single send may land in the group after the batch's: wait for
        # both before stopping the batcher (cancelling at once lost it).
        with trio.fail_after(SUBMIT_TIMEOUT_S):
            async with trio.open_nursery() as senders:
                senders.start_soon(single)
                results = await node.submit_many(items)
        nursery.cancel_scope.cancel()
    assert [type(r).__name__ for r in results] == ["Sent"] * 4 + ["IdempotencyConflict"]
    assert isinstance(results[4], IdempotencyConflict)
    assert len(outcomes) == 1
    assert _queued(node, peers["bob"]) == 5
    assert store.groups <= 2  # the batch in one group; the single send in it or its own
