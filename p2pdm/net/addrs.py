"""Multiaddr strings in and out of the host.

Addresses cross the network layer's edge as text. Anything handed in may end
in ``/p2p/<PeerID>`` (which must then name the expected peer); everything
handed out does. Uses py-multiaddr only, not libp2p.
"""

from __future__ import annotations

import socket

import multiaddr

from p2pdm.core.identity import PeerId
from p2pdm.errors import ConfigError, SchemaError
from p2pdm.limits import MAX_ADDR_BYTES

__all__ = [
    "dialable_addrs",
    "full_addr",
    "parse_bootstrap",
    "refuse_taken_port",
    "transport_addr",
]

#: Wildcard listen addresses and the address family of each.
_WILDCARDS = {"/ip4/0.0.0.0/": socket.AF_INET, "/ip6/::/": socket.AF_INET6}
#: Any address outside this host works for the routing-table probe below: it
#: is never sent to (UDP connect only picks the route and source address).
_PROBE_TARGETS = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}


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


def parse_bootstrap(text: str) -> tuple[PeerId, multiaddr.Multiaddr]:
    """A bootstrap address must name its peer: ``/ip4/…/tcp/…/p2p/12D3KooW…``."""
    try:
        named = multiaddr.Multiaddr(text).value_for_protocol("p2p")
        peer = PeerId.parse(named)
        return peer, transport_addr(text, peer)
    except (ValueError, multiaddr.exceptions.Error, SchemaError) as exc:
        raise ConfigError(f"bootstrap address must end in /p2p/<PeerID>: {text!r}") from exc


def _host_ips(family: socket.AddressFamily) -> list[str]:
    """This machine's loopback address and the source address of its default route."""
    ips = ["127.0.0.1" if family == socket.AF_INET else "::1"]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((_PROBE_TARGETS[family], 9))
            ip = str(probe.getsockname()[0])
        except OSError:  # no route: loopback only
            return ips
    if ip not in ips:
        ips.append(ip)
    return ips


def dialable_addrs(addrs: list[str]) -> list[str]:
    """``addrs`` with each wildcard (0.0.0.0, ::) replaced by addresses a peer can dial:
    loopback and the address of the default route."""
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
