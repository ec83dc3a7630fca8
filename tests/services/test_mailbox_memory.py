"""The mailbox providers a node found, kept in its store: a node that starts again
fetches from them without a lookup, and looks up only when it knows none, they
are too old, or one of them fails."""

from __future__ import annotations

import os

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.core.identity import Identity, PeerId
from p2pdm.services.limits import (
    FETCH_INTERVAL_SECONDS,
    MAILBOX_MAX_REMEMBERED,
    MAILBOX_REMEMBER_SECONDS,
)
from p2pdm.services.mailbox_client import (
    MAILBOX_COPIES,
    MAILBOX_TRUST_SECONDS,
    PROVIDERS_SETTING,
    MailboxDirectory,
    Settings,
    recall_providers,
    remember_providers,
)
from p2pdm.store import MemoryStore
from tests.fakenet import FakeHost
from tests.services.conftest import World, clock_ms
from tests.services.test_mailbox import send_while_away

PEERS = [(Identity(bytes([i]) * 32).peer_id, [f"/memory/{i}"]) for i in range(1, 5)]


class Lookups:
    """A network whose provider lookups are counted and return ``PEERS``."""

    def __init__(self) -> None:
        self.count = 0

    async def find_providers(
        self,
        key: bytes,
        timeout: float,  # noqa: ASYNC109
    ) -> list[tuple[PeerId, list[str]]]:
        self.count += 1
        return PEERS


def directory(network: Lookups, store: MemoryStore) -> MailboxDirectory:
    return MailboxDirectory(
        Identity(b"\x09" * 32),
        network,  # type: ignore[arg-type]
        memory=store,
        now_ms=clock_ms,
    )


async def test_a_node_started_again_knows_the_providers_it_found(autojump_clock) -> None:  # type: ignore[no-untyped-def]
    store, network = MemoryStore(), Lookups()
    first = directory(network, store)
    assert await first.own_first() == (await first.own(), False)  # knew none: looked up
    assert network.count == 1
    # Started again soon: the start-up round and deposits use what it found.
    again = directory(network, store)
    mailboxes, known = await again.own_first()
    assert known and {peer for peer, _ in mailboxes} == {peer for peer, _ in PEERS}
    assert await again.providers() == PEERS and network.count == 1  # still the cache
    # Started after the trust time: the start-up round still needs no lookup,
    # deposits look the providers up.
    await trio.sleep(MAILBOX_TRUST_SECONDS + 1)
    later = directory(network, store)
    assert (await later.own_first())[1] and network.count == 1
    await later.providers()
    assert network.count == 2
    # That lookup is remembered: too old only a remember time after it.
    await trio.sleep(MAILBOX_REMEMBER_SECONDS + 1)
    stale = directory(network, store)
    assert not (await stale.own_first())[1] and network.count == 3


async def test_a_directory_without_a_store_remembers_nothing(autojump_clock) -> None:  # type: ignore[no-untyped-def]
    network = Lookups()
    plain = MailboxDirectory(Identity(b"\x09" * 32), network)  # type: ignore[arg-type]
    assert not (await plain.own_first())[1]
    assert (await plain.own_first())[1] and network.count == 1  # its cache, this run


async def test_the_start_up_round_fetches_from_the_mailboxes_it_knew(  # type: ignore[no-untyped-def]
    world: World, autojump_clock
) -> None:
    _, alice, bob, boxes = world
    sent = await send_while_away(alice, bob, "while bob was off")
    alice.host.online = False
    bob.host.online = True
    lookups = count_lookups(bob.host)
    known = [(box.identity.peer_id, [f"/memory/{box.identity.peer_id}"]) for box in boxes]
    remember_providers(bob.node.store, clock_ms(), known)
    bob.delivery.fetcher.mailboxes = directory_of(bob.node.identity, bob.host, bob.node.store)
    assert await bob.delivery.fetcher.fetch_mailboxes(first=True) == 1
    assert [m.id for m in bob.node.messages(alice.node.peer_id).messages] == [sent.id]
    assert lookups == [] and sum(box.held for box in boxes) == 0


