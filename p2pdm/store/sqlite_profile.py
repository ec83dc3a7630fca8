"""The SQLite store's profile (what this node publishes) and the handle claims it has seen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

from p2pdm.core.identity import PeerId
from p2pdm.core.profile import Profile
from p2pdm.store.sqlite_tables import Tables

__all__ = ["ProfileTables"]

#: The key the profile is remembered under among the settings read (no
#: setting's key starts with a NUL).
_PROFILE_READ: Final = "\x00profile"


class ProfileTables(Tables):
    """The profile and handle claims of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    def get_profile(self) -> Profile | None:
        # Remembered with the settings read (a stamped send reads the name):
        # dropped on a write here and on any rollback.
        if not self._hot.settling:  # else what was read may still be rolled back
            try:
                return cast("Profile | None", self._settings_read[_PROFILE_READ])
            except KeyError:
                pass
        with self._reading("reading the profile") as db:
            row = db.execute("SELECT name, handle, bio, avatar FROM profile").fetchone()
        found = None if row is None else Profile(row[0], row[1], row[2], bytes(row[3]))
        self._settings_read[_PROFILE_READ] = found  # frozen: safe to hand out again
        return found

    def put_profile(self, profile: Profile | None, at_ms: int) -> None:
        self._settings_read.pop(_PROFILE_READ, None)
        with self._writing("saving the profile") as db:
            db.execute("DELETE FROM profile")
            if profile is not None and not profile.empty:
                db.execute(
                    "INSERT INTO profile (id, name, handle, bio, avatar, updated_at_ms) "
                    "VALUES (1, ?, ?, ?, ?, ?)",
                    (profile.name, profile.handle, profile.bio, profile.avatar, at_ms),
                )
        self._settings_read.pop(_PROFILE_READ, None)

    def note_handle_claims(
        self, handle: str, peers: Sequence[PeerId], now_ms: int, cap: int
    ) -> dict[PeerId, int]:
        first: dict[PeerId, int] = {}
        with self._writing("noting handle claims") as db:
            for peer in dict.fromkeys(peers):
                db.execute(
                    "INSERT INTO handle_claims (handle, peer_id, first_seen_ms, last_seen_ms) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (handle, peer_id) "
                    "DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
                    (handle, peer.raw, now_ms, now_ms),
                )
                (seen,) = db.execute(
                    "SELECT first_seen_ms FROM handle_claims WHERE handle = ? AND peer_id = ?",
                    (handle, peer.raw),
                ).fetchone()
                first[peer] = int(seen)
            (count,) = db.execute("SELECT count(*) FROM handle_claims").fetchone()
            if count > cap:
                db.execute(
                    "DELETE FROM handle_claims WHERE (handle, peer_id) IN (SELECT handle, peer_id "
                    "FROM handle_claims ORDER BY last_seen_ms, first_seen_ms DESC, handle, peer_id "
                    "LIMIT ?)",
                    (count - cap,),
                )
        return first

    def handle_claimants(self, handle: str, limit: int) -> list[PeerId]:
        with self._reading("reading handle claims") as db:
            rows = db.execute(
                "SELECT peer_id FROM handle_claims WHERE handle = ? "
                "ORDER BY first_seen_ms, peer_id LIMIT ?",
                (handle, limit),
            ).fetchall()
        return [PeerId(bytes(row[0])) for row in rows]
