"""Where a node keeps its contacts, messages, sessions and outbox.

:class:`Store` is the contract, and ``roles.py`` the narrow views services
ask for (:class:`MailboxStore`, :class:`OutboxStore`); :class:`SQLiteStore` is
the real store (one file in the node home) and :class:`MemoryStore` the
in-memory one for tests.
"""

from typing import TYPE_CHECKING

from p2pdm.store.base import Store
from p2pdm.store.roles import MailboxStore, OutboxStore
from p2pdm.store.sqlite import SQLiteStore

__all__ = ["MailboxStore", "MemoryStore", "OutboxStore", "SQLiteStore", "Store"]

if TYPE_CHECKING:
    from p2pdm.store.memory import MemoryStore

    # mypy proves both implementations satisfy the contract.
    _sqlite_store: type[Store] = SQLiteStore
    _memory_store: type[Store] = MemoryStore
    # ... and so every role a service asks for.
    _roles: tuple[type[MailboxStore], type[OutboxStore]] = (SQLiteStore, SQLiteStore)
    _memory_roles: tuple[type[MailboxStore], type[OutboxStore]] = (MemoryStore, MemoryStore)


def _store_plays_every_role(store: Store) -> tuple[MailboxStore, OutboxStore]:
    """Type-checked only: the contract itself satisfies every role."""
    return store, store


def __getattr__(name: str) -> object:
    """:class:`MemoryStore` imported when asked for: a node runs on SQLite and
    does not load the in-memory store's dozen modules (tests and the simulator do)."""
    if name == "MemoryStore":
        from p2pdm.store.memory import MemoryStore

        return MemoryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
