"""Replay for virtual-time simulations: one seed, one run, event for event.

How this works: a ``p2pdm sim --clock virtual`` run is a single trio run of
many libp2p hosts on a MemoryNetwork under trio's MockClock. p2pdm's own
randomness and clocks are injected (seeded ``random_bytes`` per node, the
simulation's ``now_ms`` from SIM_EPOCH_MS), but four things outside p2pdm
would still make two runs with one seed differ, and :func:`deterministic`
fixes each, for the duration of one simulation only:

1. **trio's scheduler** runs each batch of ready tasks in a random order
   (``trio._core._run._r``, unseeded) and breaks ties between equal
   deadlines by ``id()``. trio's own switch for Hypothesis,
   ``_ALLOW_DETERMINISTIC_SCHEDULING``, sorts every batch by task creation
   order before shuffling it with ``_r`` — which makes the deadline ties
   irrelevant too — and we seed ``_r``.
2. **py-libp2p's wall clock**: ``time.time()`` / ``time.monotonic()``
   decide, among others, when a new connection may be trimmed (its grace
   period), the swarm's 60 s "recently failed" dial block, peerstore TTLs,
   k-bucket ages and the resource manager's rate limits. In a virtual run
   real time passes as fast as the CPU goes, so these decisions followed the
   machine's load. Every ``libp2p.*`` module's ``time`` becomes a view of
   the virtual clock (:class:`VirtualTime`).
3. **py-libp2p's randomness that picks peers**: ``secrets`` (the random
   keys a routing-table refresh looks up, random walks) is swapped, in
   ``libp2p.*`` modules, for draws from a seeded ``random.Random``. (Its
   ``random`` draws — dial retry jitter, the auto-connector's shuffle — are
   not reached: p2pdm turns retries off and stops the auto-connector; and
   ``uuid4`` task identities change only the order in which a stopping
   host's services are cancelled, which measured no difference.)
4. **One ``id()`` tie-break**: when a peer has two connections with as many
   streams (two dials that crossed), libp2p's ``Swarm._best_connection``
   picks the one at the higher memory address. :func:`deterministic` makes
   it pick the first (the older).

Points 2 to 4 patch libp2p, so they are applied by
:func:`p2pdm.net._patches.deterministic_libp2p`, with libp2p's other workarounds.

Everything is restored on exit, so a node's normal run (``p2pdm run``) and
real-clock simulations never see these patches. While one is in force,
every libp2p host in the process sees it: run nothing else with libp2p
beside a virtual-time simulation. What stays outside reach is
content, never order: Noise and X3DH ephemeral keys come from the OS (so
ciphertexts differ between runs, never their lengths), and string hashing
differs between processes unless ``PYTHONHASHSEED`` is fixed (``p2pdm sim``
re-executes itself with it set, see :mod:`p2pdm.cli.sim`).
"""

from __future__ import annotations

import importlib
import random
import secrets
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import trio
import trio.testing

from p2pdm.net._patches import deterministic_libp2p

__all__ = ["MONOTONIC_BASE_SECONDS", "SIM_EPOCH_MS", "VirtualTime", "deterministic"]

#: The simulation's wall clock starts here: 2026-01-01T00:00:00Z, so that
#: timestamps (messages, records, invites) are the same in every run.
SIM_EPOCH_MS: Final = 1_767_225_600_000
#: libp2p's monotonic clock reads this plus virtual seconds: as after ~11
#: days of uptime, so code that takes 0 for "never" is not fooled.
MONOTONIC_BASE_SECONDS: Final = 1_000_000.0
#: Bytes of the simulation's seed stream that seed each patched RNG.
SEED_BYTES: Final = 32
#: trio's scheduler: its module, its private RNG (which orders each batch of
#: ready tasks) and the switch that sorts a batch by task age before the RNG
#: shuffles it (trio's own hook for Hypothesis; point 1 above).
TRIO_SCHEDULER: Final = "trio._core._run"
TRIO_SCHEDULER_RNG: Final = "_r"
TRIO_DETERMINISTIC_FLAG: Final = "_ALLOW_DETERMINISTIC_SCHEDULING"


class VirtualTime:
    """The ``time`` module as libp2p sees it in a virtual run: clocks follow
    ``now`` (virtual seconds since the run started); everything else (sleep,
    formatting) is the real module's."""

    def __init__(self, now: Callable[[], float], epoch_s: float) -> None:
        self._now = now
        self._epoch_s = epoch_s

    def time(self) -> float:
        return self._epoch_s + self._now()

    def time_ns(self) -> int:
        return int(self.time() * 1e9)

    def monotonic(self) -> float:
        return MONOTONIC_BASE_SECONDS + self._now()

    def monotonic_ns(self) -> int:
        return int(self.monotonic() * 1e9)

    perf_counter = monotonic
    perf_counter_ns = monotonic_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class _SeededSecrets:
    """``secrets``' draws that libp2p uses, from a seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)

    def token_bytes(self, nbytes: int | None = None) -> bytes:
        return self._rng.randbytes(32 if nbytes is None else nbytes)

    def token_hex(self, nbytes: int | None = None) -> str:
        return self.token_bytes(nbytes).hex()

    def choice(self, seq: Any) -> Any:
        return self._rng.choice(seq)

    def __getattr__(self, name: str) -> Any:
        return getattr(secrets, name)


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Within: trio's scheduler seeded, libp2p's clock virtual and its randomness seeded.

    Call it inside the simulation's ``trio.run``, which must use
    ``trio.testing.MockClock``; raises RuntimeError otherwise.
    """
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        raise RuntimeError("a deterministic simulation needs trio.testing.MockClock")
    start = clock.current_time()
    rng = random.Random(seed)
    replacements: dict[types.ModuleType, object] = {
        time: VirtualTime(lambda: clock.current_time() - start, SIM_EPOCH_MS / 1000),
        secrets: _SeededSecrets(random.Random(rng.randbytes(SEED_BYTES))),
    }
    undo: list[tuple[object, str, object]] = []
    scheduler = importlib.import_module(TRIO_SCHEDULER)
    scheduler_rng: random.Random = getattr(scheduler, TRIO_SCHEDULER_RNG)
    scheduler_state = scheduler_rng.getstate()
    undo.append((scheduler, TRIO_DETERMINISTIC_FLAG, getattr(scheduler, TRIO_DETERMINISTIC_FLAG)))
    setattr(scheduler, TRIO_DETERMINISTIC_FLAG, True)
    scheduler_rng.seed(rng.randbytes(SEED_BYTES))
    try:
        with deterministic_libp2p(replacements):
            yield
    finally:
        scheduler_rng.setstate(scheduler_state)
        for target, attr, value in reversed(undo):
            setattr(target, attr, value)
