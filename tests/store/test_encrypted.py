"""With a passphrase the whole store is encrypted at rest (SQLCipher)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from p2pdm.core.identity import Identity
from p2pdm.daemon.home import ENV_PASSPHRASE, Home
from p2pdm.errors import PassphraseError, StoreError
from p2pdm.node.messenger import Messenger
from p2pdm.store.cipher import PLAIN_HEADER, connect_encrypted, db_errors, integrity_errors
from p2pdm.store.sqlite import SQLiteStore
from tests.conftest import FAST_KDF
from tests.store.test_sqlite import outbox_item

TEXT = "meet me under the old clock tower at nine"


def home_of(tmp_path: Path, name: str, passphrase: str | None) -> Home:
    env = {ENV_PASSPHRASE: passphrase} if passphrase else {}
    return Home(tmp_path / name, env=env, kdf_limits=FAST_KDF)


def store_bytes(home: Home) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.path.glob("store.sqlite*")))


def exchange(alice_home: Home, bob_home: Home) -> None:
    """Alice sends TEXT to Bob through the homes' own stores (left open: -wal too)."""
    a_id, b_id = alice_home.load_identity(), bob_home.load_identity()
    now = int(time.time() * 1000)
    with closing(alice_home.open_store()) as a_store, closing(bob_home.open_store()) as b_store:
        alice, bob = Messenger(a_id, a_store, now_ms=lambda: now), Messenger(b_id, b_store)
        alice.add_contact(b_id.peer_id, "bob", bob.bundle())
        bob.receive(alice.send_text(b_id.peer_id, TEXT).outbox.envelope)
        assert (alice_home.path / "store.sqlite-wal").exists()
        for home in (alice_home, bob_home):
            assert TEXT.encode() not in store_bytes(home)


def test_a_passphrase_home_stores_nothing_readable(tmp_path: Path) -> None:
    alice, bob = home_of(tmp_path, "alice", "pw a"), home_of(tmp_path, "bob", "pw b")
    alice.create_identity("alice")
    bob.create_identity("bob")
    exchange(alice, bob)
    for home in (alice, bob):
        assert not home.store_path.read_bytes().startswith(PLAIN_HEADER)
        assert TEXT.encode() not in store_bytes(home)
        assert b"alice" not in store_bytes(home)  # contact and display names too
    # A fresh start with the right passphrase reads it back.
    again = home_of(tmp_path, "bob", "pw b")
    with closing(again.open_store()) as store:
        assert store.get_setting("name") == "bob"
        assert store.counts()["messages"] == 1
    # Without the key it is no database at all.
    with closing(sqlite3.connect(bob.store_path)) as db, pytest.raises(sqlite3.DatabaseError):
        db.execute("SELECT * FROM sqlite_master").fetchall()


def test_a_wrong_passphrase_is_one_clear_error(tmp_path: Path) -> None:
    home_of(tmp_path, "bob", "right").create_identity("bob")
    with pytest.raises(PassphraseError, match=r"wrong passphrase for .*identity\.cbor"):
        home_of(tmp_path, "bob", "wrong").open_store()
    # A store whose key does not match (another home's store copied in).
    with pytest.raises(StoreError, match=r"cannot open message store .*wrong key") as caught:
        SQLiteStore(home_of(tmp_path, "bob", "right").store_path, key=bytes(32))
    assert "\n" not in str(caught.value)


def test_without_a_passphrase_the_store_stays_plain(tmp_path: Path) -> None:
    alice, bob = home_of(tmp_path, "alice", None), home_of(tmp_path, "bob", None)
    alice.create_identity("alice")
    bob.create_identity("bob")
    with closing(bob.open_store()):
        pass
    assert bob.store_path.read_bytes().startswith(PLAIN_HEADER)


def test_a_plain_store_of_a_passphrase_home_is_encrypted_in_place(tmp_path: Path) -> None:
    """A home from before store encryption: its plain store (messages and a
    -wal included) becomes an encrypted one, and nothing plain stays behind."""
    home = home_of(tmp_path, "bob", "pw")
    home.create_identity("bob")
    identity = home.load_identity()
    for old in home.path.glob("store.sqlite*"):
        old.unlink()
    peer = Identity(bytes(range(32)))
    with closing(SQLiteStore(home.store_path)) as plain:
        plain.set_setting("name", "bob")
        sender = Messenger(peer, SQLiteStore(":memory:"))
        receiver = Messenger(identity, plain)
        sender.add_contact(identity.peer_id, "bob", receiver.bundle())
        receiver.receive(sender.send_text(identity.peer_id, TEXT).outbox.envelope)
        assert TEXT.encode() in store_bytes(home)
    with closing(home_of(tmp_path, "bob", "pw").open_store()) as store:
        assert store.counts()["messages"] == 1
        assert store.get_setting("name") == "bob"
    assert not home.store_path.read_bytes().startswith(PLAIN_HEADER)
    assert TEXT.encode() not in store_bytes(home)
    assert sorted(p.name for p in home.path.iterdir() if "encrypting" in p.name) == []


def test_the_encrypted_stores_errors_are_the_same_store_errors(tmp_path: Path) -> None:
    """SQLCipher's error classes are not sqlite3's: the store catches both
    (a refused duplicate and a failed statement each become one StoreError)."""
    home = home_of(tmp_path, "bob", "pw")
    home.create_identity("bob")
    with closing(home.open_store()) as store:
        store.add_outbox(outbox_item(1))
        with pytest.raises(StoreError, match="already in the outbox"):
            store.add_outbox(outbox_item(1))
        assert store.get_outbox(outbox_item(1).envelope_id) is not None
    import sqlcipher3

    assert sqlcipher3.dbapi2.Error in db_errors()
    assert sqlcipher3.dbapi2.IntegrityError in integrity_errors()
    with closing(connect_encrypted(str(tmp_path / "x.sqlite"), bytes(32), 1.0)) as db:
        with pytest.raises(sqlcipher3.dbapi2.OperationalError):
            db.execute("SELECT * FROM no_such_table")
        try:
            db.execute("SELECT * FROM no_such_table")
        except db_errors() as exc:
            assert not isinstance(exc, sqlite3.Error)  # caught as SQLCipher's own


#: Opens a plain store, has it refuse a duplicate and fail a statement, and
#: prints what it raised and whether SQLCipher was ever loaded.
_PLAIN_PROBE = """
import json, sys
from pathlib import Path
from p2pdm.errors import StoreError
from p2pdm.store.sqlite import SQLiteStore
from tests.store.test_sqlite import outbox_item
store = SQLiteStore(Path(sys.argv[1]))
store.add_outbox(outbox_item(1))
errors = []
try:
    store.add_outbox(outbox_item(1))
except StoreError as exc:
    errors.append(str(exc))
store.close()
print(json.dumps({"errors": errors, "sqlcipher": "sqlcipher3" in sys.modules}))
"""


def test_a_plain_store_never_loads_sqlcipher(tmp_path: Path) -> None:
    """SQLCipher (4.7 MiB with its OpenSSL) loads on the first encrypted
    connection only; a plain store's errors are still caught as before."""
    done = subprocess.run(
        [sys.executable, "-c", _PLAIN_PROBE, str(tmp_path / "store.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["sqlcipher"] is False
    assert len(report["errors"]) == 1
    assert "already in the outbox" in report["errors"][0]
