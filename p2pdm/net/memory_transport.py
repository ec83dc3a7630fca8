"""An in-memory transport for libp2p hosts, with latency, loss and partitions.

How this works: a :class:`MemoryNetwork` is a registry of listeners keyed by
``(ip, port)``. Hosts opened with ``open_host(…, network=net)`` get a
:class:`MemoryTransport` in place of TCP, bound to one fake IPv4 address from
127.64.0.0/10 (loopback, so an address that leaks into a real TCP host can
only ever reach this machine; not globally routable, so libp2p's k-bucket
subnet-diversity rule leaves it alone). Identify, the DHT and the connection
gate see ordinary ``/ip4/…/tcp/…`` addresses and need no change; Noise and
Yamux run unchanged over the byte pipes.

A connection is two one-way :class:`~p2pdm.net._memory_pipe.Pipe` s. A write is queued with the time
it may be read (``now + latency``, never before the previous write: bytes stay
in order, as TCP keeps them), and at most PIPE_BUFFER_BYTES wait in a pipe
before the writer blocks (a socket buffer's worth of flow control). All
waiting is ``trio`` waiting, so under ``trio.testing.MockClock`` latency costs
no wall time.

Faults, chosen for a *reliable stream* transport:

- **loss** ``p`` is per-packet loss that TCP hides: each write is lost with
  probability ``p`` and then delivered one retransmission timeout later
  (RTO doubling on each further loss, as TCP backs off), holding up every byte
  behind it. After MAX_RETRANSMITS losses in a row the connection breaks. A
  dial's SYN is lost with probability ``p`` too and retried after
  SYN_RTO_SECONDS, doubling, MAX_SYN_RETRIES times. So loss shows up as delay
  and, rarely, a broken connection, never as missing bytes.
- **partition** into groups of nodes: existing connections across groups
  break at once (both ends see a reset, as after a keepalive timeout), and
  dials across are black-holed like SYNs into a netsplit: the dial fails only
  after its SYN retries, so callers' own timeouts fire first, as they would.
  Nodes listed in no group form one more group together.
- a dial to an address nobody listens on is refused after one round trip.

Randomness (loss and jitter) comes from one ``random.Random(seed)``.
:mod:`p2pdm.net.tcp_faults` puts the same faults (these pipes and
:meth:`LinkFaults.write_delay`) on real TCP connections.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import multiaddr
import trio
from libp2p.abc import IListener, IRawConnection, ISecureConn, ISecureTransport, ITransport
from libp2p.crypto.keys import KeyPair, PublicKey
from libp2p.custom_types import THandler, TProtocol
from libp2p.io.abc import ReadWriteCloser
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.security.insecure.transport import InsecureSession
from libp2p.transport.exceptions import OpenConnectionError, SecurityUpgradeFailure

from p2pdm.errors import ConfigError
from p2pdm.net._memory_pipe import MAX_READ_BYTES, Pipe

__all__ = [
    "LINK_AUTH_MODES",
    "SIM_LINK_PROTOCOL",
    "LinkFaults",
    "MemoryNetwork",
    "MemoryTransport",
    "NetworkEvent",
    "SimLinkSecurity",
]

logger = logging.getLogger(__name__)

# --- limits -----------------------------------------------------------------

#: Fake node addresses come from this loopback block: never routed off this
#: machine, and not "global" (libp2p's k-buckets cap peers per global /16).
ADDRESS_BLOCK: Final = ipaddress.IPv4Network("127.64.0.0/10")
#: Every node listens on this port unless it asks for another; the IP alone
#: tells nodes apart.
DEFAULT_PORT: Final = 4701
#: Ephemeral ports for the dialing side, as Linux's default range.
EPHEMERAL_PORTS: Final = range(32768, 61000)
#: Linux's floor for a retransmission timeout (TCP_RTO_MIN).
MIN_RTO_SECONDS: Final = 0.2
#: Backed-off RTOs stop growing here (TCP_RTO_MAX).
MAX_RTO_SECONDS: Final = 120.0
#: Consecutive losses of one write before the connection breaks. Linux's
#: tcp_retries2 is 15 (~15 min); at any loss rate a simulation sets, 8 in a
#: row is already a dead link, and it keeps a lossy run's worst case short.
MAX_RETRANSMITS: Final = 8
#: A lost SYN is retried after 1 s, doubling (Linux TCP_TIMEOUT_INIT) ...
SYN_RTO_SECONDS: Final = 1.0
#: ... this many times (tcp_syn_retries), ~127 s in all; p2pdm's own dial
#: timeout fires long before.
MAX_SYN_RETRIES: Final = 6
#: Outgoing dials (connection set-up, SYN retries included) one node's
#: transport runs at once; more wait their turn, within their caller's
#: deadline. k = 20, so a record put to the closest peers dials them all
#: at once, while a node that many tasks make dial at the same moment (a
#: start-up wave) cannot open hundreds of handshakes together, as a real
#: host's connection limits would not let it either.
MAX_CONCURRENT_DIALS: Final = 20
#: Most events kept by the network's trace (oldest dropped first).
MAX_TRACE_EVENTS: Final = 100_000
#: How a memory network's connections are secured: "noise", libp2p's Noise
#: handshake as on TCP; "sim", the network's own knowledge of which node is
#: at each end (:class:`SimLinkSecurity`), no key agreement, no encryption.
LINK_AUTH_MODES: Final = ("noise", "sim")
#: The security protocol of "sim" links: never offered on TCP.
SIM_LINK_PROTOCOL: Final = TProtocol("/p2pdm/sim-link/1.0.0")


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """What every link of a :class:`MemoryNetwork` does to the bytes on it."""

    #: One-way delay of every write, in seconds.
    latency: float = 0.0
    #: Extra one-way delay, uniform in [0, jitter) per write (order is kept).
    jitter: float = 0.0
    #: Probability that a packet (a write, or a dial's SYN) is lost and resent.
    loss: float = 0.0

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter must not be negative")
        if not 0 <= self.loss < 1:
            raise ValueError("loss is a probability in [0, 1)")

    def rto(self) -> float:
        """The first retransmission timeout: two round trips, at least MIN_RTO_SECONDS."""
        return max(MIN_RTO_SECONDS, 4 * (self.latency + self.jitter))

    def write_delay(self, rng: random.Random) -> tuple[float, int]:
        """One write's delay and how many times it was lost on the way.

        Each loss adds a retransmission timeout, doubling; more than
        MAX_RETRANSMITS losses mean the connection breaks.
        """
        delay = self.latency
        if self.jitter:
            delay += rng.random() * self.jitter
        losses = 0
        if self.loss:
            rto = self.rto()
            while rng.random() < self.loss:
                losses += 1
                if losses > MAX_RETRANSMITS:
                    break
                delay += rto
                rto = min(2 * rto, MAX_RTO_SECONDS)
        return delay, losses

    def syn_lost(self, rng: random.Random) -> bool:
        """Whether a dial's SYN is lost (it is then resent, see :func:`syn_timeouts`)."""
        return bool(self.loss) and rng.random() < self.loss


