"""Several real hosts in one process, for tests and simulations.

:func:`open_hosts` starts N hosts on 127.0.0.1 with deterministic identities;
by default host 0 is the bootstrap peer of all the others, so they share one
DHT. Each host runs in its own task, so leaving the block shuts all of them
down concurrently (~0.2 s in all, instead of ~0.2 s per connected host).
:func:`echo` is a handler to talk to; :func:`wait_until` waits for state that
lives inside libp2p.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from p2pdm.net import DhtMode, Host, open_host
from p2pdm.net.stream import Stream

__all__ = ["ECHO_PROTOCOL", "echo", "host_seed", "open_hosts", "wait_until"]

ECHO_PROTOCOL = "/p2pdm/test/echo/1.0.0"
#: Largest frame echoed, and the longest wait for one.
ECHO_MAX_BYTES = 1 << 20
ECHO_TIMEOUT_SECONDS = 5.0
#: How often :func:`wait_until` looks again.
POLL_SECONDS = 0.02


async def echo(stream: Stream) -> None:
    """A stream handler that sends every frame back until the peer closes its side."""
    while (frame := await stream.read_frame(ECHO_MAX_BYTES, ECHO_TIMEOUT_SECONDS)) is not None:
        await stream.write_frame(frame, ECHO_TIMEOUT_SECONDS)


async def wait_until(predicate: Callable[[], bool], deadline: float = 3.0) -> None:
    """Poll ``predicate`` until true; trio.TooSlowError after ``deadline`` seconds.

    For state inside libp2p (connections, identify results), which offers no
    event to wait on.
    """
    with trio.fail_after(deadline):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(POLL_SECONDS)


def host_seed(index: int) -> bytes:
    """The identity seed of test host ``index``: the same on every run."""
    return hashlib.sha256(b"p2pdm test host %d" % index).digest()


@asynccontextmanager
async def open_hosts(
    count: int,
    *,
    join: bool = True,
    bootstraps: int = 1,
    dht_modes: Sequence[DhtMode] = (),
    first_index: int = 0,
    **host_options: Any,
) -> AsyncIterator[list[Host]]:
    """``count`` running hosts; with ``join``, hosts 1.. bootstrap from host 0.

    ``bootstraps``: hosts join through the first ``bootstraps`` hosts in
    turn (host i through host i % bootstraps, host 1.. through host 0 for
    those among the first). A joiner keeps its bootstrap connection, and a
    host holds at most MAX_INBOUND_CONNECTIONS, so more than ~190 hosts need
    more than one. ``dht_modes[i]`` sets host i's DHT mode (default "server");
    ``first_index`` shifts the seeds so two groups get distinct identities;
    other keyword arguments go to :func:`open_host`. Hosts start one after
    the other, so each joins a DHT the earlier ones already form.
    """
    if bootstraps < 1:
        raise ValueError("bootstraps must be at least 1")
    hosts: list[Host] = []
    stop = trio.Event()
    error: BaseException | None = None

    async def run_host(
        index: int, bootstrap: list[str], *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        mode: DhtMode = dht_modes[index] if index < len(dht_modes) else "server"
        seed = host_seed(first_index + index)
        async with open_host(seed, bootstrap=bootstrap, dht_mode=mode, **host_options) as host:
            task_status.started(host)
            await stop.wait()

    async with trio.open_nursery() as nursery:
        try:
            for index in range(count):
                first = index % bootstraps if index >= bootstraps else 0
                bootstrap = hosts[first].listen_addrs() if join and hosts else []
                hosts.append(await nursery.start(run_host, index, bootstrap))
            yield hosts
        except (trio.Cancelled, GeneratorExit):
            raise
        except BaseException as exc:  # raised below, not wrapped in an ExceptionGroup
            error = exc
        finally:
            stop.set()
    if error is not None:
        raise error
