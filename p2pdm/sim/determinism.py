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
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import trio
import trio.testing

__all__ = ["MONOTONIC_BASE_SECONDS", "SIM_EPOCH_MS", "VirtualTime", "deterministic"]

#: The simulation's wall clock starts here: 2026-01-01T00:00:00Z, so that
#: timestamps (messages, records, invites) are the same in every run.
SIM_EPOCH_MS: Final = 1_767_225_600_000
#: libp2p's monotonic clock reads this plus virtual seconds: as after ~11
#: days of uptime, so code that takes 0 for "never" is not fooled.
MONOTONIC_BASE_SECONDS: Final = 1_000_000.0
#: Bytes of the simulation's seed stream that seed each patched RNG.
SEED_BYTES: Final = 32
#: Which third-party modules get the virtual clock and seeded randomness.
PATCHED_PACKAGE: Final = "libp2p"
#: trio's scheduler: its module, its private RNG (which orders each batch of
#: ready tasks) and the switch that sorts a batch by task age before the RNG
#: shuffles it (trio's own hook for Hypothesis; point 1 above).
TRIO_SCHEDULER: Final = "trio._core._run"
TRIO_SCHEDULER_RNG: Final = "_r"
TRIO_DETERMINISTIC_FLAG: Final = "_ALLOW_DETERMINISTIC_SCHEDULING"
#: libp2p modules that read the clock but load only at the first connection:
#: loaded up front, so that they too read the virtual one.
LAZY_MODULES: Final = ("libp2p.network.connection.swarm_connection",)
#: The module of the libp2p method whose tie-break is ``id()`` (point 4 above).
SWARM_MODULE: Final = "libp2p.network.swarm"


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


def _best_connection(self: Any, connections: list[Any]) -> Any:
    """libp2p's choice among a peer's connections, ties to the first (oldest)."""
    from libp2p.connection_types import ConnectionType

    def rank(conn: Any) -> tuple[bool, int]:
        try:
            direct = conn.get_connection_type() == ConnectionType.DIRECT
        except Exception:  # as libp2p's own: a half-built connection counts as direct
            direct = True
        try:
            streams = len(conn.get_streams())
        except Exception:
            streams = 0
        return direct, streams

    return max(connections, key=rank)


def _libp2p_modules() -> list[types.ModuleType]:
    """The py-libp2p modules a simulation runs (p2pdm.net loads most on import)."""
    for name in LAZY_MODULES:
        importlib.import_module(name)
    prefix = PATCHED_PACKAGE + "."
    return [
        module
        for name, module in list(sys.modules.items())
        if module is not None and (name == PATCHED_PACKAGE or name.startswith(prefix))
    ]


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
    replacements: dict[object, object] = {
        time: VirtualTime(lambda: clock.current_time() - start, SIM_EPOCH_MS / 1000),
        secrets: _SeededSecrets(random.Random(rng.randbytes(SEED_BYTES))),
    }
    undo: list[tuple[object, str, object]] = []
    for module in _libp2p_modules():
        for attr, value in list(vars(module).items()):
            if isinstance(value, types.ModuleType) and value in replacements:
                undo.append((module, attr, value))
                setattr(module, attr, replacements[value])
    swarm = importlib.import_module(SWARM_MODULE).Swarm
    undo.append((swarm, "_best_connection", swarm.__dict__["_best_connection"]))
    swarm._best_connection = _best_connection
    scheduler = importlib.import_module(TRIO_SCHEDULER)
    scheduler_rng: random.Random = getattr(scheduler, TRIO_SCHEDULER_RNG)
    scheduler_state = scheduler_rng.getstate()
    undo.append((scheduler, TRIO_DETERMINISTIC_FLAG, getattr(scheduler, TRIO_DETERMINISTIC_FLAG)))
    setattr(scheduler, TRIO_DETERMINISTIC_FLAG, True)
    scheduler_rng.seed(rng.randbytes(SEED_BYTES))
    try:
        yield
    finally:
        scheduler_rng.setstate(scheduler_state)
        for target, attr, value in reversed(undo):
            setattr(target, attr, value)