async def test_a_mailbox_it_knew_failing_makes_it_look_up(world: World, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    """Senders deposit at the closest mailboxes they reach: with one we knew gone,
    that may be one we do not know."""
    _, alice, bob, boxes = world
    sent = await send_while_away(alice, bob, "while bob was off")
    alice.host.online = False
    bob.host.online = True
    lookups = count_lookups(bob.host)
    gone = Identity(os.urandom(32)).peer_id
    remember_providers(bob.node.store, clock_ms(), [(gone, [f"/memory/{gone}"])])
    bob.delivery.fetcher.mailboxes = directory_of(bob.node.identity, bob.host, bob.node.store)
    assert await bob.delivery.fetcher.fetch_mailboxes(first=True) == 1
    assert [m.id for m in bob.node.messages(alice.node.peer_id).messages] == [sent.id]
    assert len(lookups) == 1 and sum(box.held for box in boxes) == 0
    # The lookup replaced what it remembered.
    recalled = recall_providers(bob.node.store)
    assert recalled is not None
    assert {peer for peer, _ in recalled[1]} == {box.identity.peer_id for box in boxes}
    assert len(boxes) >= MAILBOX_COPIES


async def test_later_rounds_use_the_cache_not_the_memory(world: World, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    """Only the start-up round trusts an old list; the others look up once the
    trust time is over, so a closer new mailbox is found."""
    _, _, bob, boxes = world
    lookups = count_lookups(bob.host)
    known = [(box.identity.peer_id, [f"/memory/{box.identity.peer_id}"]) for box in boxes]
    remember_providers(bob.node.store, clock_ms() - int(MAILBOX_TRUST_SECONDS * 1000), known)
    bob.delivery.fetcher.mailboxes = directory_of(bob.node.identity, bob.host, bob.node.store)
    await bob.delivery.fetcher.fetch_mailboxes(first=True)
    assert lookups == []
    await bob.delivery.fetcher.fetch_mailboxes()
    assert len(lookups) == 1


async def test_later_rounds_trust_a_list_until_it_is_old(world: World, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    """A list of enough mailboxes is fetched from, round after round, with no
    lookup for MAILBOX_TRUST_SECONDS (a restart on the way keeps it), then looked up."""
    _, _, bob, boxes = world
    lookups = count_lookups(bob.host)
    known = [(box.identity.peer_id, [f"/memory/{box.identity.peer_id}"]) for box in boxes]
    assert len(known) >= MAILBOX_COPIES
    remember_providers(bob.node.store, clock_ms(), known)
    fetcher = bob.delivery.fetcher
    fetcher.mailboxes = directory_of(bob.node.identity, bob.host, bob.node.store)
    dials = bob.host.dials
    await fetcher.fetch_mailboxes(first=True)
    rounds = int(MAILBOX_TRUST_SECONDS // FETCH_INTERVAL_SECONDS) - 1
    for _ in range(rounds // 2):
        await trio.sleep(FETCH_INTERVAL_SECONDS)
        await fetcher.fetch_mailboxes()
    # Started again halfway: the list is still trusted.
    fetcher.mailboxes = directory_of(bob.node.identity, bob.host, bob.node.store)
    await fetcher.fetch_mailboxes(first=True)
    for _ in range(rounds - rounds // 2):
        await trio.sleep(FETCH_INTERVAL_SECONDS)
        await fetcher.fetch_mailboxes()
    assert lookups == [] and bob.host.dials - dials == len(boxes) * (rounds + 2)
    await trio.sleep(FETCH_INTERVAL_SECONDS * 2)
    await fetcher.fetch_mailboxes()
    assert len(lookups) == 1


async def test_a_trusted_mailbox_failing_in_a_later_round_makes_it_look_up(  # type: ignore[no-untyped-def]
    world: World, autojump_clock
) -> None:
    """Past the start-up round too: one of the trusted mailboxes gone, the round
    looks up and fetches from the others it finds (senders went there)."""
    _, alice, bob, boxes = world
    known = [(box.identity.peer_id, [f"/memory/{box.identity.peer_id}"]) for box in boxes[:3]]
    assert len(known) >= MAILBOX_COPIES and len(boxes) == MAILBOX_COPIES + 1
    remember_providers(bob.node.store, clock_ms(), known)
    fetcher = bob.delivery.fetcher
    fetcher.mailboxes = directory_of(bob.node.identity, bob.host, bob.node.store)
    # One directory, as in a node: bob's receipts for alice (away) are deposited too.
    bob.delivery.depositor.mailboxes = fetcher.mailboxes
    await fetcher.fetch_mailboxes(first=True)
    lookups = count_lookups(bob.host)
    boxes[0].host.online = False  # alice deposits at the other three, one unknown to bob
    sent = await send_while_away(alice, bob, "while bob was off")
    alice.host.online = False
    bob.host.online = True
    await trio.sleep(FETCH_INTERVAL_SECONDS)
    assert await fetcher.fetch_mailboxes() == 1
    assert [m.id for m in bob.node.messages(alice.node.peer_id).messages] == [sent.id]
    assert len(lookups) == 1 and boxes[3].held == 0  # found by the lookup
    # The next round trusts what that lookup found (all of it answering again).
    boxes[0].host.online = True
    await trio.sleep(FETCH_INTERVAL_SECONDS)
    await fetcher.fetch_mailboxes()
    assert len(lookups) == 1


async def test_a_provider_unreachable_for_a_deposit_makes_the_next_look_up() -> None:
    """A sender trusts its list for long too: one provider it cannot reach, and
    the next call for providers looks up."""
    network = Lookups()
    store = MemoryStore()
    remember_providers(store, clock_ms(), PEERS)
    box = directory(network, store)
    assert await box.providers() == PEERS and network.count == 0
    box.forget_providers()  # what Depositor does when a provider is unreachable
    assert await box.providers() == PEERS and network.count == 1


def count_lookups(host: FakeHost) -> list[bytes]:
    """Each provider lookup of ``host`` from now on (its key)."""
    keys: list[bytes] = []
    find = host.find_providers

    async def counted(key: bytes, timeout: float) -> list[tuple[PeerId, list[str]]]:  # noqa: ASYNC109
        keys.append(key)
        return await find(key, timeout)

    host.find_providers = counted  # type: ignore[method-assign]
    return keys


def directory_of(identity: Identity, host: FakeHost, store: Settings) -> MailboxDirectory:
    return MailboxDirectory(identity, host, memory=store, now_ms=clock_ms)


def test_what_is_remembered_comes_back_capped() -> None:
    store = MemoryStore()
    many = [(Identity(bytes([i]) * 32).peer_id, [f"/memory/{i}"] * 40) for i in range(1, 30)]
    remember_providers(store, 5, many)
    recalled = recall_providers(store)
    assert recalled is not None and recalled[0] == 5
    assert len(recalled[1]) == MAILBOX_MAX_REMEMBERED
    assert all(len(addrs) <= 16 for _, addrs in recalled[1])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@settings(max_examples=60)
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries({"at_ms": json_values, "providers": json_values}),
        st.fixed_dictionaries(
            {
                "at_ms": st.integers(),
                "providers": st.lists(
                    st.lists(st.sampled_from([str(PEERS[0][0]), "x", 3]) | json_values),
                    max_size=3,
                ),
            }
        ),
    )
)
def test_a_damaged_setting_is_ignored_whole(value: object) -> None:
    store = MemoryStore()
    store.set_setting(PROVIDERS_SETTING, value)
    recalled = recall_providers(store)  # never raises
    if recalled is not None:
        at_ms, found = recalled
        assert type(at_ms) is int and found
        assert all(isinstance(peer, PeerId) for peer, _ in found)
        assert all(isinstance(a, str) for _, addrs in found for a in addrs)
