"""GET /v1/node: the newest event's id (to follow events from now) and the DHT store's counters."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import trio

from p2pdm.core.identity import Identity
from p2pdm.core.model import EventType
from p2pdm.net.limits import DHT_WRITE_BURST, DHT_WRITE_RATE_PER_SECOND
from p2pdm.net.testing import open_hosts
from p2pdm.node.tokens import create_token
from tests.api.conftest import check_documented
from tests.conftest import Api, node, serving
from tests.conftest import make_node as api_node
from tests.net.conftest import flood_records, fresh_records
from tests.net.conftest import register_node_records as register


async def test_event_cursor_is_the_newest_event_and_dht_is_null_off_the_network() -> None:
    async with serving(api_node("alice")) as alice:
        response = await alice.call("GET", "/v1/node")
        await check_documented(alice, response, "GET", "/v1/node")
        info = response.json()
        assert info["event_cursor"] == 0 and info["dht"] is None
        assert info["started_at_ms"] <= alice.node.now_ms()
        stranger = Identity.generate(bytes(32)).peer_id
        alice.node.peer_online(stranger)
        alice.node.peer_offline(stranger)
        cursor = (await alice.call("GET", "/v1/node")).json()["event_cursor"]
        assert cursor == alice.node.store.event_bounds()[1] == 2
        # From the cursor on, only what happens next.
        assert await poll(alice, 0) == [EventType.PEER_ONLINE, EventType.PEER_OFFLINE]
        assert await poll(alice, cursor) == []
        alice.node.peer_online(stranger)
        assert await poll(alice, cursor) == [EventType.PEER_ONLINE]


async def test_the_node_names_the_token_that_asked_never_its_secret() -> None:
    async with serving(api_node("alice")) as alice:
        assert (await alice.call("GET", "/v1/node")).json()["token"] == {
            "name": "owner",
            "scope": "admin",
        }
        _, secret = create_token(alice.node.store, "read", [], "reader", now_ms=0)
        response = await alice.call(
            "GET", "/v1/node", headers={"Authorization": f"Bearer {secret}"}
        )
        await check_documented(alice, response, "GET", "/v1/node")
        assert response.json()["token"] == {"name": "reader", "scope": "read"}
        assert secret not in response.text


async def poll(api: Api, since: int) -> list[EventType]:
    page = (await api.call("GET", f"/v1/events/poll?since={since}&timeout=0")).json()
    return [EventType(e["type"]) for e in page["events"]]


@pytest.mark.net
async def test_a_running_node_shows_its_dht_store_and_what_it_refused(tmp_path: Path) -> None:
    async with node(tmp_path, "bob") as bob, node(tmp_path, "ann", bob.running):
        # Ann publishes her record at start; Bob, her DHT peer, holds it.
        with trio.fail_after(20):
            while not (await bob.call("GET", "/v1/node"))["dht"]["records"]:  # noqa: ASYNC110
                await trio.sleep(0.1)
        # A flood of valid records from one peer: past its burst, refused.
        # The bucket refills in real time while the flood runs (slowly on a
        # loaded machine), so what was stored is bounded by the burst plus
        # the refill over the flood's duration.
        flood = fresh_records(DHT_WRITE_BURST + 40, tag=7)
        async with open_hosts(1, join=False) as (attacker,):
            register([attacker])
            started = trio.current_time()
            stored = await flood_records(attacker, bob.running.host, flood)
            took = trio.current_time() - started
        response = await bob.http.get("/v1/node")
        await check_documented(
            Api(bob.running.node, bob.running.api[1], bob.http), response, "GET", "/v1/node"
        )
        dht = response.json()["dht"]
        assert dht["records"] >= 1 + stored and dht["record_bytes"] > 0
        assert dht["refused"]["rate"] == len(flood) - stored >= 1
        assert stored <= DHT_WRITE_BURST + math.ceil(took * DHT_WRITE_RATE_PER_SECOND) + 1
        assert dht["evicted"] == 0
        assert dht["routing_table"] >= 1 and dht["connected_peers"] >= 1  # Ann, at least
        # Bob listens on loopback only: whatever the peers on this machine answer,
        # only they can dial him.
        reach = response.json()["reachability"]
        assert reach["status"] == "local" and reach["dht_mode"] == "server"
