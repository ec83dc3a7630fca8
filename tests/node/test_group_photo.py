"""A group's photo: set from an upload by an admin, carried in the signed log,
shown by every member; non-pictures, bombs and non-admins refused
(docs/protocol.md §19.1, §19.5)."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from p2pdm.core.groups import photo_tag, photo_type
from p2pdm.core.model import EventType
from p2pdm.errors import GroupRefused, MediaRefused, NotFound
from p2pdm.limits import MAX_GROUP_PHOTO_BYTES
from p2pdm.node.avatar import make_group_photo
from p2pdm.node.node import Node
from tests.conftest import make_node
from tests.media_files import bomb_png, photo_with_gps
from tests.node.conftest import acquainted, flush


def picture(width: int = 900, height: int = 600, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(out, fmt)
    return out.getvalue()


def test_a_group_photo_is_a_small_square_webp_without_metadata() -> None:
    made = make_group_photo(photo_with_gps(640, 320))
    assert photo_type(made) == "image/webp" and len(made) <= MAX_GROUP_PHOTO_BYTES
    with Image.open(io.BytesIO(made)) as shown:
        assert shown.width == shown.height <= 256
        assert not shown.getexif()
    assert b"PhoneMaker" not in made


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"plain text, no picture", "not a readable"),
        (bomb_png(), "decompression bomb"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "not a readable"),
    ],
)
def test_what_is_no_picture_is_refused_with_a_reason(data: bytes, said: str) -> None:
    with pytest.raises(MediaRefused, match=said):
        make_group_photo(data)


async def _group(nodes: tuple[Node, ...]) -> bytes:
    alice, *others = nodes
    gid = (await alice.create_group("photos", [n.peer_id for n in others])).row.id
    flush(*nodes)
    return gid


async def test_every_member_sees_the_photo_an_admin_sets() -> None:
    nodes = tuple(make_node(n) for n in ("alice", "bob", "carol"))
    acquainted(*nodes)
    alice, bob, carol = nodes
    gid = await _group(nodes)
    upload = alice.media.add_file(picture(), "image/png", "beach.png")
    info = await alice.set_group_photo(gid, upload.blob_id)
    photo = info.state.photo
    assert photo is not None and photo_type(photo) == "image/webp"
    flush(*nodes)
    for n in (bob, carol):
        assert n.group_info(gid).state.photo == photo
        changed = [
            json.loads(e.detail or "{}")
            for e in n.store.events(0, 100, [EventType.GROUP_CHANGED], None)
        ]
        assert {"kind": "photo", "photo": photo_tag(photo)}.items() <= changed[-1].items()
    # Only admins change it; nothing is sent for a refused change.
    own = bob.media.add_file(picture(), "image/png", "mine.png")
    with pytest.raises(GroupRefused, match="admins"):
        await bob.set_group_photo(gid, own.blob_id)
    # Someone else's file, or none, is no upload of ours.
    with pytest.raises(NotFound):
        await alice.set_group_photo(gid, bytes(32))
    text = alice.media.add_file(b"not a picture", "text/plain", "notes.txt")
    with pytest.raises(MediaRefused):
        await alice.set_group_photo(gid, text.blob_id)
    assert alice.group_info(gid).log_length == 2
    # Removing it reaches everyone as well.
    await alice.set_group_photo(gid, None)
    flush(*nodes)
    for n in nodes:
        assert n.group_info(gid).state.photo is None
    assert alice.group_info(gid).log_length == 3
