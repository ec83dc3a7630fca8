"""The simulator measures through the node's observer, not by patching the node."""

from __future__ import annotations

import trio

from p2pdm.core.model import DeliveryStatus
from p2pdm.node.node import Node
from p2pdm.node.observer import NO_OBSERVER
from p2pdm.sim.metrics import Recorder
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory


def unpatched(node: Node) -> bool:
    """True if nothing replaced the messenger's or delivery's methods on the instances."""
    return "receive" not in vars(node.messenger)


async def test_recorder_sees_direct_mailbox_and_refused_envelopes(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    recorder = Recorder(clock=trio.current_time)
    async with sim_network(4, contacts=[(2, 3)], mailboxes=2, probe=recorder) as sim:
        a, b = sim[2], sim[3]
        for sim_node in sim.nodes:
            node = sim_node.running.node
            assert node.observer is not NO_OBSERVER
            assert unpatched(node)
            assert "accept_group" not in vars(sim_node.running.delivery)

        direct = await sim.send(a.index, b.index, "online")
        recorder.sent(direct.id, a.index, b.index, offline=False)
        await sim.wait_delivered(a.index, direct)

        await sim.stop(b)
        held = await sim.send(a.index, b.index, "offline")
        recorder.sent(held.id, a.index, b.index, offline=True)
        await sim.wait_status(a.index, held, DeliveryStatus.DEPOSITED)
        await sim.start(b)
        await wait_until(lambda: recorder.messages[held.id].delivered_s is not None, 60)

        # Bytes that are no envelope: the messenger refuses them, the observer
        # counts the refusal by its error's name.
        before = sum(recorder.refusals.values())
        result, reason = b.running.delivery.accept(b"not an envelope")
        assert result == "rejected"
        assert recorder.refusals[reason] >= 1
        assert sum(recorder.refusals.values()) == before + 1
    assert recorder.messages[direct.id].path == "direct"
    assert recorder.messages[held.id].path == "mailbox"
    assert recorder.stored_at == {direct.id: {b.index}, held.id: {b.index}}
