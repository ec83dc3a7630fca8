"""The identity seed lives only in the (encrypted) identity file.

A copy of any other file in the home — the store, its write-ahead log, a
``replaced-*`` folder — must not give the key away. These tests run the code
that persists prekeys and sessions, then look for the seed and the keys
derived from it in every file of the home, in every encoding we can think of.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import nacl.signing
import pytest
import trio

from p2pdm.core import cbor
from p2pdm.core.identity import Identity
from p2pdm.core.session import OwnPrekeys
from p2pdm.daemon.home import ENV_PASSPHRASE, Home
from p2pdm.daemon.runner import Running, RunOptions, run_node
from p2pdm.limits import SIGNED_PREKEY_ROTATION_SECONDS
from p2pdm.node.messenger import Messenger
from p2pdm.store import schema
from p2pdm.store.search_text import SEARCH_TEXT_FUNCTION, search_text
from p2pdm.store.sqlite import SQLiteStore
from tests.conftest import FAST_KDF

PASSPHRASE = "correct horse battery staple"


def secret_keys(identity: Identity) -> dict[str, bytes]:
    """The seed, the 64-byte Ed25519 secret key and the X25519 private key."""
    signing = nacl.signing.SigningKey(identity.seed)
    return {
        "seed": identity.seed,
        "ed25519 secret key": bytes(signing._signing_key),
        "x25519 private key": identity.x25519_private_key,
    }


def _base64_forms(secret: bytes) -> Iterator[bytes]:
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        yield encode(secret)
        yield encode(secret).rstrip(b"=")
        # Inside a longer base64 string the secret may start at any of three
        # alignments: keep only the characters made of the secret's bits alone.
        for offset in range(3):
            text = encode(bytes(offset) + secret + bytes(3))
            first = -(-8 * offset // 6)
            last = 8 * (offset + len(secret)) // 6
            yield text[first:last]


def encodings(secret: bytes) -> dict[str, bytes]:
    """Every way we can think of that ``secret`` could sit in a file."""
    as_text = secret.decode("latin-1")  # how the x3dh library keeps bytes in JSON
    forms: dict[str, bytes] = {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "json ints": json.dumps(list(secret)).encode(),
        "json ints, compact": json.dumps(list(secret), separators=(",", ":")).encode(),
        "json latin-1 escaped": json.dumps(as_text)[1:-1].encode(),
        "latin-1 as utf-8": as_text.encode("utf-8"),
    }
    for n, form in enumerate(_base64_forms(secret)):
        forms[f"base64 #{n}"] = form
    return forms


def _case_free(form: str) -> bool:
    return "hex" in form or "escaped" in form


def leaks(home: Path, identities: list[Identity]) -> list[str]:
    """``file: what (encoding)`` for each secret found in any file under ``home``."""
    needles = [
        (f"{what} of {identity.peer_id.short()} ({form})", needle)
        for identity in identities
        for what, secret in secret_keys(identity).items()
        for form, needle in encodings(secret).items()
    ]
    found = []
    files = sorted(p for p in home.rglob("*") if p.is_file())
    assert files, f"nothing to scan in {home}"
    for path in files:
        data = path.read_bytes()
        upper = data.upper()  # hex digits and \u escapes may be in either case
        found += [
            f"{path.relative_to(home)}: {name}"
            for name, needle in needles
            if needle in data or (_case_free(name) and needle.upper() in upper)
        ]
    return found


def passphrase_home(tmp_path: Path, name: str) -> Home:
    home = Home(tmp_path / name, env={ENV_PASSPHRASE: PASSPHRASE}, kdf_limits=FAST_KDF)
    if not home.has_identity():
        home.create_identity(name)
    return home


def test_the_scanner_finds_a_seed_in_each_encoding(tmp_path: Path) -> None:
    identity = Identity(bytes(range(32)))
    for form, needle in encodings(identity.x25519_private_key).items():
        (tmp_path / "f").write_bytes(b"{'x': '" + needle + b"'}")
        assert leaks(tmp_path, [identity]), form
    long_b64 = base64.b64encode(b"prefix-of-7" + identity.seed + b"tail")
    (tmp_path / "f").write_bytes(long_b64)
    assert leaks(tmp_path, [identity])


def test_prekeys_and_sessions_are_saved_without_the_identity_seed(tmp_path: Path) -> None:
    """Init with a passphrase (twice, leaving a replaced-* folder), exchange
    messages both ways on the homes' own stores, rotate the signed prekeys:
    no file in either home holds either identity's secret key."""
    alice_home = passphrase_home(tmp_path, "alice")
    first = alice_home.load_identity()
    alice_home.create_identity("alice", force=True)
    bob_home = passphrase_home(tmp_path, "bob")
    alice_id, bob_id = alice_home.load_identity(), bob_home.load_identity()
    now = [int(time.time() * 1000)]
    with closing(alice_home.open_store()) as a_store, closing(bob_home.open_store()) as b_store:
        alice = Messenger(alice_id, a_store, now_ms=lambda: now[0])
        bob = Messenger(bob_id, b_store, now_ms=lambda: now[0])
        alice.add_contact(bob_id.peer_id, "bob", bob.bundle())
        bob.add_contact(alice_id.peer_id, "alice", alice.bundle())
        for round_ in range(3):
            bob.receive(alice.send_text(bob_id.peer_id, f"hi {round_}").outbox.envelope)
            alice.receive(bob.send_text(alice_id.peer_id, f"ho {round_}").outbox.envelope)
            now[0] += SIGNED_PREKEY_ROTATION_SECONDS * 1000
            assert alice.rotate_prekeys() and bob.rotate_prekeys()
        assert a_store.get_session(bob_id.peer_id) is not None
        # While open: the -wal and -shm files are there too.
        assert list(alice_home.path.glob("store.sqlite-wal"))
        assert leaks(tmp_path, [first, alice_id, bob_id]) == []
    assert list(alice_home.path.glob("replaced-*/store.sqlite"))
    assert leaks(tmp_path, [first, alice_id, bob_id]) == []
    # And the saved state still works: a restart reads it back.
    with closing(alice_home.open_store()) as a_store:
        restarted = Messenger(alice_id, a_store, now_ms=lambda: now[0])
        assert restarted.bundle() == alice.bundle()


