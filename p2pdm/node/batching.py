"""Group commit: store work of concurrent callers made durable by one commit.

How this works: every accepted message must be in the store before the API
answers, and with ``synchronous=FULL`` each commit waits for the disk
(an fsync). Callers that arrive together (several API clients sending at
once) hand their store work to :class:`CommitBatcher`; its task runs all
the work that is waiting inside one :meth:`Store.group`, so each piece is
still all-or-nothing on its own (a savepoint) but the disk is waited for
once. The group's commit runs in a worker thread
(:class:`~p2pdm.node.offloop.OffLoopCommits`): while the disk syncs, the
loop serves other requests and the next group gathers. A caller gets its
own result or exception, once its group is committed. Without the batcher
task running, work runs at once, alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, TypeVar

import trio
import trio.lowlevel

from p2pdm.errors import P2PDMError, StoreError
from p2pdm.node.offloop import OffLoopCommits
from p2pdm.store.base import Store

__all__ = ["MAX_GROUP_JOBS", "CommitBatcher"]

log = logging.getLogger("p2pdm.store")

T = TypeVar("T")

#: Work items committed together at most; the rest waits for the next round,
#: so one commit never holds the event loop for long.
MAX_GROUP_JOBS: Final = 256


class _Job(Generic[T]):
    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[], T]) -> None:
        self.work = work
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = trio.Event()

    def run(self) -> None:
        try:
            self.result = self.work()
        except P2PDMError as exc:
            self.error = exc


class CommitBatcher:
    """Runs store work from concurrent tasks in group commits."""

    def __init__(
        self, store: Store, on_failure: Callable[[], None], commits: OffLoopCommits | None = None
    ) -> None:
        self.store = store
        #: Where group commits run (their commit in a worker thread).
        self.commits = commits or OffLoopCommits(store)
        #: Called when a group commit failed, to drop in-memory state.
        self.on_failure = on_failure
        self._pending: list[_Job[Any]] = []
        self._wake = trio.Event()
        self._running = False

    async def submit(self, work: Callable[[], T]) -> T:
        """Run ``work`` (sync store work) in the next group; its result or exception."""
        if not self._running:
            return work()
        job = _Job(work)
        self._pending.append(job)
        self._wake.set()
        await job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    async def submit_all(self, works: Sequence[Callable[[], T]]) -> list[T | P2PDMError]:
        """Run every piece of ``works`` in the same group (one commit for all).

        Each piece succeeds or fails alone: its result, or the
        :class:`P2PDMError` it raised, in order. Raises StoreError (nothing
        stored) if the group's commit fails.
        """

        def each() -> list[T | P2PDMError]:
            results: list[T | P2PDMError] = []
            for work in works:
                try:
                    results.append(work())
                except P2PDMError as exc:
                    results.append(exc)
            return results

        if self._running:
            return await self.submit(each)  # one job: never split across groups
        with self.store.group():
            return each()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while self._pending:
                    jobs = self._pending[:MAX_GROUP_JOBS]
                    del self._pending[:MAX_GROUP_JOBS]
                    await self._commit(jobs)
                    if self._pending:
                        await (
                            trio.lowlevel.checkpoint()
                        )  # let the event loop breathe between groups
        finally:
            self._running = False
            jobs, self._pending = self._pending, []
            for job in jobs:  # nobody is left waiting
                job.run()
                job.done.set()

    async def _commit(self, jobs: list[_Job[Any]]) -> None:
        def run_all() -> None:
            with self.store.group():
                for job in jobs:
                    job.run()

        try:
            # A failed commit puts back in-memory state before any other store call.
            with trio.CancelScope(shield=True):  # taken jobs are answered
                await self.commits.run(run_all, self.on_failure)
        except StoreError as exc:
            log.error("a group commit of %d items failed: %s", len(jobs), exc)
            self.on_failure()
            for job in jobs:
                job.result, job.error = None, exc
        for job in jobs:
            job.done.set()
