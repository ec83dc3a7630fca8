"""The network layer: libp2p hosts, framed streams, DHT routing and records.

Only the libp2p modules of this package import libp2p: the host's private
modules (:mod:`~p2pdm.net._edge`, :mod:`~p2pdm.net._host`,
:mod:`~p2pdm.net._dht`, :mod:`~p2pdm.net._maintenance`,
:mod:`~p2pdm.net._open`, :mod:`~p2pdm.net._patches`, :mod:`~p2pdm.net._autonat`,
:mod:`~p2pdm.net._relay`, :mod:`~p2pdm.net._relay_keeper`) and the transports
(:mod:`~p2pdm.net.memory_transport` with :mod:`~p2pdm.net._memory_pipe`,
:mod:`~p2pdm.net.tcp_faults`); nothing outside this package sees a libp2p
type, and every workaround for py-libp2p 0.8.1 is in ``_patches``. Start with
:func:`open_host`; tests and simulations get N hosts at once from
:func:`p2pdm.net.testing.open_hosts`, over TCP or, with
``network=MemoryNetwork(…)``, over memory in virtual time.

- :mod:`~p2pdm.net.frames`: varint-length-prefixed frames (sans-I/O);
- :mod:`~p2pdm.net.stream`: :class:`Stream`, frames under deadlines over any byte stream;
- :mod:`~p2pdm.net._open`: :func:`open_host`, composing a libp2p host;
- :mod:`~p2pdm.net._host`: :class:`Host`, what a running host offers;
- :mod:`~p2pdm.net._dht`: DHT records, providers and validators;
- :mod:`~p2pdm.net._maintenance`: joining, idle connections, re-dials, shutdown;
- :mod:`~p2pdm.net._patches`: every py-libp2p 0.8.1 pitfall and its workaround;
- :mod:`~p2pdm.net._autonat`: reachability (AutoNAT v1, asked and served);
- :mod:`~p2pdm.net._relay`: circuit relay v2 (serving with limits, reserving, dialing through);
- :mod:`~p2pdm.net._relay_keeper`: reservations kept by a node behind NAT; relays announced;
- :mod:`~p2pdm.net.memory_transport`: :class:`MemoryNetwork`, an in-memory
  transport with latency, loss and partitions, for simulations;
- :mod:`~p2pdm.net.tcp_faults`: :class:`TcpFaults`, the same latency and
  loss on real TCP connections, for simulations in real time;
- :mod:`~p2pdm.bench.memnet`: forming N-host DHTs over it, measured;
- :mod:`~p2pdm.net.upkeep`: background timings and idle-connection bookkeeping;
- :mod:`~p2pdm.net._dht_guard`: :class:`DhtLimits`, what other peers may
  make our DHT store (write rates, caps, eviction), and its counters;
- :mod:`~p2pdm.net.limits`: every limit and timeout, with its reason.
"""

from typing import TYPE_CHECKING

from p2pdm.net._dht_guard import DEFAULT_DHT_LIMITS, DhtLimits, DhtStoreStats, StoreCaps
from p2pdm.net._edge import (
    DEFAULT_LISTEN,
    DhtMode,
    PeerFilter,
    RecordSelector,
    RecordValidator,
    StreamHandler,
)
from p2pdm.net._host import Host
from p2pdm.net._open import open_host
from p2pdm.net._relay import RelayLimits
from p2pdm.net._relay_keeper import RelayKeeper, announce_relay
from p2pdm.net.frames import FrameDecoder, encode_frame
from p2pdm.net.logs import configure_libp2p_logging
from p2pdm.net.stream import RawStream, Stream
from p2pdm.net.upkeep import DEFAULT_UPKEEP, Upkeep

__all__ = [
    "DEFAULT_DHT_LIMITS",
    "DEFAULT_LISTEN",
    "DEFAULT_UPKEEP",
    "DhtLimits",
    "DhtMode",
    "DhtStoreStats",
    "FrameDecoder",
    "Host",
    "LinkFaults",
    "MemoryNetwork",
    "PeerFilter",
    "RawStream",
    "RecordSelector",
    "RecordValidator",
    "RelayKeeper",
    "RelayLimits",
    "StoreCaps",
    "Stream",
    "StreamHandler",
    "TcpFaults",
    "Upkeep",
    "announce_relay",
    "configure_libp2p_logging",
    "encode_frame",
    "open_host",
]

if TYPE_CHECKING:
    from p2pdm.net.memory_transport import LinkFaults, MemoryNetwork
    from p2pdm.net.tcp_faults import TcpFaults


def __getattr__(name: str) -> object:
    """The simulation's networks imported when asked for (tests, the simulator,
    the benchmarks): a node over TCP does not load the in-memory network's and
    the fault injector's modules."""
    if name in ("LinkFaults", "MemoryNetwork"):
        from p2pdm.net import memory_transport

        return getattr(memory_transport, name)
    if name == "TcpFaults":
        from p2pdm.net.tcp_faults import TcpFaults

        return TcpFaults
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
