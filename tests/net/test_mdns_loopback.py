"""A node that listens on loopback only announces nothing on the LAN."""

from __future__ import annotations

import logging

import pytest
import trio

from p2pdm.net._mdns import discover_lan_peers
from p2pdm.net.testing import open_hosts

pytestmark = pytest.mark.net


async def test_a_loopback_only_node_announces_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="p2pdm.net._mdns")
    async with open_hosts(1, join=False) as (host,):
        assert all("/ip4/127." in str(a) for a in host._host.get_addrs())
        with trio.fail_after(5):  # returns at once instead of announcing other addresses
            await discover_lan_peers(host, 0)
    assert "LAN discovery (mDNS) off: this node listens on loopback only" in caplog.text
    assert "(mDNS) on" not in caplog.text
