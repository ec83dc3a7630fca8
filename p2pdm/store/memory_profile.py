"""The in-memory store's profile and the handle claims it has seen."""

from __future__ import annotations

from collections.abc import Sequence

from p2pdm.core.identity import PeerId
from p2pdm.core.profile import Profile
from p2pdm.store.memory_state import Dicts

__all__ = ["ProfileDicts"]


class ProfileDicts(Dicts):
    """The profile and handle claims of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def get_profile(self) -> Profile | None:
        return self._live().profile

    def put_profile(self, profile: Profile | None, at_ms: int) -> None:
        self._live().profile = None if profile is None or profile.empty else profile

    def note_handle_claims(
        self, handle: str, peers: Sequence[PeerId], now_ms: int, cap: int
    ) -> dict[PeerId, int]:
        claims = self._live().handle_claims
        first: dict[PeerId, int] = {}
        for peer in dict.fromkeys(peers):
            seen, last = claims.get((handle, peer), (now_ms, now_ms))
            claims[(handle, peer)] = (seen, max(last, now_ms))
            first[peer] = seen
        if len(claims) > cap:
            # As the SQLite store: least recently seen, then the newest claim, first.
            def order(key: tuple[str, PeerId]) -> tuple[int, int, str, bytes]:
                seen, last = claims[key]
                return (last, -seen, key[0], key[1].raw)

            for key in sorted(claims, key=order)[: len(claims) - cap]:
                del claims[key]
        return first

    def handle_claimants(self, handle: str, limit: int) -> list[PeerId]:
        found = [
            (seen, peer)
            for (h, peer), (seen, _) in self._live().handle_claims.items()
            if h == handle
        ]
        return [peer for _, peer in sorted(found, key=lambda item: (item[0], item[1].raw))][:limit]
