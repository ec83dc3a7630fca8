"""A node started again publishes a new record only when the DHT's copy is due or
out of date; otherwise it puts the same signed record again, which only the
closest peers that lost it take."""

from __future__ import annotations

import pytest
import trio

from p2pdm.core import records
from p2pdm.core.profile import Profile
from p2pdm.daemon.runner import (
    RECORD_PUBLISHED_SETTING,
    RECORD_REPUBLISH_SECONDS,
    RECORD_RETRY_SECONDS,
    RECORD_SEQ_SETTING,
    publish_record,
    published_unchanged,
    record_holders,
)
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from p2pdm.sim.simnode import SimNode

pytestmark = pytest.mark.net


async def test_a_restart_with_the_same_record_does_not_publish_it_again(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(4, contacts=0, mailboxes=0) as net:
        node, other = net[1], net[2]
        key = records.record_key(node.peer_id)
        await wait_until(lambda: node.store.get_setting(RECORD_PUBLISHED_SETTING) is not None, 60)
        first = node.store.get_setting(RECORD_SEQ_SETTING)

        async def restart(sim_node: SimNode) -> None:
            await net.stop(sim_node)
            await trio.sleep(30)
            await net.start(sim_node)
            await trio.sleep(60)  # well past a publication at start

        # Unchanged and published moments ago: the same record put again, no
        # new one; the holders answer with it.
        await restart(node)
        assert node.store.get_setting(RECORD_SEQ_SETTING) == first
        assert node.publications == 1  # this run's: the same signed record
        value = await other.running.host.get_record(key, 10)
        assert value is not None and records.validate(key, value).seq == first

        # Changed while it was off (a new profile): published at start.
        node.store.put_profile(Profile("Nell"), node.running.node.now_ms())
        await restart(node)
        second = node.store.get_setting(RECORD_SEQ_SETTING)
        assert isinstance(first, int) and isinstance(second, int) and second > first
        value = await other.running.host.get_record(key, 10)
        assert value is not None
        profile = records.validate(key, value).profile
        assert profile is not None and profile.name == "Nell"

        # Unchanged, but published a republish interval ago: published at start.
        noted = node.store.get_setting(RECORD_PUBLISHED_SETTING)
        assert isinstance(noted, dict)
        aged = noted["at_ms"] - int(RECORD_REPUBLISH_SECONDS * 1000)
        node.store.set_setting(RECORD_PUBLISHED_SETTING, {**noted, "at_ms": aged})
        await restart(node)
        third = node.store.get_setting(RECORD_SEQ_SETTING)
        assert isinstance(third, int) and third > second


@pytest.mark.parametrize(
    "noted",
    [
        None,
        5,
        "x",
        {},
        {"at_ms": "1", "digest": "00", "signed": "00"},
        {"at_ms": 1, "digest": 3, "signed": "00"},
        "no signed record",
        "another record signed",
        "not hex",
    ],
)
async def test_a_damaged_or_foreign_note_means_publish(
    noted: object, sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(2, contacts=0, mailboxes=0) as net:
        serving = net[1].running
        await wait_until(lambda: net[1].store.get_setting(RECORD_PUBLISHED_SETTING) is not None, 60)
        assert published_unchanged(serving.node, serving.host, serving.directory) is not None
        good = net[1].store.get_setting(RECORD_PUBLISHED_SETTING)
        assert isinstance(good, dict)
        if noted == "no signed record":
            noted = {k: v for k, v in good.items() if k != "signed"}
        elif noted == "another record signed":
            other = records.NodeRecord.decode(bytes.fromhex(good["signed"]))
            changed = records.NodeRecord(other.peer, other.seq + 1, other.bundle, ("/x",))
            noted = {**good, "signed": changed.sign(serving.node.identity).hex()}
        elif noted == "not hex":
            noted = {**good, "signed": "zz"}
        net[1].store.set_setting(RECORD_PUBLISHED_SETTING, noted)
        assert published_unchanged(serving.node, serving.host, serving.directory) is None
        # A note from the future (the wall clock set back): publish.
        future = {"at_ms": serving.node.now_ms() + 60_000, "digest": "00" * 16}
        net[1].store.set_setting(RECORD_PUBLISHED_SETTING, future)
        assert published_unchanged(serving.node, serving.host, serving.directory) is None


async def test_a_publication_no_peer_took_is_retried_soon(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    """A put whose queries failed (here a partition; on a busy machine, queries
    that ran past their deadline) stored the record at fewer than RECORD_QUORUM
    peers, or nowhere but here: it is not counted as published, and the
    publisher puts it again within RECORD_RETRY_SECONDS instead of
    RECORD_REPUBLISH_SECONDS later."""
    async with sim_network(4, contacts=0, mailboxes=0) as net:
        node, other = net[1], net[2]
        key = records.record_key(node.peer_id)
        await wait_until(lambda: node.store.get_setting(RECORD_PUBLISHED_SETTING) is not None, 60)
        published = node.store.get_setting(RECORD_PUBLISHED_SETTING)
        serving = node.running
        assert record_holders(serving.host)  # p2pdm DHT peers in its table all along

        net.partition([[1, 2]])  # one of its three peers takes it: too few
        assert not await publish_record(serving.node, serving.host, serving.directory)
        assert node.store.get_setting(RECORD_PUBLISHED_SETTING) == published
        net.heal()
        net.partition([[1]])  # node 1 alone: every query of its put fails
        assert not await publish_record(serving.node, serving.host, serving.directory)
        assert node.store.get_setting(RECORD_PUBLISHED_SETTING) == published  # not noted
        seq = node.store.get_setting(RECORD_SEQ_SETTING)
        value = await other.running.host.get_record(key, 10)
        assert value is not None and records.validate(key, value).seq != seq  # the old one

        # The publisher's own round: a profile change publishes, nobody takes it;
        # once the partition heals the retry brings it out.
        serving.node.profiles.update(name="Nell")
        await wait_until(lambda: node.store.get_setting(RECORD_SEQ_SETTING) != seq, 10)
        changed = node.store.get_setting(RECORD_SEQ_SETTING)
        await trio.sleep(RECORD_RETRY_SECONDS / 2)
        net.heal()
        await wait_until(
            lambda: node.store.get_setting(RECORD_SEQ_SETTING) != changed, RECORD_RETRY_SECONDS
        )
        await wait_until(lambda: node.store.get_setting(RECORD_PUBLISHED_SETTING) != published, 60)
        value = await other.running.host.get_record(key, 10)
        assert value is not None
        profile = records.validate(key, value).profile
        assert profile is not None and profile.name == "Nell"
