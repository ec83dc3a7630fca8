"""Work that releases the GIL (libsodium, hashlib, file writes, image
decoding) runs in a worker thread so the event loop goes on serving — except
under trio's MockClock (simulations in virtual time, tests with an autojump
clock): that clock jumps ahead while the loop waits for a thread, so
deadlines would fire on a busy machine and a seeded run would no longer
replay; there the work runs on the loop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import trio
import trio.lowlevel

__all__ = ["off_loop", "virtual_clock"]

T = TypeVar("T")


def virtual_clock() -> bool:
    """True under trio's MockClock. Never imports ``trio.testing`` (it imports
    pytest): whoever made a MockClock has imported it."""
    testing = sys.modules.get("trio.testing")
    return testing is not None and isinstance(trio.lowlevel.current_clock(), testing.MockClock)


async def off_loop(
    fn: Callable[..., T], *args: object, limiter: trio.CapacityLimiter | None = None
) -> T:
    """``fn(*args)`` in a worker thread (bounded by ``limiter``, else trio's
    default), or on the loop under a virtual clock."""
    if virtual_clock():
        return fn(*args)
    return await trio.to_thread.run_sync(fn, *args, limiter=limiter)
