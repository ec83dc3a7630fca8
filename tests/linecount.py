"""Work counted in lines of Python run, not in time: a test of "this does
not grow with the input" holds on a loaded machine as on an idle one."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

TraceFunction = Callable[[FrameType, str, Any], Any]


@contextmanager
def lines_run_in(filename: str) -> Iterator[Callable[[], int]]:
    """Count the lines run in the source file ``filename`` inside the block;
    the yielded function gives the count so far."""
    lines = 0

    def count_lines(frame: FrameType, event: str, arg: object) -> TraceFunction:
        nonlocal lines
        lines += event == "line"
        return count_lines

    def in_file(frame: FrameType, event: str, arg: object) -> TraceFunction | None:
        return count_lines if frame.f_code.co_filename == filename else None

    previous = sys.gettrace()
    sys.settrace(in_file)
    try:
        yield lambda: lines
    finally:
        sys.settrace(previous)
