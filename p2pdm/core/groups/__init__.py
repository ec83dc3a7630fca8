"""Groups: signed change entries, their DAG and the fold (docs/protocol.md §19)."""

from p2pdm.core.groups.entry import (
    ADMIN_OPS,
    GROUP_ID_BYTES,
    HASH_BYTES,
    OPS,
    ChangeEntry,
    decode_entry,
    make_entry,
)
from p2pdm.core.groups.log import GroupLog, GroupState, Outcome
from p2pdm.core.groups.photo import PHOTO_TYPES, photo_tag, photo_type

__all__ = [
    "ADMIN_OPS",
    "GROUP_ID_BYTES",
    "HASH_BYTES",
    "OPS",
    "PHOTO_TYPES",
    "ChangeEntry",
    "GroupLog",
    "GroupState",
    "Outcome",
    "decode_entry",
    "make_entry",
    "photo_tag",
    "photo_type",
]
