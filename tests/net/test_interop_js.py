"""p2pdm beside a standard libp2p Kademlia peer that is not p2pdm: a stock
js-libp2p 2.8 node (kad-dht server on /ipfs/kad/1.0.0, see tests/interop/js)
as bootstrap and routing node.

What the js node does for p2pdm: identify, ping, peer routing and provider
records. What it does not: it drops ``/p2pdm/…`` records (it has no validator
for the namespace), so a node's record is held only by p2pdm nodes — with a
js-only bootstrap, by its owner, which serves it to lookups that reach it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from p2pdm.core.dm import DM_PROTOCOL
from p2pdm.core.identity import PeerId
from p2pdm.daemon.runner import publish_record, record_holders
from p2pdm.net import Host, Stream, open_host
from p2pdm.net.testing import host_seed, wait_until
from tests.conftest import node, wait_for_status
from tests.interop import JsKadNode, js_kad_node

pytestmark = [pytest.mark.net, pytest.mark.slow, pytest.mark.interop]

KAD_PROTOCOL = "/ipfs/kad/1.0.0"
TIMEOUT = 10.0


@pytest.fixture
def js() -> Iterator[JsKadNode]:
    with js_kad_node() as peer:
        yield peer


@pytest.fixture
def streams_opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[PeerId, PeerId, str]]:
    """Every (from, to, protocol) stream a p2pdm host opens, in order."""
    opened: list[tuple[PeerId, PeerId, str]] = []
    open_stream = Host.open_stream

    async def recording(
        self: Host, peer: PeerId, protocol: str, addrs: Sequence[str] = ()
    ) -> Stream:
        opened.append((self.peer_id, peer, protocol))
        return await open_stream(self, peer, protocol, addrs)

    monkeypatch.setattr(Host, "open_stream", recording)
    return opened


async def test_a_host_bootstraps_through_a_js_node(js: JsKadNode) -> None:
    """Connect, identify (a DHT server that does not speak p2pdm) and ping."""
    async with open_host(host_seed(1), bootstrap=[js.addr]) as host:
        assert host.is_connected(js.peer_id)
        assert js.peer_id in host.dht_peers()
        await wait_until(lambda: bool(host.peer_protocols(js.peer_id)), TIMEOUT)
        protocols = host.peer_protocols(js.peer_id)
        assert {KAD_PROTOCOL, "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"} <= protocols
        assert not any(p.startswith("/p2pdm/") for p in protocols)
        assert 0 <= await host.ping(js.peer_id) < TIMEOUT


async def test_peer_routing_through_a_js_node(js: JsKadNode) -> None:
    async with (
        open_host(host_seed(2), bootstrap=[js.addr]) as c,
        open_host(host_seed(1)) as a,
    ):
        # a knows only the js node: c's address can come from nowhere else.
        await a.connect(js.peer_id, [js.addr])
        assert not a.is_connected(c.peer_id) and a.peer_addrs(c.peer_id) == []
        addrs = await a.find_peer(c.peer_id, TIMEOUT)
        assert c.listen_addrs()[0] in addrs
        assert 0 <= await a.ping(c.peer_id) < TIMEOUT


async def test_a_js_node_keeps_provider_records(js: JsKadNode) -> None:
    """Provider keys go out as multihashes, which a js node stores: after the
    provider has left the DHT, a host that knows only the js node finds it."""
    key = b"/p2pdm/test-service/1"
    async with open_host(host_seed(1), bootstrap=[js.addr]) as a:
        await a.provide(key)
        provider, [addr] = a.peer_id, a.listen_addrs()
    async with open_host(host_seed(2)) as c:
        await c.connect(js.peer_id, [js.addr])
        assert await c.find_providers(key, TIMEOUT) == [(provider, [addr])]


async def test_full_nodes_send_by_peer_id_through_a_js_bootstrap(
    js: JsKadNode, tmp_path: Path, streams_opened: list[tuple[PeerId, PeerId, str]]
) -> None:
    """A and C bootstrap only from the js node. C publishes first, while the js
    node is its only DHT peer, so C's record lives on C alone; A adds C by
    PeerID, its record lookup reaches C through the js node, and C gets the
    message. The js node never becomes a contact nor a dm recipient."""
    async with node(tmp_path, "carol", js.addr) as c:
        assert c.running.host.dht_peers() == [js.peer_id]
        # The js node routes but keeps no p2pdm record: not a holder, so the
        # record is put again soon rather than in six hours.
        assert record_holders(c.running.host) == []
        assert not await publish_record(c.running.node, c.running.host)
        async with node(tmp_path, "alice", js.addr) as a:
            await a.call("POST", "/v1/contacts", json={"peer_id": c.id, "name": "carol"})
            sent = await a.call("POST", "/v1/messages", json={"to": "carol", "text": "hi carol"})
            await wait_for_status(a, sent["id"], "delivered", 20)
            [got] = (await c.call("GET", f"/v1/conversations/{a.id}/messages"))["messages"]
            assert got["text"] == "hi carol" and got["direction"] == "in"

            # A user who adds the js node's PeerID is told the message waits:
            # it has no p2pdm record, so no envelope is queued for it.
            await a.call("POST", "/v1/contacts", json={"peer_id": str(js.peer_id), "name": "js"})
            response = await a.http.post("/v1/messages", json={"to": "js", "text": "hello?"})
            assert response.status_code == 201
            assert response.json()["status_detail"].startswith("waiting for js's keys")

            a_peer, c_peer = a.running.node.peer_id, c.running.node.peer_id
            # Alice joined the DHT before serving p2pdm; her identify push told Carol.
            assert record_holders(c.running.host) == [a_peer]
            assert await publish_record(c.running.node, c.running.host)
            assert [ct.peer_id for ct in c.running.node.store.list_contacts()] == []
            assert a.running.node.store.outbox_for(js.peer_id) == []
    dm_streams = [(src, dst) for src, dst, protocol in streams_opened if protocol == DM_PROTOCOL]
    assert dm_streams and set(dm_streams) <= {(a_peer, c_peer), (c_peer, a_peer)}


async def test_a_record_held_only_by_its_offline_owner_is_not_found(
    js: JsKadNode, tmp_path: Path
) -> None:
    """The limit of a js-only DHT: the js node drops p2pdm records, so once C
    (their only holder) is gone, A cannot start a session with C by PeerID:
    A's message waits for C's keys."""
    async with node(tmp_path, "carol", js.addr) as c:
        carol = c.id
    async with node(tmp_path, "alice", js.addr) as a:
        await a.call("POST", "/v1/contacts", json={"peer_id": carol, "name": "carol"})
        response = await a.http.post("/v1/messages", json={"to": "carol", "text": "hi"})
        assert response.status_code == 201  # accepted: it waits for Carol's keys
        assert response.json()["status_detail"].startswith("waiting for carol's keys")
        assert a.running.node.store.outbox_for(PeerId.parse(carol)) == []
