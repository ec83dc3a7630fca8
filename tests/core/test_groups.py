"""Group change entries and the fold (docs/protocol.md §19): codec, signatures,
authority, and the conflict rules."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.core import cbor
from p2pdm.core.groups import ChangeEntry, GroupLog, decode_entry, make_entry
from p2pdm.core.identity import Identity
from p2pdm.errors import FrameTooLarge, SchemaError, SignatureError, WireError
from p2pdm.limits import MAX_GROUP_ENTRY_BYTES
from tests.core.conftest import ALICE, BOB, CAROL

DAVE = Identity(bytes([4]) * 32)
EVE = Identity(bytes([5]) * 32)
NONCE = bytes(16)


def create(members: tuple[Identity, ...] = (BOB,), author: Identity = ALICE) -> ChangeEntry:
    return make_entry(
        author,
        group=None,
        parents=(),
        ts_ms=1,
        op="create",
        nonce=NONCE,
        name="friends",
        members=tuple(m.peer_id for m in members),
    )


def change(
    author: Identity, log: GroupLog, op: str, *peers: Identity, **args: object
) -> ChangeEntry:
    if peers:
        args["peers"] = tuple(p.peer_id for p in peers)
    return make_entry(author, group=log.group, parents=log.heads, ts_ms=2, op=op, **args)


def new_log(root: ChangeEntry) -> GroupLog:
    log = GroupLog(root.group)
    assert log.add([root]).added == (root,)
    return log


def test_round_trip_and_group_id_from_create() -> None:
    root = create()
    assert decode_entry(root.encoded) == root
    assert root.group == root.hash[:16]
    log = new_log(root)
    add = change(ALICE, log, "add", CAROL)
    assert decode_entry(add.encoded) == add
    rename = change(ALICE, log, "rename", name="family")
    assert decode_entry(rename.encoded).args["name"] == "family"


def test_forged_signature_refused() -> None:
    root = create()
    m = cbor.decode(root.encoded, MAX_GROUP_ENTRY_BYTES)
    m["name"] = "evil"
    with pytest.raises(SignatureError):
        decode_entry(cbor.encode(m))


def test_wrong_author_refused() -> None:
    """An entry naming Alice as author but signed by Eve does not verify."""
    root = create()
    m = cbor.decode(root.encoded, MAX_GROUP_ENTRY_BYTES)
    unsigned = {k: v for k, v in m.items() if k != "sig"}
    unsigned["members"] = [BOB.peer_id.raw, EVE.peer_id.raw]
    forged = cbor.encode({**unsigned, "sig": EVE.sign("group-change/v1", cbor.encode(unsigned))})
    with pytest.raises(SignatureError):
        decode_entry(forged)


def test_schema_checks() -> None:
    with pytest.raises(FrameTooLarge):
        decode_entry(b"\x00" * (MAX_GROUP_ENTRY_BYTES + 1))
    root = create()
    m = cbor.decode(root.encoded, MAX_GROUP_ENTRY_BYTES)
    with pytest.raises(SchemaError):
        decode_entry(cbor.encode({**m, "extra": 1}))
    with pytest.raises(SchemaError):
        make_entry(ALICE, group=root.group, parents=(), ts_ms=1, op="add", peers=(BOB.peer_id,))
    with pytest.raises(SchemaError):
        make_entry(ALICE, group=root.group, parents=(root.hash,), ts_ms=1, op="add", peers=())
    with pytest.raises(SchemaError):
        make_entry(ALICE, group=root.group, parents=(root.hash,), ts_ms=1, op="timer", timer_s=7)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(WireError, SignatureError):
        decode_entry(data)


def test_non_admin_add_refused() -> None:
    log = new_log(create())
    add = change(BOB, log, "add", CAROL)
    out = log.add([add])
    assert out.added == () and out.refused[0][0] == add
    assert not log.authorised(add.hash) and add.hash not in log
    assert CAROL.peer_id not in log.state().members
    # A non-member's leave changes nothing either, and anyone may leave.
    leave = change(BOB, log, "leave")
    log.add([leave])
    assert log.state().members == {ALICE.peer_id}


def test_entries_for_another_group_refused() -> None:
    log = new_log(create())
    other = create(members=(CAROL,), author=BOB)
    out = log.add([other])
    assert out.refused and out.refused[0][0] == other


def test_held_until_parents_arrive() -> None:
    root = create()
    log = new_log(root)
    a = change(ALICE, log, "add", CAROL)
    log.add([a])
    b = change(CAROL, log, "rename", name="x")  # Carol is no admin: refused by authority
    c = change(ALICE, log, "promote", CAROL)
    other = GroupLog(root.group)
    out = other.add([c, b, a, root])
    assert out.held == 0 and len(other) == 3 and [r[0] for r in out.refused] == [b]
    assert b.hash not in other and other.authorised(c.hash)
    assert CAROL.peer_id in other.state().admins
    replay = GroupLog(root.group)
    assert replay.add([c]).held == 1
    assert replay.add([root, a]).held == 0 and len(replay) == 3


def test_removal_wins_over_concurrent_add() -> None:
    log = new_log(create(members=(BOB,)))
    promote = change(ALICE, log, "promote", BOB)
    log.add([promote])
    add = change(ALICE, log, "add", CAROL)
    remove_then = GroupLog(log.group)
    remove_then.add(log.entries())
    add_c = change(ALICE, log, "add", DAVE)  # concurrent with Bob's removal of Dave
    log.add([add_c])
    remove_d = change(BOB, remove_then, "remove", DAVE)
    for order in ([add, add_c, remove_d], [remove_d, add_c, add]):
        replica = GroupLog(log.group)
        replica.add(log.entries()[:2] + order)
        members = replica.state().members
        assert DAVE.peer_id not in members
        assert CAROL.peer_id in members
    # A later add (after the removal) brings Dave back.
    replica.add([add, add_c, remove_d])
    again = change(ALICE, replica, "add", DAVE)
    replica.add([again])
    assert DAVE.peer_id in replica.state().members


def test_revocation_wins_over_the_revoked_admins_concurrent_changes() -> None:
    log = new_log(create(members=(BOB, CAROL)))
    log.add([change(ALICE, log, "promote", BOB)])
    base = log.entries()
    demote_bob = change(ALICE, log, "demote", BOB)
    bob_view = GroupLog(log.group)
    bob_view.add(base)
    bob_adds = change(BOB, bob_view, "add", DAVE)  # Bob had not seen his demotion
    merged = GroupLog(log.group)
    merged.add([*base, bob_adds, demote_bob])
    state = merged.state()
    assert DAVE.peer_id not in state.members
    assert BOB.peer_id not in state.admins
    # Mutual concurrent demotion: both ignored, both stay admins.
    bob_demotes_alice = change(BOB, bob_view, "demote", ALICE)
    mutual = GroupLog(log.group)
    mutual.add([*base, bob_demotes_alice, demote_bob])
    assert mutual.state().admins == {ALICE.peer_id, BOB.peer_id}


def test_missing_for_sends_what_the_peer_lacks() -> None:
    root = create()
    log = new_log(root)
    a = change(ALICE, log, "add", CAROL)
    log.add([a])
    b = change(ALICE, log, "rename", name="x")
    log.add([b])
    assert [e.hash for e in log.missing_for((root.hash,), 10)] == [a.hash, b.hash]
    assert log.missing_for(log.heads, 10) == []
    assert [e.hash for e in log.missing_for((b"\x00" * 32,), 1)] == [root.hash]


# --- convergence ------------------------------------------------------------

PEOPLE = (ALICE, BOB, CAROL, DAVE)
OUTSIDERS = (EVE,)


def _random_change(rng: random.Random, author: Identity, log: GroupLog) -> ChangeEntry | None:
    state = log.state()
    everyone = [p for p in (*PEOPLE, *OUTSIDERS) if p is not author]
    op = rng.choice(["add", "remove", "leave", "rename", "promote", "demote", "timer"])
    if op == "leave":
        return change(author, log, "leave")
    if op == "rename":
        return change(author, log, "rename", name=rng.choice(["a", "b", "c"]))
    if op == "timer":
        return change(author, log, "timer", timer_s=rng.choice([0, 300, 3600]))
    del state
    return change(author, log, op, rng.choice(everyone))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=1, max_value=25))
def test_random_interleavings_converge(seed: int, steps: int) -> None:
    """Four members make changes on their own replicas, exchange some of them
    in random orders, then everything; all four end with the same state."""
    rng = random.Random(seed)
    root = create(members=(BOB, CAROL, DAVE))
    # Three admins, so concurrent admin changes (and revocations) happen.
    promote = make_entry(
        ALICE,
        group=root.group,
        parents=(root.hash,),
        ts_ms=1,
        op="promote",
        peers=(BOB.peer_id, CAROL.peer_id),
    )
    replicas = {p.peer_id: new_log(root) for p in PEOPLE}
    for replica in replicas.values():
        replica.add([promote])
    made: list[ChangeEntry] = [root, promote]
    for _ in range(steps):
        author = rng.choice(PEOPLE)
        entry = _random_change(rng, author, replicas[author.peer_id])
        if entry is None:
            continue
        made.append(entry)
        replicas[author.peer_id].add([entry])
        # Deliver a random subset of everything made so far to a random member.
        target = rng.choice(PEOPLE).peer_id
        replicas[target].add(rng.sample(made, rng.randint(0, len(made))))
    for log in replicas.values():
        shuffled = made[:]
        rng.shuffle(shuffled)
        log.add(shuffled)
    states = {peer: log.state() for peer, log in replicas.items()}
    first = next(iter(states.values()))
    assert all(state == first for state in states.values())
    heads = {log.heads for log in replicas.values()}
    assert len(heads) == 1
    # A fresh replica given everything in any order agrees too.
    fresh = GroupLog(root.group)
    rng.shuffle(made)
    fresh.add(made)
    assert fresh.state() == first


# --- the group kinds --------------------------------------------------------


def test_group_kinds_round_trip() -> None:
    from p2pdm.core.kinds import GroupChangeBody, GroupMsgBody, ReactionBody, TextBody
    from p2pdm.core.wire import InnerMessage

    root = create()
    for body in (
        GroupChangeBody((root.hash,), (root.encoded,), want=True),
        GroupMsgBody((root.hash,), TextBody("hi", reply_to=bytes(16))),
        GroupMsgBody((root.hash,), ReactionBody(bytes(16), "👍")),
    ):
        inner = InnerMessage.create(
            ALICE,
            id=bytes(16),
            recipient=BOB.peer_id,
            conversation=root.group,
            sent_at_ms=5,
            body=body,
        )
        assert InnerMessage.decode(inner.encode()) == inner


def test_group_msg_refuses_kinds_that_stay_one_to_one() -> None:
    from p2pdm.core.cbor import Fields
    from p2pdm.core.kinds.group import decode_msg

    with pytest.raises(SchemaError):
        decode_msg(Fields({"heads": [bytes(32)], "kind": "receipt", "body": {}}, "b"))
    with pytest.raises(SchemaError):
        decode_msg(Fields({"heads": [], "kind": "text", "body": {"text": "x"}}, "b"))