async def _running(home: Home, nursery: trio.Nursery, *bootstrap: Running) -> Running:
    options = RunOptions(
        listen=("/ip4/127.0.0.1/tcp/0",),
        api=("127.0.0.1", 0),
        bootstrap=tuple(b.node.addrs[0] for b in bootstrap),
    )
    running: Running = await nursery.start(run_node, home, options)
    return running


async def _send(home: Home, running: Running, to: str, text: str) -> str:
    host, port = running.api
    async with httpx.AsyncClient(
        base_url=f"http://{host}:{port}", headers={"Authorization": f"Bearer {home.api_token()}"}
    ) as http:
        response = await http.post("/v1/messages", json={"to": to, "text": text})
        assert response.status_code < 300, response.text
        message_id: str = response.json()["id"]
        with trio.fail_after(20):
            while (await http.get(f"/v1/messages/{message_id}")).json()["status"] != "delivered":  # noqa: ASYNC110 - polls the API
                await trio.sleep(0.05)
    return message_id


@pytest.mark.net
async def test_two_real_nodes_with_passphrases_leave_no_seed_in_their_homes(
    tmp_path: Path,
) -> None:
    """Real nodes from passphrase homes exchange messages over loopback."""
    alice_home, bob_home = passphrase_home(tmp_path, "alice"), passphrase_home(tmp_path, "bob")
    async with trio.open_nursery() as nursery:
        bob = await _running(bob_home, nursery)
        alice = await _running(alice_home, nursery, bob)
        alice.node.add_contact_from_invite(bob.node.invite())
        bob.node.add_contact_from_invite(alice.node.invite())
        await _send(alice_home, alice, "bob", "hello bob")
        await _send(bob_home, bob, "alice", "hello alice")
        nursery.cancel_scope.cancel()
    identities = [alice_home.load_identity(), bob_home.load_identity()]
    assert leaks(tmp_path, identities) == []


def _legacy_prekeys(identity: Identity) -> bytes:
    """Own prekeys as they were saved before: the x3dh state with the seed in it."""
    own = OwnPrekeys.create(identity, 1_700_000_000)
    return cbor.encode(
        {"v": 1, "x3dh": json.dumps(own._state.json).encode(), "rotated_at": 1_700_000_000}
    )


def undo_lean(db: sqlite3.Connection) -> None:
    """Take a store back to before the lean search index and event log."""
    db.execute("DROP INDEX events_requests_by_lane")
    db.execute("CREATE INDEX events_by_peer ON events (peer, id)")
    db.execute("CREATE INDEX events_by_lane ON events (request, lane_seq)")
    for trigger in ("insert", "update", "delete"):
        db.execute(f"DROP TRIGGER message_search_{trigger}")
    db.execute("DROP TABLE message_search")
    db.execute("DROP VIEW message_search_source")
    # The index as the migration of disappearing messages made it, filled.
    db.create_function(SEARCH_TEXT_FUNCTION, 2, search_text, deterministic=True)
    for statement in schema.split_statements(schema._SCRIPT_DISAPPEARING):
        if "message_search" in statement:
            db.execute(statement)


