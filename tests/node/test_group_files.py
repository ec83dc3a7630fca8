"""Files in a group to members who are away: their chunks follow the message
into each such member's outbox (then mailboxes), as one-to-one; members online
fetch them instead; unsending drops the chunks still queued (docs/protocol.md
§19.5, §17.7)."""

from __future__ import annotations

import itertools
import os

import pytest

import p2pdm.node.media as media_module
from p2pdm.core.blob import CHUNK_BYTES
from p2pdm.node.node import Node
from tests.conftest import make_node
from tests.node.conftest import chunks_for


@pytest.fixture
def three() -> tuple[Node, Node, Node]:
    nodes = tuple(make_node(n) for n in ("alice", "bob", "carol"))
    for a, b in itertools.permutations(nodes, 2):
        a.add_contact_from_invite(b.invite(), b.name)
    return nodes  # type: ignore[return-value]


async def test_small_files_follow_a_group_message_to_members_away(
    three: tuple[Node, Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, carol = three
    monkeypatch.setattr(media_module, "MAILBOX_FILE_BYTES", 3 * CHUNK_BYTES)
    gid = (await alice.create_group("files", [bob.peer_id, carol.peer_id])).row.id
    for member in (bob, carol):
        for item in alice.store.outbox_for(member.peer_id):
            member.messenger.receive(item.envelope)
            alice.store.remove_outbox(item.envelope_id)
    alice.peer_online(bob.peer_id)  # Bob is connected: he fetches; Carol is away
    small = alice.media.add_file(os.urandom(2 * CHUNK_BYTES + 5), "text/plain", "a.txt")
    large = alice.media.add_file(os.urandom(3 * CHUNK_BYTES + 5), "text/plain", "b.txt")
    body = alice.media.body_for([small.blob_id, large.blob_id], "two files")
    sent = (await alice.send_group_body(gid, body)).message
    assert chunks_for(alice, bob) == []
    # Only the small file, in order, after the message.
    assert chunks_for(alice, carol) == [(small.blob_id, i) for i in range(3)]
    assert alice.store.outbox_for(carol.peer_id)[0].message_id == sent.id
    alice.unsend(sent.id)
    assert chunks_for(alice, carol) == []


async def test_the_chunks_of_a_disappearing_file_live_no_longer_than_its_message(
    three: tuple[Node, Node, Node],
) -> None:
    alice, bob, _ = three
    alice.update_settings({"read_receipts": False})  # her copy's timer runs from sending
    gid = (await alice.create_group("brief", [bob.peer_id], timer_s=300)).row.id
    for item in alice.store.outbox_for(bob.peer_id):
        bob.messenger.receive(item.envelope)
        alice.store.remove_outbox(item.envelope_id)
    record = alice.media.add_file(os.urandom(CHUNK_BYTES + 1), "text/plain", "a.txt")
    sent = (await alice.send_group_body(gid, alice.media.body_for([record.blob_id], None))).message
    assert sent.expires_at_ms is not None
    expiries = {item.expires_at_ms for item in alice.store.outbox_for(bob.peer_id)}
    assert len(chunks_for(alice, bob)) == 2
    assert expiries == {-(-sent.expires_at_ms // 1000) * 1000}
