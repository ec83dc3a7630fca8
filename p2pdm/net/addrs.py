"""Multiaddr strings in and out of the host.

Addresses cross the network layer's edge as text. Anything handed in may end
in ``/p2p/<PeerID>`` (which must then name the expected peer); everything
handed out does. Uses py-multiaddr only, not libp2p.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Final

import ifaddr
import multiaddr

from p2pdm.core.identity import PeerId
from p2pdm.errors import ConfigError, SchemaError
from p2pdm.limits import MAX_ADDR_BYTES

__all__ = [
    "MAX_INTERFACE_ADDRS",
    "MAX_PORT",
    "dialable_addrs",
    "full_addr",
    "is_loopback",
    "parse_bootstrap",
    "port_range",
    "refuse_taken_port",
    "transport_addr",
]

#: Wildcard listen addresses and the address family of each.
_WILDCARDS = {"/ip4/0.0.0.0/": socket.AF_INET, "/ip6/::/": socket.AF_INET6}
#: Any address outside this host works for the routing-table probe below: it
#: is never sent to (UDP connect only picks the route and source address).
_PROBE_TARGETS = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}
#: Interface addresses announced per address family for a wildcard listener:
#: an invite holds MAX_ADDRS (16), so both families and loopback fit.
MAX_INTERFACE_ADDRS: Final = 7
#: How long the interface addresses are reused: libp2p asks for our addresses
#: on every identify and DHT reply, and listing the interfaces costs ~0.3 ms.
INTERFACE_CACHE_SECONDS: Final = 10.0
#: Highest TCP port.
MAX_PORT: Final = 65535
_ips_cache: dict[socket.AddressFamily, tuple[float, list[str]]] = {}


def transport_addr(text: str, peer: PeerId | None) -> multiaddr.Multiaddr:
    """The multiaddr without its ``/p2p`` part. Raises SchemaError if bad or of another peer."""
    if not isinstance(text, str) or not 0 < len(text.encode()) <= MAX_ADDR_BYTES:
        raise SchemaError("not a multiaddr")
    try:
        addr = multiaddr.Multiaddr(text)
    except (ValueError, multiaddr.exceptions.Error) as exc:
        raise SchemaError(f"not a multiaddr: {text!r}") from exc
    try:
        named = addr.value_for_protocol("p2p")
    except multiaddr.exceptions.Error:
        return addr
    if peer is not None and named != str(peer):
        raise SchemaError(f"address {text!r} belongs to another peer than {peer.short()}")
    return addr.decapsulate(multiaddr.Multiaddr(f"/p2p/{named}"))


def full_addr(addr: multiaddr.Multiaddr, peer: PeerId) -> str:
    """``addr`` with exactly one trailing ``/p2p/<peer>``."""
    text = str(addr)
    suffix = f"/p2p/{peer}"
    return text if text.endswith(suffix) else text + suffix


def refuse_taken_port(addr: multiaddr.Multiaddr) -> None:
    """Raise ConfigError if something already listens on ``addr``'s TCP port.

    py-libp2p listens with SO_REUSEPORT (for hole punching), so a second node
    on a taken port does not fail: the kernel splits incoming connections
    between the two. A probe bind without SO_REUSEPORT still fails then.
    """
    try:
        port = int(addr.value_for_protocol("tcp"))
    except (multiaddr.exceptions.Error, TypeError, ValueError):
        return
    for family, proto in ((socket.AF_INET, "ip4"), (socket.AF_INET6, "ip6")):
        try:
            ip = addr.value_for_protocol(proto)
        except multiaddr.exceptions.Error:
            continue
        if port == 0 or not ip:
            return
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((ip, port))
            except OSError as exc:
                raise ConfigError(f"cannot listen on {addr}: {exc.strerror}") from None


def is_loopback(addr: str) -> bool:
    """Whether ``addr`` (a multiaddr string) reaches only this machine."""
    return addr.startswith(("/ip4/127.", "/ip6/::1/"))


def port_range(template: str, count: int) -> list[str]:
    """``count`` TCP listen addresses from ``template``; raises ConfigError.

    ``/ip4/ADDR/tcp/0`` (or ``/ip6/…``): ``count`` times the same, a free port
    each when listening; ``/ip4/ADDR/tcp/P``: ports P, P + 1, … P + count - 1.
    """
    usage = f"a listen address is /ip4/ADDR/tcp/PORT or /ip6/ADDR/tcp/PORT, not {template!r}"
    try:
        addr = multiaddr.Multiaddr(template)
        protocols = [p.name for p in addr.protocols()]
        port = int(addr.value_for_protocol("tcp"))
    except (ValueError, multiaddr.exceptions.Error):
        raise ConfigError(usage) from None
    if protocols not in (["ip4", "tcp"], ["ip6", "tcp"]):
        raise ConfigError(usage)
    if port == 0:
        return [str(addr)] * count
    if port + count - 1 > MAX_PORT:
        raise ConfigError(f"ports {port} to {port + count - 1} pass {MAX_PORT}")
    head = addr.decapsulate(multiaddr.Multiaddr(f"/tcp/{port}"))
    return [f"{head}/tcp/{port + index}" for index in range(count)]


def parse_bootstrap(text: str) -> tuple[PeerId, multiaddr.Multiaddr]:
    """A bootstrap address must name its peer: ``/ip4/…/tcp/…/p2p/12D3KooW…``."""
    try:
        named = multiaddr.Multiaddr(text).value_for_protocol("p2p")
        peer = PeerId.parse(named)
        return peer, transport_addr(text, peer)
    except (ValueError, multiaddr.exceptions.Error, SchemaError) as exc:
        raise ConfigError(f"bootstrap address must end in /p2p/<PeerID>: {text!r}") from exc


def _interface_ips(family: socket.AddressFamily) -> list[str]:
    """Addresses of this machine's interfaces in ``family``: no loopback, no
    link-local (a link-local IPv6 address needs a zone to be dialled)."""
    ips: list[str] = []
    for adapter in ifaddr.get_adapters():
        for entry in adapter.ips:
            text = entry.ip if isinstance(entry.ip, str) else entry.ip[0]
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                continue
            wanted = 4 if family == socket.AF_INET else 6
            if ip.version == wanted and not (ip.is_loopback or ip.is_link_local):
                ips.append(str(ip))
    return ips


def _default_route_ip(family: socket.AddressFamily) -> str | None:
    """The source address of the default route, None without one."""
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((_PROBE_TARGETS[family], 9))
            return str(probe.getsockname()[0])
        except OSError:  # no default route
            return None


def _host_ips(family: socket.AddressFamily) -> list[str]:
    """Where peers can reach a wildcard listener: the default route's source
    address, the other interface addresses, then loopback (cached briefly)."""
    now = time.monotonic()
    cached = _ips_cache.get(family)
    if cached is not None and now - cached[0] < INTERFACE_CACHE_SECONDS:
        return cached[1]
    found = _interface_ips(family)
    preferred = _default_route_ip(family)
    if preferred is not None and preferred in found:
        found.remove(preferred)
        found.insert(0, preferred)
    loopback = "127.0.0.1" if family == socket.AF_INET else "::1"
    ips = [*found[:MAX_INTERFACE_ADDRS], loopback]
    _ips_cache[family] = (now, ips)
    return ips


def dialable_addrs(addrs: list[str]) -> list[str]:
    """``addrs`` with each wildcard (0.0.0.0, ::) replaced by addresses a peer can dial:
    this machine's interface addresses (the default route's first), then loopback.

    Every interface counts, not only the default route's: a machine on a
    private network without a default route (a lab, a LAN with no uplink)
    is still reachable at its interface addresses.
    """
    out: list[str] = []
    for addr in addrs:
        prefix = next((p for p in _WILDCARDS if addr.startswith(p)), None)
        if prefix is None:
            out.append(addr)
            continue
        family = _WILDCARDS[prefix]
        proto = "ip4" if family == socket.AF_INET else "ip6"
        rest = addr[len(prefix) :]
        out.extend(f"/{proto}/{ip}/{rest}" for ip in _host_ips(family))
    return list(dict.fromkeys(out))
