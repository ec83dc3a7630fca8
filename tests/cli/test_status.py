"""``p2pdm status`` against running nodes, and how it words the node's record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

import pytest
import trio

from p2pdm.cli.status import describe
from p2pdm.client import NodeInfo
from tests.cli.conftest import assert_one_error_line, cli, running_node
from tests.conftest import node


def lines_of(out: str) -> dict[str, str]:
    return {line[:10].strip(): line[10:] for line in out.splitlines() if line[:10].strip()}


async def test_status_of_a_node_off_the_network(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_node(tmp_path / "alice", "alice") as alice:
        a = ("--home", str(alice.home.path))
        code, out, err = await cli(capsys, *a, "status")
        assert (code, err) == (0, "")
        shown = lines_of(out)
        assert shown["Node"] == f"alice ({alice.node.peer_id})"
        assert shown["Up"] == "less than a minute"
        assert shown["Contacts"] == "0"
        assert shown["Queued"] == "0 messages to deliver"
        assert shown["DHT"] == "not on the network"
        assert shown["Mailbox"] == "not on the network"

        code, out, _ = await cli(capsys, *a, "status", "--json")
        record = json.loads(out)
        assert record["peer_id"] == str(alice.node.peer_id) and record["dht"] is None
        assert "invite" not in record
        assert record["mailboxes"] == {
            "networked": False,
            "used": [],
            "offered": None,
            "withdrawals": {"pending": 0, "withdrawn": 0},
        }


async def test_status_without_a_node_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with running_node(tmp_path / "alice", "alice") as alice:
        home = str(alice.home.path)
    code, out, err = await cli(capsys, "--home", home, "status")
    assert (code, out) == (1, "")
    assert_one_error_line(err)


@pytest.mark.net
async def test_status_shows_what_the_dht_holds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with node(tmp_path, "bob") as bob, node(tmp_path, "ann", bob.running):
        with trio.fail_after(20):
            while not bob.running.host.dht_store_stats().records:  # noqa: ASYNC110
                await trio.sleep(0.1)
        code, out, err = await cli(capsys, "--home", str(bob.home.path), "status")
        assert (code, err) == (0, "")
        shown = lines_of(out)
        assert re.match(r"holds [1-9]\d* records? \(\d+(\.\d)? K?i?B\)", shown["DHT"])
        assert "refused none; 0 evicted" in shown["DHT"]
        assert shown["Address"].startswith("/ip4/127.0.0.1/tcp/")
        assert shown["Reach"].startswith("local: listening on loopback only"), shown["Reach"]
        assert shown["Mailbox"] == "uses 0 (0 named in our record); offers none"


_INFO_OFF_THE_NETWORK: Final[NodeInfo] = {
    "peer_id": "12D3KooWx",
    "name": "bob",
    "addrs": [],
    "version": "1",
    "started_at_ms": 0,
    "counts": {},
    "event_cursor": 0,
    "dht": None,
    "reachability": None,
    "token": {"name": "owner", "scope": "admin"},
    "invite": "p2pdm:…",
}


def test_the_dht_line_names_refusals_by_reason() -> None:
    info: NodeInfo = {
        "peer_id": "12D3KooWx",
        "name": "bob\x1b[2J",
        "addrs": [],
        "version": "1",
        "started_at_ms": 0,
        "counts": {"contacts": 2, "outbox": 1, "waiting_for_keys": 2, "unread": 3, "requests": 1},
        "event_cursor": 9,
        "dht": {
            "records": 12,
            "record_bytes": 4096,
            "providers": 1,
            "provider_bytes": 80,
            "refused": {"rate": 10, "peer_cap": 2},
            "evicted": 1,
            "routing_table": 3,
            "connected_peers": 2,
        },
        "reachability": {
            "status": "private",
            "reached": 0,
            "failed": 2,
            "silent": 1,
            "dht_mode": "client",
            "relayed_addrs": ["/ip4/100.64.1.1/tcp/4001/p2p/12D3KooWr/p2p-circuit/p2p/12D3KooWx"],
            "relay": None,
            "lan_peers": 0,
            "hole_punch": {"successes": 1, "failures": 2, "direct_dials": 0},
        },
        "token": {"name": "owner", "scope": "admin"},
        "invite": "p2pdm:…",
    }
    shown = dict(describe(info, now_ms=(26 * 60 + 5) * 60_000))
    assert (
        shown["Node"] == "bob\N{REPLACEMENT CHARACTER}[2J (12D3KooWx)"
    )  # no escape reaches the terminal
    assert shown["Up"] == "1 d 2 h"
    assert shown["Address"] == "(not listening)"
    assert shown["Queued"] == "1 message to deliver; 2 waiting for their recipients' keys"
    assert shown["Unread"] == "3; 1 message request"
    assert shown["DHT"] == (
        "holds 12 records (4.0 KiB) and 1 provider record; "
        "refused 12 writes (peer_cap 2, rate 10); 1 evicted"
    )
    assert shown["Punch"] == "1 hole punches succeeded, 2 failed; 0 relayed peers dialed directly"
    assert shown["Reach"] == (
        "private: behind a router or firewall: other nodes cannot dial this one; DHT client mode"
    )


def test_the_mailbox_line_counts_the_used_and_what_the_offered_holds() -> None:
    info = _INFO_OFF_THE_NETWORK
    used = {"peer_id": "12D3KooWm", "addrs": ["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWm"]}
    answer = {
        "networked": True,
        "used": [{**used, "named": True}, {**used, "peer_id": "12D3KooWn", "named": False}],
        "offered": {
            "envelopes": 1,
            "bytes": 2048,
            "recipients": 1,
            "max_envelopes": 10000,
            "max_bytes": 64 * 1024 * 1024,
            "max_envelopes_per_recipient": 500,
            "max_bytes_per_recipient": 8 * 1024 * 1024,
            "retention_s": 1209600,
        },
    }
    shown = dict(describe(info, now_ms=0, mailboxes=answer))
    assert shown["Mailbox"] == (
        "uses 2 (1 named in our record); offers one holding 1 envelope (2.0 KiB) "
        "for 1 recipient of 10000 (64.0 MiB)"
    )
    assert "Mailbox" not in dict(describe(info, now_ms=0))
    # Deposits of unsent messages still to take back are named.
    waiting = {**answer, "withdrawals": {"pending": 2, "withdrawn": 3}, "offered": None}
    assert dict(describe(info, now_ms=0, mailboxes=waiting))["Mailbox"] == (
        "uses 2 (1 named in our record); 2 deposits of unsent messages to take back; offers none"
    )