def syn_timeouts() -> list[float]:
    """A dial's wait after each lost SYN: SYN_RTO_SECONDS, doubling, for every attempt."""
    return [SYN_RTO_SECONDS * 2**attempt for attempt in range(MAX_SYN_RETRIES + 1)]


@dataclass(frozen=True, slots=True)
class NetworkEvent:
    """One thing that happened on a :class:`MemoryNetwork`, for traces and tests."""

    time: float
    #: "listen", "dial", "accept", "refused", "blackholed", "syn-lost",
    #: "break", "close", "partition" or "heal".
    kind: str
    src: str = ""
    dst: str = ""


# --- pipes and connections --------------------------------------------------------


class _MemoryConn(ReadWriteCloser):
    """One end of an in-memory connection, as libp2p's raw byte stream."""

    def __init__(
        self,
        network: MemoryNetwork,
        link: _Link,
        incoming: Pipe,
        outgoing: Pipe,
        remote: tuple[str, int],
    ) -> None:
        self._network = network
        self._link = link
        self._in = incoming
        self._out = outgoing
        self._remote = remote
        self._closed = False

    async def read(self, n: int | None = None) -> bytes:
        if n == 0 or self._closed:
            await trio.lowlevel.checkpoint()
            return b""  # as libp2p's TCP stream reads a locally closed socket
        return await self._in.read(min(n or MAX_READ_BYTES, MAX_READ_BYTES))

    async def write(self, data: bytes) -> None:
        if self._closed:  # libp2p's TCP stream ignores writes after a local close
            await trio.lowlevel.checkpoint()
            return
        await self._out.write(bytes(data), self._network._write_delay(self._link))

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.close_write()
            self._in.close_read()
            self._link.ends_open -= 1
            if self._link.ends_open == 0:
                self._network._forget(self._link, "close")
        await trio.lowlevel.checkpoint()

    def get_remote_address(self) -> tuple[str, int] | None:
        return self._remote


