"""Which peers a running node counts as online: what typing signals need."""

from __future__ import annotations

from p2pdm.core.model import direct_conversation_id
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from tests.conftest import UPKEEP


async def test_a_peer_connected_before_it_became_a_contact_is_online(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(2, clock="real", contacts=[], upkeep=UPKEEP) as net:
        alice, bob = net[0].running.node, net[1].running.node
        # Connected as DHT peers while strangers: nobody is online yet.
        await wait_until(lambda: bob.peer_id in net[0].running.host.connections(), 30)
        assert bob.peer_id not in alice.online
        alice.add_contact_from_invite(bob.invite(), "bob")
        bob.add_contact_from_invite(alice.invite(), "alice")
        # Over the connection they already have, with no new one.
        await wait_until(lambda: bob.peer_id in alice.online and alice.peer_id in bob.online, 10)
        conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
        assert await alice.send_typing(conversation, bob.peer_id) is None
