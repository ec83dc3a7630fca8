"""Files between real nodes: libp2p on loopback, SQLite homes, the HTTP API."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import trio

import p2pdm.services.blob as blob_service
from p2pdm.client import Client
from p2pdm.core.blob import CHUNK_BYTES
from p2pdm.core.blobwire import BLOB_PROTOCOL, BlobReply, BlobRequest
from p2pdm.core.kinds import MediaBody, MediaItem
from p2pdm.core.model import StoredMessage
from p2pdm.errors import NotFound
from p2pdm.node.media_ops import send_body, send_media
from p2pdm.sim.network import SimNetwork, wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from p2pdm.store.blobs import BlobRecord
from tests.conftest import UPKEEP, Peer, node, serving
from tests.media_files import bomb_png, has_gps, photo_with_gps


async def befriend(a: Peer, b: Peer) -> None:
    invite = (await b.call("GET", "/v1/node"))["invite"]
    await a.call("POST", "/v1/contacts", json={"invite": invite, "name": "bob"})
    invite = (await a.call("GET", "/v1/node"))["invite"]
    await b.call("POST", "/v1/contacts", json={"invite": invite, "name": "alice"})


async def upload(peer: Peer, data: bytes, mime: str, name: str) -> dict[str, Any]:
    response = await peer.http.post(
        "/v1/media", params={"name": name}, content=data, headers={"Content-Type": mime}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def wait_file(peer: Peer, blob_id: str, state: str = "ready", seconds: float = 30) -> None:
    with trio.fail_after(seconds):
        while True:
            record = peer.running.node.store.get_blob(bytes.fromhex(blob_id))
            if record is not None and record.state == state:
                return
            await trio.sleep(0.05)


async def test_a_photo_with_a_gps_tag_arrives_without_it(tmp_path: Path) -> None:
    async with node(tmp_path, "bob") as b, node(tmp_path, "alice", b.running) as a:
        await befriend(a, b)
        photo = photo_with_gps()
        uploaded = await upload(a, photo, "image/jpeg", "holiday.jpg")
        sent = await a.call(
            "POST", "/v1/messages", json={"to": "bob", "media": [uploaded["id"]], "text": "look"}
        )
        await wait_file(b, uploaded["id"])
        got = await b.call("GET", f"/v1/messages/{sent['id']}")
        assert got["text"] == "look"
        [item] = got["media"]
        assert (item["name"], item["state"], item["thumbnail"]) == ("holiday.jpg", "ready", True)
        served = await b.http.get(f"/v1/media/{uploaded['id']}")
        assert served.status_code == 200 and not has_gps(served.content)
        assert (
            hashlib.sha256(served.content).hexdigest()
            == hashlib.sha256((await a.http.get(f"/v1/media/{uploaded['id']}")).content).hexdigest()
        )
        # The blob is sealed on Bob's disk, under its id, not its name.
        files = sorted(p.name for p in (b.home.path / "blobs").iterdir())
        assert files == [uploaded["id"]]
        assert photo[-64:] not in (b.home.path / "blobs" / uploaded["id"]).read_bytes()


async def test_a_bomb_thumbnail_is_refused_on_receipt_and_odd_names_are_stored_safely(
    tmp_path: Path,
) -> None:
    async with node(tmp_path, "bob") as b, node(tmp_path, "alice", b.running) as a:
        await befriend(a, b)
        alice = a.running.node
        record = alice.media.add_file(bomb_png(), "application/octet-stream", "n.png")
        # A hostile sender: a crafted name and a decompression bomb as thumbnail.
        body = MediaBody(
            (
                MediaItem(
                    record.blob_id,
                    record.key,
                    record.digest,
                    record.size,
                    "image/png",
                    "../../x\x07\n.png",
                    thumbnail=bomb_png()[:8192],
                ),
            )
        )
        await send_body(alice, b.running.node.peer_id, body)
        await wait_file(b, record.blob_id.hex())
        bob_record = b.running.node.store.get_blob(record.blob_id)
        assert bob_record is not None
        assert bob_record.thumbnail is None  # refused: never shown
        assert bob_record.name == "x__.png"
        thumb = await b.http.get(f"/v1/media/{record.blob_id.hex()}/thumbnail")
        assert thumb.status_code == 404
        # The file itself, a bomb claiming to be a PNG, is never handed over inline.
        served = await b.http.get(f"/v1/media/{record.blob_id.hex()}")
        assert served.content == bomb_png()
        assert served.headers["content-type"] == "application/octet-stream"
        assert served.headers["content-disposition"].startswith("attachment;")
        assert not (tmp_path / "x").exists() and not (b.home.path.parent / "x").exists()


@pytest.mark.slow
async def test_a_large_file_resumes_after_the_recipient_restarts_and_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob stops halfway through a transfer; started again, he asks from the
    first chunk he does not have, and the file matches its digest."""
    size = 50 << 20
    # Slow enough to stop Bob in the middle.
    monkeypatch.setattr(blob_service, "BLOB_BYTES_PER_SECOND_PER_PEER", size // 3)
    asked: list[int] = []
    decode = BlobRequest.decode

    def note(data: bytes) -> BlobRequest:
        request = decode(data)
        asked.append(request.first)
        return request

    monkeypatch.setattr(BlobRequest, "decode", staticmethod(note))
    data = os.urandom(size)
    async with node(tmp_path, "alice") as a:
        async with node(tmp_path, "bob", a.running) as b:
            await befriend(a, b)
            limit = {"media_auto_download_bytes": 100 << 20}  # over the 25 MiB default
            await b.call("PATCH", "/v1/settings", json=limit)
            uploaded = await upload(a, data, "application/octet-stream", "big.bin")
            await a.call("POST", "/v1/messages", json={"to": "bob", "media": [uploaded["id"]]})
            blob_id = bytes.fromhex(uploaded["id"])
            with trio.fail_after(30):
                while True:
                    record = b.running.node.store.get_blob(blob_id)
                    if record is not None and record.have >= 16:
                        break
                    await trio.sleep(0.02)
            b.scope.cancel()
        halfway = len(asked)
        async with node(tmp_path, "bob", a.running) as b:
            await wait_file(b, uploaded["id"], seconds=60)
            served = await b.http.get(f"/v1/media/{uploaded['id']}")
            assert hashlib.sha256(served.content).digest() == hashlib.sha256(data).digest()
        resumed_from = asked[halfway]
        assert resumed_from >= 16  # not from the start


async def _left_at_the_mailbox(
    net: SimNetwork, data: bytes, text: str
) -> tuple[BlobRecord, StoredMessage]:
    """Node 1 (Bob) goes away; node 2 (Alice) sends him ``data`` as a file with
    ``text``, left at node 0's mailbox: returns once the message and all its
    chunks are there."""
    mailbox, bob, alice = net[0], net[1], net[2]
    await net.stop(bob)
    await wait_until(lambda: bob.peer_id not in alice.running.node.online, 30)
    sender = alice.running.node
    record = sender.media.add_file(data, "application/octet-stream", "report.bin")
    sent = await send_media(sender, bob.peer_id, [record.blob_id], text)
    deposits = 1 + -(-len(data) // CHUNK_BYTES)  # the message and each chunk
    await wait_until(lambda: mailbox.store.mailbox_usage(bob.peer_id)[0] >= deposits, 60)
    return record, sent


@pytest.mark.slow
async def test_a_file_reaches_an_offline_recipient_through_a_mailbox(
    sim_network: SimNetworkFactory,
) -> None:
    """Bob is away when Alice sends 5 MiB; Alice leaves too. Bob comes back and
    gets message and file from the mailbox alone."""
    data = os.urandom(5 << 20)
    async with sim_network(3, clock="real", contacts=[(1, 2)], mailboxes=1, upkeep=UPKEEP) as net:
        bob, alice = net[1], net[2]
        record, _ = await _left_at_the_mailbox(net, data, "while you were out")
        await net.stop(alice)
        await net.start(bob)
        receiver = bob.running.node
        await wait_until(
            lambda: (
                (r := receiver.store.get_blob(record.blob_id)) is not None and r.state == "ready"
            ),
            60,
        )
        got = receiver.store.get_blob(record.blob_id)
        assert got is not None
        assert b"".join(receiver.media.read_plain(got, 0, got.size)) == data


@pytest.mark.slow
async def test_an_unsent_file_is_taken_back_from_the_mailbox_before_the_recipient_fetches(
    sim_network: SimNetworkFactory,
) -> None:
    """Bob is away when Alice sends a file; she unsends it: the mailbox gives
    back the message and its chunks, and Bob, back, fetches nothing of it."""
    data = os.urandom(1 << 20)  # 4 chunks
    async with sim_network(3, clock="real", contacts=[(1, 2)], mailboxes=1, upkeep=UPKEEP) as net:
        mailbox, bob, alice = net[0], net[1], net[2]
        record, sent = await _left_at_the_mailbox(net, data, "the plans")
        sender = alice.running.node
        async with serving(sender) as a, serving(mailbox.running.node) as m:
            gone = await a.call("DELETE", f"/v1/messages/{sent.id.hex()}")
            assert gone.status_code == 204
            service = mailbox.running.mailbox
            assert service is not None
            await wait_until(lambda: service.withdrawn >= 5, 60)
            assert service.withdrawn == 5
            # What is left for Bob is at most the unsend itself.
            await wait_until(lambda: sender.store.withdrawals_count() == 0, 30)
            assert mailbox.store.mailbox_usage(bob.peer_id)[0] <= 1
            offered = (await m.call("GET", "/v1/mailboxes")).json()["offered"]
            assert offered["withdrawn"] == 5
            mine = (await a.call("GET", "/v1/mailboxes")).json()["withdrawals"]
            assert mine == {"pending": 0, "withdrawn": 5}
        await net.stop(alice)
        await net.start(bob)
        receiver = bob.running.node
        # Bob fetches what waits (the unsend, held: its message never came).
        await wait_until(lambda: mailbox.store.mailbox_usage(bob.peer_id)[0] == 0, 60)
        assert receiver.store.get_blob(record.blob_id) is None
        got = receiver.store.get_message(sent.id)
        assert got is None or (got.unsent and got.body == b"")


async def test_a_file_over_the_auto_download_limit_waits_until_the_sdk_asks(
    tmp_path: Path,
) -> None:
    async with node(tmp_path, "bob") as b, node(tmp_path, "alice", b.running) as a:
        await befriend(a, b)
        await b.call("PATCH", "/v1/settings", json={"media_auto_download_bytes": 1000})
        data = os.urandom(5 << 20)
        uploaded = await upload(a, data, "application/pdf", "thesis.pdf")
        sent = await a.call("POST", "/v1/messages", json={"to": "bob", "media": [uploaded["id"]]})
        await wait_file(b, uploaded["id"], state="pending")
        got = await b.call("GET", f"/v1/messages/{sent['id']}")
        assert got["media"][0]["state"] == "pending"
        refused = await b.http.get(f"/v1/media/{uploaded['id']}")
        assert refused.status_code == 409
        host, port = b.running.api
        seen: list[int] = []

        def save() -> Path:
            with Client(host, port, b.home.api_token()) as client:
                return client.download(uploaded["id"], tmp_path, on_progress=seen.append)

        path = await trio.to_thread.run_sync(save)
        assert path == tmp_path / "thesis.pdf"
        assert path.read_bytes() == data
        assert seen and seen == sorted(seen)


async def test_over_libp2p_only_the_recipient_gets_chunks(tmp_path: Path) -> None:
    async with (
        node(tmp_path, "bob") as b,
        node(tmp_path, "alice", b.running) as a,
        node(tmp_path, "carol", b.running) as c,
    ):
        await befriend(a, b)
        uploaded = await upload(a, b"secret plans", "text/plain", "plans.txt")
        await a.call("POST", "/v1/messages", json={"to": "bob", "media": [uploaded["id"]]})
        await wait_file(b, uploaded["id"])
        alice_id, blob_id = a.running.node.peer_id, bytes.fromhex(uploaded["id"])

        async def ask(asker: Peer, wanted: bytes) -> bytes:
            stream = await asker.running.host.open_stream(
                alice_id, BLOB_PROTOCOL, a.running.node.addrs
            )
            async with stream:
                await stream.write_frame(BlobRequest(wanted, 0, 1).encode(), 5)
                frame = await stream.read_frame(128, 5)
                assert frame is not None
                return frame

        known, unknown = await ask(c, blob_id), await ask(c, os.urandom(32))
        assert known == unknown == BlobReply(False).encode()
        assert BlobReply.decode(await ask(b, blob_id)) == BlobReply(True, 1)


def holds(peer: Peer, message_id: str) -> bool:
    """Whether ``peer``'s node has the message."""
    try:
        peer.running.node.message(message_id)
    except NotFound:
        return False
    return True


async def test_forwarded_files_texts_and_places_reach_a_third_node(tmp_path: Path) -> None:
    """Alice sends Bob a photo with a caption; Bob forwards it (and a text and a
    place) to Carol, who gets them from Bob's node as his own messages."""
    async with (
        node(tmp_path, "bob") as b,
        node(tmp_path, "alice", b.running) as a,
        node(tmp_path, "carol", b.running) as c,
    ):
        await befriend(a, b)
        carol_invite = (await c.call("GET", "/v1/node"))["invite"]
        await b.call("POST", "/v1/contacts", json={"invite": carol_invite, "name": "carol"})
        bob_invite = (await b.call("GET", "/v1/node"))["invite"]
        await c.call("POST", "/v1/contacts", json={"invite": bob_invite, "name": "bob"})

        uploaded = await upload(a, photo_with_gps(), "image/jpeg", "cake.jpg")
        photo = await a.call(
            "POST", "/v1/messages", json={"to": "bob", "media": [uploaded["id"]], "text": "cake"}
        )
        text = await a.call("POST", "/v1/messages", json={"to": "bob", "text": "at five"})
        place = await a.call(
            "POST",
            "/v1/messages",
            json={"to": "bob", "location": {"lat": 52.52, "lon": 13.405, "label": "Bakery"}},
        )
        await wait_until(lambda: holds(b, place["id"]), 30)
        await wait_file(b, uploaded["id"])

        copies = []
        for original in (photo, text, place):
            response = await b.http.post(
                f"/v1/messages/{original['id']}/forward", json={"to": "carol"}
            )
            assert response.status_code == 201, response.text
            copy = response.json()
            assert copy["direction"] == "out" and copy["id"] != original["id"]
            copies.append(copy)
        assert copies[0]["text"] == "cake" and copies[0]["media"][0]["id"] == uploaded["id"]
        assert copies[1]["text"] == "at five"
        assert copies[2]["location"] == {"lat": 52.52, "lon": 13.405, "label": "Bakery"}

        # Carol gets the three from Bob, the photo's bytes fetched from Bob's node.
        await wait_file(c, uploaded["id"])
        await wait_until(lambda: all(holds(c, copy["id"]) for copy in copies), 30)
        got = (await c.call("GET", "/v1/conversations/bob/messages"))["messages"]
        assert {m["peer"] for m in got} == {str(b.running.node.peer_id)}
        assert sorted(m["text"] or "" for m in got) == ["", "at five", "cake"]
        served = await c.http.get(f"/v1/media/{uploaded['id']}")
        original_bytes = await b.http.get(f"/v1/media/{uploaded['id']}")
        assert served.status_code == 200 and served.content == original_bytes.content

        # A retry with the same key makes no second copy.
        again = [
            await b.http.post(
                f"/v1/messages/{text['id']}/forward",
                json={"to": "carol", "idempotency_key": "fwd-1"},
            )
            for _ in range(2)
        ]
        assert [r.status_code for r in again] == [201, 200]
        assert again[0].json()["id"] == again[1].json()["id"]


async def test_what_cannot_be_forwarded_is_refused_with_the_reason(tmp_path: Path) -> None:
    async with node(tmp_path, "bob") as b, node(tmp_path, "alice", b.running) as a:
        await befriend(a, b)
        await b.call("PATCH", "/v1/settings", json={"media_auto_download_bytes": 0})
        uploaded = await upload(a, b"minutes of the meeting", "text/plain", "minutes.txt")
        sent = await a.call("POST", "/v1/messages", json={"to": "bob", "media": [uploaded["id"]]})
        await wait_file(b, uploaded["id"], state="pending")
        refused = await b.http.post(f"/v1/messages/{sent['id']}/forward", json={"to": "alice"})
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["code"] == "action_refused"
        assert error["message"].startswith("minutes.txt is not on this node yet")

        mine = await a.call("POST", "/v1/messages", json={"to": "bob", "text": "oops"})
        await a.call("DELETE", f"/v1/messages/{mine['id']}")
        refused = await a.http.post(f"/v1/messages/{mine['id']}/forward", json={"to": "bob"})
        assert refused.status_code == 422 and "unsent" in refused.json()["error"]["message"]

        unknown = await a.http.post(f"/v1/messages/{'0' * 32}/forward", json={"to": "bob"})
        assert unknown.status_code == 404
        nobody = await a.http.post(f"/v1/messages/{sent['id']}/forward", json={"to": "zed"})
        assert nobody.status_code == 404
        extra = await a.http.post(
            f"/v1/messages/{sent['id']}/forward", json={"to": "bob", "text": "x"}
        )
        assert extra.status_code == 400