class _Link:
    """Both directions of one connection, known to the network so it can break them."""

    __slots__ = ("a_to_b", "b_to_a", "dialer", "ends_open", "listener")

    def __init__(self, dialer: tuple[str, int], listener: tuple[str, int]) -> None:
        self.dialer = dialer
        self.listener = listener
        self.a_to_b = Pipe()
        self.b_to_a = Pipe()
        self.ends_open = 2

    def break_(self) -> None:
        self.a_to_b.break_()
        self.b_to_a.break_()


# --- the network --------------------------------------------------------------------


def _endpoint(maddr: multiaddr.Multiaddr) -> tuple[str, int]:
    try:
        ip = maddr.value_for_protocol("ip4")
        port = int(maddr.value_for_protocol("tcp"))
    except (multiaddr.exceptions.Error, TypeError, ValueError) as exc:
        raise OpenConnectionError(f"not an /ip4/…/tcp/… address: {maddr}") from exc
    return str(ip), port


def _node_ip(addr: str) -> str:
    """The IP of a node address given by a caller; ConfigError if it has none."""
    try:
        return _endpoint(multiaddr.Multiaddr(addr))[0]
    except (OpenConnectionError, ValueError, multiaddr.exceptions.Error) as exc:
        raise ConfigError(f"memory network addresses are /ip4/…/tcp/…: {addr!r}") from exc


