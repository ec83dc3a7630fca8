"""Moving a node to another machine: `p2pdm export` and `p2pdm import`, below the CLI.

The archive round trip on real SQLite files (plain and encrypted homes both
ways), every way an archive can be bad, the refusals that keep a home from
being overwritten or run twice, and a move of a running node on loopback:
its contact's next message decrypts on the new machine.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pdm.core import cbor
from p2pdm.core.identity import Identity
from p2pdm.core.model import Contact, DeliveryStatus, Direction, StoredMessage
from p2pdm.daemon.archive import (
    ARCHIVE_VERSION,
    MAX_ARCHIVE_BYTES,
    ArchiveContents,
    Exported,
    ExportMark,
    check_not_exported,
    export_home,
    import_home,
    open_archive,
    seal_archive,
)
from p2pdm.daemon.home import Home
from p2pdm.daemon.lockfile import HomeLock
from p2pdm.errors import ArchiveError, HomeError, StoreError
from p2pdm.node.messenger import message_text
from p2pdm.store import snapshot
from p2pdm.store.cipher import PLAIN_HEADER, connect_encrypted
from p2pdm.store.search_text import SEARCH_TEXT_FUNCTION, search_text
from tests.conftest import FAST_KDF, node, wait_for_status
from tests.daemon.conftest import fast_home

ARCHIVE_PASSPHRASE = "correct horse battery staple"
HOME_PASSPHRASE = "the old machine's passphrase"


def populate(home: Home) -> None:
    """A contact, a session, two messages and a setting, as a used node has."""
    home.create_identity("alice")
    bob = Identity.generate(os.urandom(32)).peer_id
    with closing(home.open_store()) as store:
        store.put_contact(Contact(bob, "bob", 1, addrs=("/ip4/127.0.0.1/tcp/4001",)))
        store.put_session(bob, b"ratchet state", 2)
        for n, direction in enumerate((Direction.OUT, Direction.IN)):
            store.add_message(
                StoredMessage(
                    id=bytes([n]) * 16,
                    conversation_id=b"c" * 16,
                    peer=bob,
                    direction=direction,
                    kind="text",
                    body=cbor.encode({"text": f"message {n}"}),
                    sent_at_ms=10 + n,
                    stored_at_ms=20 + n,
                    status=DeliveryStatus.DELIVERED,
                )
            )
        store.set_setting("read_receipts", False)
    (home.path / "config.toml").write_text('listen = ["/ip4/127.0.0.1/tcp/4701"]\n')


def dump(home: Home) -> dict[str, Any]:
    """Every row of every table (and the AUTOINCREMENT counters) of the home's store."""
    home.load_identity()
    key = home.store_key
    db = (
        sqlite3.connect(home.store_path)
        if key is None
        else connect_encrypted(str(home.store_path), key, 5.0)
    )
    with closing(db):
        # The search index reads its text through a view that calls this.
        db.create_function(SEARCH_TEXT_FUNCTION, 2, search_text, deterministic=True)
        names = [
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
        tables = {name: sorted(db.execute(f'SELECT * FROM "{name}"').fetchall()) for name in names}
        (tables["user_version"],) = db.execute("PRAGMA user_version").fetchone()
    return tables


def export(home: Home, archive: Path, passphrase: str = ARCHIVE_PASSPHRASE) -> Exported:
    return export_home(home, archive, lambda: passphrase)


def import_(home: Home, archive: Path, passphrase: str = ARCHIVE_PASSPHRASE) -> None:
    import_home(home, archive, lambda: passphrase)


def assert_empty(home: Home) -> None:
    """Nothing of a node was left behind in ``home``."""
    if home.path.exists():
        assert {p.name for p in home.path.iterdir()} <= {"node.lock"}


@pytest.mark.parametrize(
    ("old_passphrase", "new_passphrase"),
    [(None, None), (HOME_PASSPHRASE, None), (None, "new"), (HOME_PASSPHRASE, "new")],
    ids=["plain-to-plain", "encrypted-to-plain", "plain-to-encrypted", "encrypted-to-encrypted"],
)
def test_round_trip_restores_every_row_identity_and_config(
    tmp_path: Path, old_passphrase: str | None, new_passphrase: str | None
) -> None:
    old = fast_home(tmp_path, "old", old_passphrase)
    populate(old)
    archive = tmp_path / "alice.p2pdm"
    export(old, archive)
    assert archive.stat().st_mode & 0o777 == 0o600
    before = sorted(p.name for p in old.path.iterdir())

    new = fast_home(tmp_path, "new", new_passphrase)
    import_(new, archive)

    assert new.load_identity().seed == old.load_identity().seed
    assert dump(new) == dump(old)
    assert new.config_path.read_bytes() == old.config_path.read_bytes()
    # The new store is under the new home's key, or plain without one.
    assert new.store_path.read_bytes().startswith(PLAIN_HEADER) == (new_passphrase is None)
    assert new.store_key != old.store_key or new_passphrase is None
    # No copy of the store was left beside the old one: only the mark was added.
    assert before == sorted(p.name for p in old.path.iterdir())
    assert "exported.json" in before


@pytest.mark.parametrize("passphrase", [None, HOME_PASSPHRASE], ids=["plain", "encrypted"])
def test_the_copy_is_consistent_while_a_writer_is_mid_transaction(
    tmp_path: Path, passphrase: str | None
) -> None:
    """A node writing at the time of the export neither blocks it nor leaks half a
    transaction into it: the archive holds what was committed."""
    old = fast_home(tmp_path, "old", passphrase)
    populate(old)
    committed = dump(old)
    with closing(old.open_store()) as store, store.transaction():
        store.set_setting("written during the export", True)
        store.put_session(Identity.generate(os.urandom(32)).peer_id, b"half done", 3)
        export(old, tmp_path / "a.p2pdm")
    new = fast_home(tmp_path, "new", passphrase)
    import_(new, tmp_path / "a.p2pdm")
    assert dump(new) == committed


def test_the_home_keeps_its_own_config(tmp_path: Path) -> None:
    old = fast_home(tmp_path, "old")
    populate(old)
    export(old, tmp_path / "a.p2pdm")
    new = fast_home(tmp_path, "new")
    new.ensure()
    new.config_path.write_text("mailbox = true\n")
    done = import_home(new, tmp_path / "a.p2pdm", lambda: ARCHIVE_PASSPHRASE)
    assert (done.config_kept, done.config_restored) == (True, False)
    assert new.config_path.read_text() == "mailbox = true\n"


def test_the_archive_reveals_nothing_without_its_passphrase(tmp_path: Path) -> None:
    home = fast_home(tmp_path, "old")
    populate(home)
    archive = tmp_path / "a.p2pdm"
    export(home, archive)
    data = archive.read_bytes()
    assert home.load_identity().seed not in data
    assert b"message 0" not in data and b"SQLite format 3" not in data
    assert cbor.decode(data, MAX_ARCHIVE_BYTES)["version"] == ARCHIVE_VERSION


def test_a_wrong_passphrase_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    old = fast_home(tmp_path, "old")
    populate(old)
    archive = tmp_path / "a.p2pdm"
    export(old, archive)
    new = fast_home(tmp_path, "new")
    with pytest.raises(ArchiveError, match=r"^wrong passphrase for .*a\.p2pdm"):
        import_(new, archive, "not the passphrase")
    assert_empty(new)


def test_an_empty_passphrase_is_refused_both_ways(tmp_path: Path) -> None:
    old = fast_home(tmp_path, "old")
    populate(old)
    with pytest.raises(ArchiveError, match="empty"):
        export(old, tmp_path / "a.p2pdm", "")
    assert not (tmp_path / "a.p2pdm").exists()
    assert ExportMark.read(old) is None
    export(old, tmp_path / "a.p2pdm")
    with pytest.raises(ArchiveError, match="empty"):
        import_(fast_home(tmp_path, "new"), tmp_path / "a.p2pdm", "")


def test_export_never_overwrites_a_file(tmp_path: Path) -> None:
    home = fast_home(tmp_path, "old")
    populate(home)
    archive = tmp_path / "a.p2pdm"
    archive.write_bytes(b"something precious")
    with pytest.raises(ArchiveError, match="already exists"):
        export(home, archive)
    assert archive.read_bytes() == b"something precious"
    assert ExportMark.read(home) is None


@pytest.mark.parametrize("what", ["identity", "store"])
def test_import_refuses_a_home_that_is_not_empty(tmp_path: Path, what: str) -> None:
    old = fast_home(tmp_path, "old")
    populate(old)
    archive = tmp_path / "a.p2pdm"
    export(old, archive)
    new = fast_home(tmp_path, "new")
    new.create_identity("someone else")
    if what == "store":
        new.identity_path.unlink()  # a store left without its identity is kept too
    kept = {p.name: p.read_bytes() for p in new.path.iterdir() if p.is_file()}
    with pytest.raises(HomeError, match=r"already holds .*empty home only.*nothing was changed"):
        import_home(new, archive, lambda: pytest.fail("the passphrase was asked for nothing"))
    assert {p.name: p.read_bytes() for p in new.path.iterdir() if p.is_file()} == kept


@pytest.fixture
def archive_bytes(tmp_path: Path) -> bytes:
    home = fast_home(tmp_path, "old")
    populate(home)
    export(home, tmp_path / "good.p2pdm")
    return (tmp_path / "good.p2pdm").read_bytes()


def test_truncated_and_garbled_archives_are_refused_cleanly(
    tmp_path: Path, archive_bytes: bytes
) -> None:
    new = fast_home(tmp_path, "new")
    bad = tmp_path / "bad.p2pdm"
    n = len(archive_bytes)
    damaged = [archive_bytes[:cut] for cut in (0, 1, 10, 60, n // 2, n - 1)]
    for at in (0, 5, 40, 70, n // 2, n - 1):  # header, salt, sealed data, MAC
        flipped = bytearray(archive_bytes)
        flipped[at] ^= 0x55
        damaged.append(bytes(flipped))
    damaged += [os.urandom(n), b"SQLite format 3\x00" + bytes(100), archive_bytes + b"\x00"]
    for data in damaged:
        bad.write_bytes(data)
        with pytest.raises(ArchiveError) as caught:
            import_(new, bad)
        assert str(bad) in str(caught.value) and "\n" not in str(caught.value)
        assert_empty(new)


def test_an_oversized_archive_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.p2pdm"
    with open(huge, "wb") as file:
        file.truncate(MAX_ARCHIVE_BYTES + 1)  # sparse: no disk used
    new = fast_home(tmp_path, "new")
    with pytest.raises(ArchiveError, match="over the 1073741824-byte limit"):
        import_(new, huge)
    assert_empty(new)


def test_unknown_versions_and_other_files_say_what_they_are(
    tmp_path: Path, archive_bytes: bytes
) -> None:
    outer = cbor.decode(archive_bytes, MAX_ARCHIVE_BYTES)
    with pytest.raises(ArchiveError, match="format version 2, this p2pdm reads version 1"):
        open_archive(cbor.encode({**outer, "version": 2}), ARCHIVE_PASSPHRASE, "x")
    with pytest.raises(ArchiveError, match="is not a p2pdm export archive"):
        open_archive(cbor.encode({**outer, "format": "zip"}), ARCHIVE_PASSPHRASE, "x")
    with pytest.raises(ArchiveError, match="unknown key derivation"):
        open_archive(cbor.encode({**outer, "kdf": "scrypt"}), ARCHIVE_PASSPHRASE, "x")
    with pytest.raises(ArchiveError, match="damaged"):  # an unknown field
        open_archive(cbor.encode({**outer, "extra": 1}), ARCHIVE_PASSPHRASE, "x")
    # A cost a hostile file could use to make the import allocate without limit.
    with pytest.raises(ArchiveError, match="memlimit"):
        open_archive(cbor.encode({**outer, "memlimit": 1 << 40}), ARCHIVE_PASSPHRASE, "x")


def test_sealed_contents_that_are_not_an_export_are_refused(tmp_path: Path) -> None:
    """Authenticated, yet wrong inside (a broken or newer writer): refused by field."""
    good = ArchiveContents(bytes(32), "alice", b"not a database", None, 0)
    data = seal_archive(good, ARCHIVE_PASSPHRASE, os.urandom, FAST_KDF)
    bad = tmp_path / "bad.p2pdm"
    bad.write_bytes(data)
    new = fast_home(tmp_path, "new")
    with pytest.raises(StoreError, match="cannot restore the message store"):
        import_(new, bad)
    assert_empty(new)
    short_seed = ArchiveContents(bytes(31), "alice", b"", None, 0)
    data = seal_archive(short_seed, ARCHIVE_PASSPHRASE, os.urandom, FAST_KDF)
    with pytest.raises(ArchiveError, match="seed"):
        open_archive(data, ARCHIVE_PASSPHRASE, "x")


def test_the_exported_home_refuses_to_run_until_forced(tmp_path: Path) -> None:
    home = fast_home(tmp_path, "old")
    populate(home)
    archive = tmp_path / "a.p2pdm"
    export(home, archive)
    with pytest.raises(HomeError) as caught:
        check_not_exported(home, force=False)
    message = str(caught.value)
    assert f"exported to {archive} at 2023-11-14 22:13 UTC" in message
    assert "decrypt" in message and "run --force" in message
    cleared = check_not_exported(home, force=True)
    assert cleared is not None and cleared.archive == str(archive)
    assert check_not_exported(home, force=False) is None  # the mark is gone


def test_a_damaged_mark_still_refuses(tmp_path: Path) -> None:
    home = fast_home(tmp_path, "old")
    populate(home)
    ExportMark.path(home).write_bytes(b"\xff not json")
    with pytest.raises(HomeError, match=r"^this home was exported; "):
        check_not_exported(home, force=False)


def test_export_holds_the_home_lock_when_no_node_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No node can start between the copy of the store and the mark."""
    home = fast_home(tmp_path, "old")
    populate(home)
    copy = snapshot.plain_image

    def copy_while_a_node_tries_to_start(path: Path, key: bytes | None) -> bytes:
        with pytest.raises(HomeError, match="a node is running"), HomeLock(home.path):
            pass
        return copy(path, key)

    monkeypatch.setattr(snapshot, "plain_image", copy_while_a_node_tries_to_start)
    done = export(home, tmp_path / "a.p2pdm")
    assert done.node_was_running is False
    with HomeLock(home.path):  # released afterwards
        pass


@pytest.mark.net
@pytest.mark.slow
async def test_a_running_node_moves_and_its_sessions_continue(tmp_path: Path) -> None:
    """Alice and Bob talk; Alice exports while her node runs, stops it, imports into a
    new home and starts there: Bob's next message decrypts there, her reply reaches Bob."""
    archive = tmp_path / "alice.p2pdm"
    async with node(tmp_path, "bob") as bob:
        async with node(tmp_path, "alice", bob.running) as alice:
            await alice.call("POST", "/v1/contacts", json={"invite": bob.running.node.invite()})
            await bob.call("POST", "/v1/contacts", json={"invite": alice.running.node.invite()})
            hello = await alice.call("POST", "/v1/messages", json={"to": "bob", "text": "hi"})
            await wait_for_status(alice, hello["id"], "delivered", 20)
            back = await bob.call("POST", "/v1/messages", json={"to": "alice", "text": "hey"})
            await wait_for_status(bob, back["id"], "delivered", 20)
            done = await trio.to_thread.run_sync(
                lambda: export_home(alice.home, archive, lambda: ARCHIVE_PASSPHRASE)
            )
            assert done.node_was_running is True
            alice_id = alice.id
        # Alice's old machine is off; her archive goes to the new one.
        new_home = Home(tmp_path / "alice-new", env={})
        await trio.to_thread.run_sync(lambda: import_(new_home, archive))
        with pytest.raises(HomeError, match="exported"):
            check_not_exported(Home(tmp_path / "alice", env={}), force=False)

        async with node(tmp_path, "alice-new", bob.running) as moved:
            assert moved.id == alice_id
            after = await bob.call(
                "POST", "/v1/messages", json={"to": "alice", "text": "you moved?"}
            )
            await wait_for_status(bob, after["id"], "delivered", 30)
            texts = [
                message_text(m)
                for m in moved.running.node.messages(bob.running.node.peer_id).messages
            ]
            assert sorted(t or "" for t in texts) == ["hey", "hi", "you moved?"]
            reply = await moved.call("POST", "/v1/messages", json={"to": "bob", "text": "yes"})
            await wait_for_status(moved, reply["id"], "delivered", 30)
            got = bob.running.node.messages(moved.running.node.peer_id).messages
            assert sorted(message_text(m) or "" for m in got if m.direction is Direction.IN) == [
                "hi",
                "yes",
            ]
