"""The ``edit`` kind: the author's new text for an earlier text (docs/protocol.md §6.4).

Accepted only from the target's author, within EDIT_WINDOW_MS of the
target's sending time (both signed by the author); the latest edit wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.kinds.targeted import targeting_spec
from p2pdm.limits import MAX_TEXT_BYTES

__all__ = ["SPEC", "EditBody"]


@dataclass(frozen=True, slots=True)
class EditBody:
    target: bytes
    text: str
    ext: dict[str, Any] | None = None
    kind: Literal["edit"] = field(default="edit", init=False)


SPEC: Final = targeting_spec(
    "edit",
    EditBody,
    # An empty or over-long text is refused.
    (("text", lambda read: read.text("text", MAX_TEXT_BYTES, min_chars=1)),),
    max_fields_bytes=MAX_TEXT_BYTES,
)