class MemoryNetwork:
    """Fake IPs, listeners and links between in-process libp2p hosts.

    ``faults`` apply to every link; :meth:`partition` and :meth:`heal` split
    and rejoin the network. ``seed`` fixes the loss and jitter draws. With
    ``trace``, events are kept in :attr:`events` (the last MAX_TRACE_EVENTS).
    """

    def __init__(
        self,
        faults: LinkFaults | None = None,
        *,
        seed: int = 0,
        trace: bool = False,
        link_auth: str = "noise",
    ) -> None:
        if link_auth not in LINK_AUTH_MODES:
            raise ValueError(f"link_auth is one of {', '.join(LINK_AUTH_MODES)}, not {link_auth!r}")
        #: How hosts on this network secure their connections (LINK_AUTH_MODES).
        self.link_auth = link_auth
        #: With "sim" links: the public key of the node at each IP.
        self._keys: dict[str, PublicKey] = {}
        self.faults = faults or LinkFaults()
        self._random = random.Random(seed)
        self._next_ip = 1
        self._listeners: dict[tuple[str, int], _MemoryListener] = {}
        self._links: dict[_Link, None] = {}  # insertion-ordered set
        self._groups: dict[str, int] | None = None
        self._next_port: dict[str, int] = {}
        self.events: deque[NetworkEvent] | None = deque(maxlen=MAX_TRACE_EVENTS) if trace else None
        #: Counters for benchmarks: dials, accepted, refused, blackholed, breaks, lost.
        self.stats: dict[str, int] = dict.fromkeys(
            ("dials", "accepted", "refused", "blackholed", "breaks", "lost"), 0
        )

    def __repr__(self) -> str:
        return f"MemoryNetwork({len(self._listeners)} listeners, {len(self._links)} links)"

    # --- addresses ---------------------------------------------------------------

    def new_listen_addr(self) -> str:
        """A fresh node address, ``/ip4/127.64.x.y/tcp/4701``, distinct from all before."""
        if self._next_ip >= ADDRESS_BLOCK.num_addresses - 1:
            raise OverflowError(f"the memory network has no address left in {ADDRESS_BLOCK}")
        ip = ADDRESS_BLOCK.network_address + self._next_ip
        self._next_ip += 1
        return f"/ip4/{ip}/tcp/{DEFAULT_PORT}"

    def transport(self, listen_addr: str) -> MemoryTransport:
        """The transport of the node whose (first) listen address is ``listen_addr``."""
        return MemoryTransport(self, _node_ip(listen_addr))

    def security_options(self, key_pair: KeyPair, listen_addr: str) -> dict[TProtocol, Any]:
        """The ``sec_opt`` of the node at ``listen_addr`` on a ``link_auth="sim"``
        network: the network's own link authentication (:class:`SimLinkSecurity`)."""
        ip = _node_ip(listen_addr)
        self._keys[ip] = key_pair.public_key
        return {SIM_LINK_PROTOCOL: SimLinkSecurity(self, key_pair)}

    def key_at(self, conn: IRawConnection) -> PublicKey:
        """The public key of the node at the far end of ``conn`` (a "sim" link)."""
        stream = getattr(conn, "stream", None)
        remote = stream.get_remote_address() if isinstance(stream, _MemoryConn) else None
        key = None if remote is None else self._keys.get(remote[0])
        if key is None:
            raise SecurityUpgradeFailure("not a memory connection between known nodes")
        return key

    def is_listening(self, addr: str) -> bool:
        try:
            return _endpoint(multiaddr.Multiaddr(addr)) in self._listeners
        except (OpenConnectionError, ValueError, multiaddr.exceptions.Error):
            return False

    def link_count(self) -> int:
        """Connections currently open (either end)."""
        return len(self._links)

    # --- faults ----------------------------------------------------------------------

    def partition(self, groups: Sequence[Collection[str]]) -> None:
        """Split the network: nodes (by any address of theirs) in different groups lose touch.

        Connections across groups break now; dials across are black-holed
        until :meth:`heal`. Nodes in no group form one more group.
        """
        self._groups = {}
        for index, group in enumerate(groups):
            for addr in group:
                self._groups[_node_ip(addr)] = index
        self._record("partition", "", f"{len(groups)} groups")
        for link in list(self._links):
            if not self.reachable(link.dialer[0], link.listener[0]):
                link.break_()
                self.stats["breaks"] += 1
                self._forget(link, "break")

    def heal(self) -> None:
        """End the partition: every node can reach every other again."""
        self._groups = None
        self._record("heal")

    def reachable(self, ip_a: str, ip_b: str) -> bool:
        if self._groups is None:
            return True
        return self._groups.get(ip_a, -1) == self._groups.get(ip_b, -1)

    def _write_delay(self, link: _Link) -> float:
        delay, losses = self.faults.write_delay(self._random)
        self.stats["lost"] += losses
        if losses > MAX_RETRANSMITS:
            link.break_()
            self.stats["breaks"] += 1
            self._forget(link, "break")
        return delay

    # --- connections -------------------------------------------------------------------

    def _register(self, addr: tuple[str, int], listener: _MemoryListener) -> None:
        if addr in self._listeners:
            raise OpenConnectionError(f"address in use: {addr[0]}:{addr[1]}")
        self._listeners[addr] = listener
        self._record("listen", f"{addr[0]}:{addr[1]}")

    def _unregister(self, addr: tuple[str, int], listener: _MemoryListener) -> None:
        if self._listeners.get(addr) is listener:
            del self._listeners[addr]

    def _ephemeral_port(self, ip: str) -> int:
        port = self._next_port.get(ip, EPHEMERAL_PORTS.start)
        self._next_port[ip] = port + 1 if port + 1 < EPHEMERAL_PORTS.stop else EPHEMERAL_PORTS.start
        return port

    async def _dial(self, src_ip: str, dst: tuple[str, int]) -> _MemoryConn:
        self.stats["dials"] += 1
        src = (src_ip, self._ephemeral_port(src_ip))
        names = (f"{src[0]}:{src[1]}", f"{dst[0]}:{dst[1]}")
        self._record("dial", *names)
        for syn_rto in syn_timeouts():
            if not self.reachable(src_ip, dst[0]):
                self._record("blackholed", *names)
            elif self.faults.syn_lost(self._random):
                self.stats["lost"] += 1
                self._record("syn-lost", *names)
            else:
                await trio.sleep(2 * self.faults.latency)  # SYN, SYN-ACK
                listener = self._listeners.get(dst)
                if listener is None or not self.reachable(src_ip, dst[0]):
                    self.stats["refused"] += 1
                    self._record("refused", *names)
                    raise OpenConnectionError(f"connection refused: {names[1]}")
                return self._connect(src, dst, listener, names)
            await trio.sleep(syn_rto)
        self.stats["blackholed"] += 1
        raise OpenConnectionError(f"connection to {names[1]} timed out")

    def _connect(
        self,
        src: tuple[str, int],
        dst: tuple[str, int],
        listener: _MemoryListener,
        names: tuple[str, str],
    ) -> _MemoryConn:
        link = _Link(src, dst)
        self._links[link] = None
        dialer_end = _MemoryConn(self, link, link.b_to_a, link.a_to_b, dst)
        listener_end = _MemoryConn(self, link, link.a_to_b, link.b_to_a, src)
        self.stats["accepted"] += 1
        self._record("accept", *names)
        listener.accept(listener_end)
        return dialer_end

    def _forget(self, link: _Link, why: str) -> None:
        if link in self._links:
            del self._links[link]
            self._record(why, f"{link.dialer[0]}:{link.dialer[1]}", f"{link.listener[0]}")

    def _record(self, kind: str, src: str = "", dst: str = "") -> None:
        if self.events is not None:
            self.events.append(NetworkEvent(trio.current_time(), kind, src, dst))


# --- libp2p's side: transport and listener ------------------------------------------------


