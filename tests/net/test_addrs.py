"""Addresses a wildcard listener announces, and listen port ranges."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

import ifaddr
import pytest

from p2pdm.errors import ConfigError
from p2pdm.net import addrs
from p2pdm.net.addrs import MAX_INTERFACE_ADDRS, dialable_addrs, is_loopback, port_range


def _adapter(name: str, *ips: str | tuple[str, int, int]) -> ifaddr.Adapter:
    return ifaddr.Adapter(name, name, [ifaddr.IP(ip, 24, name) for ip in ips])


@dataclass
class Machine:
    """This machine's interfaces and default route, as a test sets them."""

    adapters: list[ifaddr.Adapter] = field(default_factory=list)
    routes: dict[socket.AddressFamily, str] = field(default_factory=dict)
    listings: int = 0

    def get_adapters(self) -> list[ifaddr.Adapter]:
        self.listings += 1
        return self.adapters


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Machine:
    fake = Machine()
    monkeypatch.setattr(ifaddr, "get_adapters", fake.get_adapters)
    monkeypatch.setattr(addrs, "_default_route_ip", fake.routes.get)
    monkeypatch.setattr(addrs, "_ips_cache", {})
    return fake


def test_a_machine_without_default_route_announces_its_interfaces(
    machine: Machine,
) -> None:
    # A lab network or a LAN without uplink: no default route, one private link.
    machine.adapters = [_adapter("lo", "127.0.0.1"), _adapter("veth0", "10.77.0.1")]
    assert dialable_addrs(["/ip4/0.0.0.0/tcp/4001"]) == [
        "/ip4/10.77.0.1/tcp/4001",
        "/ip4/127.0.0.1/tcp/4001",
    ]


def test_the_default_route_comes_first_and_link_local_is_left_out(
    machine: Machine,
) -> None:
    machine.adapters = [
        _adapter("lo", "127.0.0.1", ("::1", 0, 0)),
        _adapter("docker0", "172.17.0.1"),
        _adapter("eth0", "192.168.1.20", ("fe80::1", 0, 2), ("fd00::20", 0, 0)),
        _adapter("usb0", "169.254.3.3"),
    ]
    machine.routes[socket.AF_INET] = "192.168.1.20"
    assert dialable_addrs(["/ip4/0.0.0.0/tcp/1", "/ip6/::/tcp/1", "/ip4/10.0.0.5/tcp/2"]) == [
        "/ip4/192.168.1.20/tcp/1",
        "/ip4/172.17.0.1/tcp/1",
        "/ip4/127.0.0.1/tcp/1",
        "/ip6/fd00::20/tcp/1",
        "/ip6/::1/tcp/1",
        "/ip4/10.0.0.5/tcp/2",  # not a wildcard: as given
    ]


def test_interface_addresses_are_capped_and_listed_once_in_a_while(
    machine: Machine,
) -> None:
    machine.adapters = [_adapter(f"br{i}", f"10.0.{i}.1") for i in range(20)]
    first = dialable_addrs(["/ip4/0.0.0.0/tcp/1"])
    assert len(first) == MAX_INTERFACE_ADDRS + 1 and first[-1] == "/ip4/127.0.0.1/tcp/1"
    assert dialable_addrs(["/ip4/0.0.0.0/tcp/1"]) == first
    assert machine.listings == 1  # the second answer came from the cache


def test_port_range() -> None:
    assert port_range("/ip4/0.0.0.0/tcp/0", 2) == ["/ip4/0.0.0.0/tcp/0"] * 2
    assert port_range("/ip4/10.0.0.1/tcp/4001", 3) == [
        "/ip4/10.0.0.1/tcp/4001",
        "/ip4/10.0.0.1/tcp/4002",
        "/ip4/10.0.0.1/tcp/4003",
    ]
    assert port_range("/ip6/::/tcp/65534", 2) == ["/ip6/::/tcp/65534", "/ip6/::/tcp/65535"]


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("/ip4/0.0.0.0/tcp/65535", "ports 65535 to 65537 pass 65535"),
        ("0.0.0.0:4001", "is /ip4/ADDR/tcp/PORT"),
        ("/ip4/0.0.0.0/udp/4001", "is /ip4/ADDR/tcp/PORT"),
        ("/dns4/example.org/tcp/4001", "is /ip4/ADDR/tcp/PORT"),
        (
            "/ip4/0.0.0.0/tcp/1/p2p/12D3KooWGjssTSMGSG4tCMJCc5ju1r33TjS8GXjjaNVe3zGHAKcB",
            "is /ip4/ADDR/tcp/PORT",
        ),
    ],
)
def test_port_range_refuses(template: str, error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        port_range(template, 3)


def test_is_loopback() -> None:
    assert is_loopback(
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGjssTSMGSG4tCMJCc5ju1r33TjS8GXjjaNVe3zGHAKcB"
    )
    assert is_loopback("/ip6/::1/tcp/1")
    assert not is_loopback("/ip4/10.77.0.1/tcp/1")
    assert not is_loopback("/ip6/::10/tcp/1")
