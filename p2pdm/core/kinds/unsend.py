"""The ``unsend`` kind: the author removes an earlier message for everyone
(docs/protocol.md §6.5).

Accepted only from the target's author, at any time; it wins even when it
arrives before its target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.kinds.targeted import targeting_spec

__all__ = ["SPEC", "UnsendBody"]


@dataclass(frozen=True, slots=True)
class UnsendBody:
    target: bytes
    ext: dict[str, Any] | None = None
    kind: Literal["unsend"] = field(default="unsend", init=False)


SPEC: Final = targeting_spec("unsend", UnsendBody)