def undo_disappearing(db: sqlite3.Connection) -> None:
    """Take a store back to before the migration of disappearing messages and search."""
    undo_lean(db)
    for trigger in ("insert", "update", "delete"):
        db.execute(f"DROP TRIGGER message_search_{trigger}")
    db.execute("DROP TABLE message_search")
    db.execute("DELETE FROM counters WHERE name = 'search_erased'")
    db.execute("DROP INDEX messages_by_expiry")
    for table, column in (
        ("messages", "timer_s"),
        ("messages", "expires_at_ms"),
        ("conversations", "timer_s"),
        ("conversations", "timer_set_at_ms"),
        ("conversations", "muted"),
        ("conversations", "archived"),
    ):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


@pytest.mark.parametrize("opened_by", ["home", "plain SQLiteStore"])
def test_an_old_store_is_migrated_and_the_seed_is_gone_from_every_file(
    tmp_path: Path, opened_by: str
) -> None:
    """The home encrypts the old plain store, then migrates it; opened as a
    plain store (no passphrase), migration 4 alone must wipe the seed."""
    home = passphrase_home(tmp_path, "alice")
    identity = home.load_identity()
    legacy = _legacy_prekeys(identity)
    assert leaks(tmp_path, [identity]) == []
    # The store as the previous version left it: plain, the seed in
    # its prekeys row, and old copies of that row in free pages and the WAL.
    for old in home.path.glob("store.sqlite*"):
        old.unlink()
    SQLiteStore(home.store_path).close()
    with closing(sqlite3.connect(home.store_path, isolation_level=None)) as db:
        db.execute("INSERT INTO prekeys (only_row, state) VALUES (1, ?)", (legacy,))
        db.execute("PRAGMA wal_autocheckpoint = 0")  # keep the old frames in the -wal
        db.execute("PRAGMA secure_delete = OFF")  # as some SQLite builds ship
        for _ in range(5):
            # Padded, the seed lands in overflow pages that are then freed.
            db.execute("UPDATE prekeys SET state = ?", (bytes(5000) + legacy,))
            db.execute("UPDATE prekeys SET state = ?", (legacy,))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the free pages into the file
        db.execute("UPDATE prekeys SET state = ?", (legacy,))  # and a copy in the -wal
        # Versions are 1-based: the migration that forgets the seed has not run.
        before = schema.MIGRATIONS.index(schema._migration_forget_identity_secret)
        db.execute("DELETE FROM schema_version WHERE version > ?", (before,))
        # ... nor have those after it: undo what they made.
        db.execute("DROP TABLE message_recipients")
        db.execute("DROP TABLE blob_refs")
        db.execute("DROP TABLE blobs")
        db.execute("ALTER TABLE events DROP COLUMN conversation_id")
        db.execute("DROP TABLE blocked_peers")
        db.execute("DROP TABLE outbox_followers")
        undo_disappearing(db)
        for table in ("reactions", "held_actions"):
            db.execute(f"DROP TABLE {table}")
        for column in ("edited_at_ms", "unsent"):
            db.execute(f"ALTER TABLE messages DROP COLUMN {column}")
        db.execute("DELETE FROM counters WHERE name IN ('actions_refused', 'held_actions_dropped')")
        db.execute("DROP TABLE profile")
        db.execute("DROP TABLE handle_claims")
        for table in ("group_peer_heads", "group_entries", "groups"):
            db.execute(f"DROP TABLE {table}")
        # The previous version's own prekeys open with today's code too.
        assert OwnPrekeys.from_bytes(identity, legacy).bundle().peer == identity.peer_id
        assert leaks(tmp_path, [identity]) != []
        # Closing checkpoints the WAL: keep a copy of the files as a crash
        # would leave them (SQLite rebuilds the -shm index from the -wal).
        crashed = {p.name: p.read_bytes() for p in home.path.glob("store.sqlite*")}
    for name, data in crashed.items():
        if not name.endswith("-shm"):
            (home.path / name).write_bytes(data)
    assert (home.path / "store.sqlite-wal").stat().st_size > 0
    assert leaks(tmp_path, [identity]) != []

    opened = home.open_store() if opened_by == "home" else SQLiteStore(home.store_path)
    with closing(opened) as store:
        with store._db.reading("schema version") as db:
            assert schema.schema_version(db) == schema.SCHEMA_VERSION
        messenger = Messenger(identity, store)
        assert messenger.bundle() == OwnPrekeys.from_bytes(identity, legacy).bundle()
    assert leaks(tmp_path, [identity]) == []
