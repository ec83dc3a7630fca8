"""Handles beside a stock js-libp2p Kademlia node that is not p2pdm.

With the js node as the only bootstrap, it is the one DHT peer that holds
a handle's provider record (provider keys go on the wire as multihashes,
which it stores), and it routes the record lookup to the claimant, which
serves its own signed record (the js node drops ``/p2pdm/…`` records).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.conftest import node
from tests.interop import JsKadNode, js_kad_node

pytestmark = [pytest.mark.net, pytest.mark.slow, pytest.mark.interop]


@pytest.fixture
def js() -> Iterator[JsKadNode]:
    with js_kad_node() as peer:
        yield peer


async def test_a_handle_is_found_through_a_js_only_bootstrap(js: JsKadNode, tmp_path: Path) -> None:
    async with node(tmp_path, "carol", js.addr) as c:
        assert c.running.host.dht_peers() == [js.peer_id]
        await c.call("PATCH", "/v1/profile", json={"handle": "carol.k", "name": "Carol K"})
        async with node(tmp_path, "alice", js.addr) as a:
            with trio.fail_after(30):
                while True:
                    found = await a.call("GET", "/v1/directory", params={"handle": "Carol.K"})
                    if found["claimants"]:
                        break
                    await trio.sleep(0.5)
            [carol] = found["claimants"]
            assert (carol["peer_id"], carol["name"]) == (c.id, "Carol K")
            # The js node never claims anything, nor is asked for a p2pdm record as a claimant.
            assert str(js.peer_id) not in {x["peer_id"] for x in found["claimants"]}
