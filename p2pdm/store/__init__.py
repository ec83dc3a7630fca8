"""Where a node keeps its contacts, messages, sessions and outbox.

:class:`Store` is the contract; :class:`SQLiteStore` is the real store (one
file in the node home) and :class:`MemoryStore` the in-memory one for tests.
"""

from typing import TYPE_CHECKING

from p2pdm.store.base import Store
from p2pdm.store.memory import MemoryStore
from p2pdm.store.sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "Store"]

if TYPE_CHECKING:
    # mypy proves both implementations satisfy the contract.
    _sqlite_store: type[Store] = SQLiteStore
    _memory_store: type[Store] = MemoryStore
