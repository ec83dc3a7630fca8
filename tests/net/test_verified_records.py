"""Signed peer records in DHT messages are verified once per host and bytes
(pitfall 29 of ``p2pdm.net._patches``), with libp2p's answers."""

from __future__ import annotations

from typing import Any

import multiaddr
import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.kad_dht.utils import maybe_consume_signed_record
from libp2p.peer.envelope import Envelope
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStore, create_signed_peer_record

from p2pdm.net import _patches
from p2pdm.net._patches import consume_signed_record_once
from p2pdm.net.limits import VERIFIED_PEER_RECORDS


class FakeHost:
    def __init__(self) -> None:
        self.peerstore = PeerStore()

    def get_peerstore(self) -> PeerStore:
        return self.peerstore


def signed(port: int = 4001, seed: int = 1) -> tuple[ID, bytes]:
    keys = create_new_key_pair(bytes([seed]) * 32)
    peer = ID.from_pubkey(keys.public_key)
    addr = multiaddr.Multiaddr(f"/ip4/10.0.0.1/tcp/{port}")
    return peer, create_signed_peer_record(peer, [addr], keys.private_key).marshal_envelope()


def sender_message(data: bytes) -> Any:
    message = Message()
    message.senderRecord = data
    return message


def closer_peer(peer: ID, data: bytes) -> Any:
    message = Message()
    entry = message.closerPeers.add()
    entry.id = peer.to_bytes()
    entry.signedRecord = data
    return entry


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Each signature check libp2p makes (the envelope's signature)."""
    checked: list[bytes] = []
    validate = Envelope.validate

    def counted(self: Envelope, domain: str) -> None:
        checked.append(self.raw_payload)
        validate(self, domain)

    monkeypatch.setattr(Envelope, "validate", counted)
    return checked


def test_the_same_answers_as_libp2p() -> None:
    peer, data = signed()
    other, _ = signed(seed=2)
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    cases = [
        (sender_message(data), peer),
        (sender_message(data), None),
        (sender_message(data), other),  # someone else's record
        (sender_message(tampered), peer),
        (sender_message(b"\x01garbage"), peer),
        (Message(), peer),  # no record at all
        (closer_peer(peer, data), None),
        (closer_peer(other, data), None),
        (closer_peer(peer, tampered), None),
    ]
    for message, expected in cases:
        ours, theirs = FakeHost(), FakeHost()
        for _ in range(2):  # verified, then from the cache
            assert consume_signed_record_once(message, ours, expected) == (
                maybe_consume_signed_record(message, theirs, expected)  # type: ignore[arg-type]
            )
            assert ours.peerstore.addrs(peer) if peer in theirs.peerstore.peer_ids() else True
            assert set(ours.peerstore.peer_ids()) == set(theirs.peerstore.peer_ids())


def test_a_record_seen_again_is_not_verified_again(verifications: list[bytes]) -> None:
    host = FakeHost()
    peer, data = signed()
    for _ in range(5):
        assert consume_signed_record_once(sender_message(data), host, peer)
    assert len(verifications) == 1
    # A new record of the same peer (new addresses) is verified, and wins.
    _, newer = signed(port=4002)
    assert consume_signed_record_once(sender_message(newer), host, peer)
    assert len(verifications) == 2
    assert [str(a) for a in host.peerstore.addrs(peer)] == ["/ip4/10.0.0.1/tcp/4002"]
    # Another host verifies for itself.
    assert consume_signed_record_once(sender_message(data), FakeHost(), peer)
    assert len(verifications) == 3


def test_the_cache_is_bounded_least_recent_out(verifications: list[bytes]) -> None:
    host = FakeHost()
    records = [signed(seed=i + 1) for i in range(VERIFIED_PEER_RECORDS + 1)]
    for peer, data in records:
        assert consume_signed_record_once(sender_message(data), host, peer)
    kept: Any = host._p2pdm_verified_records  # type: ignore[attr-defined]
    assert len(kept.entries) == VERIFIED_PEER_RECORDS
    assert records[0][1] not in kept.entries  # the least recent went
    before = len(verifications)
    peer, data = records[-1]
    assert consume_signed_record_once(sender_message(data), host, peer)
    assert len(verifications) == before
    peer, data = records[0]
    assert consume_signed_record_once(sender_message(data), host, peer)
    assert len(verifications) == before + 1


def test_libp2p_dht_modules_use_it() -> None:
    _patches.verify_peer_records_once()
    import libp2p.kad_dht.kad_dht
    import libp2p.kad_dht.peer_routing
    import libp2p.kad_dht.value_store

    for module in (libp2p.kad_dht.kad_dht, libp2p.kad_dht.peer_routing, libp2p.kad_dht.value_store):
        assert module.maybe_consume_signed_record is consume_signed_record_once