class _MemoryListener(IListener):
    """Accepts connections for one node; each runs its handler in the swarm's nursery."""

    def __init__(self, network: MemoryNetwork, ip: str, handler: THandler) -> None:
        self._network = network
        self._ip = ip
        self._handler = handler
        self._addrs: list[tuple[str, int]] = []
        #: ``_addrs`` as multiaddrs, parsed once: identify and every DHT
        #: message ask for them (through the host's advertised addresses).
        self._maddrs: tuple[multiaddr.Multiaddr, ...] = ()
        #: Set by py-libp2p 0.8.1's Swarm.listen before listen() is called.
        self.background_nursery: trio.Nursery | None = None

    async def listen(self, maddr: multiaddr.Multiaddr) -> None:
        ip, port = _endpoint(maddr)
        if ip != self._ip:
            raise OpenConnectionError(f"this node's memory address is {self._ip}, not {ip}")
        if port == 0:
            port = DEFAULT_PORT
        if self.background_nursery is None:
            raise OpenConnectionError("the memory listener needs the swarm's nursery")
        self._network._register((ip, port), self)
        self._addrs.append((ip, port))
        self._maddrs = (*self._maddrs, multiaddr.Multiaddr(f"/ip4/{ip}/tcp/{port}"))
        await trio.lowlevel.checkpoint()

    def accept(self, conn: _MemoryConn) -> None:
        if self.background_nursery is None:
            raise OpenConnectionError("listener not started")
        self.background_nursery.start_soon(self._serve, conn)

    async def _serve(self, conn: _MemoryConn) -> None:
        try:
            await self._handler(conn)
        except Exception as exc:  # as libp2p's TCP listener: a failed connection is dropped
            logger.debug("inbound memory connection failed: %r", exc)
            await conn.close()

    def get_addrs(self) -> tuple[multiaddr.Multiaddr, ...]:
        return self._maddrs

    async def close(self) -> None:
        for addr in self._addrs:
            self._network._unregister(addr, self)
        await trio.lowlevel.checkpoint()


class MemoryTransport(ITransport):
    """libp2p's transport interface over a :class:`MemoryNetwork`, for the node at ``ip``."""

    def __init__(self, network: MemoryNetwork, ip: str) -> None:
        self._network = network
        self._ip = ip
        self._dials = trio.CapacityLimiter(MAX_CONCURRENT_DIALS)

    async def dial(self, maddr: multiaddr.Multiaddr) -> IRawConnection:
        async with self._dials:
            conn = await self._network._dial(self._ip, _endpoint(maddr))
        return RawConnection(conn, True)

    def create_listener(self, handler_function: THandler) -> IListener:
        return _MemoryListener(self._network, self._ip, handler_function)

    def can_dial(self, maddr: multiaddr.Multiaddr) -> bool:
        names = {p.name for p in maddr.protocols()}
        return {"ip4", "tcp"} <= names and not names & {"ws", "wss", "quic", "quic-v1"}

    def can_listen(self, maddr: multiaddr.Multiaddr) -> bool:
        return self.can_dial(maddr)

    def protocols(self) -> list[str]:
        return ["tcp"]


class SimLinkSecurity(ISecureTransport):
    """Authenticates a memory connection by the network's own records (``link_auth="sim"``).

    The network hands out every node's IP and binds its transport to it, so
    it knows which node is at each end of a connection: the remote PeerID is
    that node's, as Noise would prove, without the key agreement, the
    signature checks and the encryption (the simulation's CPU goes to p2pdm
    instead). A dial to an address whose node is not the expected peer fails
    as a Noise handshake would. For simulations only: bytes are not encrypted.
    """

    def __init__(self, network: MemoryNetwork, key_pair: KeyPair) -> None:
        self._network = network
        self._key_pair = key_pair
        self._peer = ID.from_pubkey(key_pair.public_key)

    def _session(self, conn: IRawConnection, remote: ID, key: PublicKey) -> ISecureConn:
        return InsecureSession(
            local_peer=self._peer,
            local_private_key=self._key_pair.private_key,
            remote_peer=remote,
            remote_permanent_pubkey=key,
            is_initiator=conn.is_initiator,
            conn=conn,
        )

    async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
        key = self._network.key_at(conn)
        await trio.lowlevel.checkpoint()
        return self._session(conn, ID.from_pubkey(key), key)

    async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
        key = self._network.key_at(conn)
        await trio.lowlevel.checkpoint()
        remote = ID.from_pubkey(key)
        if remote != peer_id:
            raise SecurityUpgradeFailure(f"the node at this address is {remote}, not {peer_id}")
        return self._session(conn, remote, key)
