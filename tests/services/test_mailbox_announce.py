"""The mailbox service announcing itself: quiet while alone, one line when it works or fails."""

from __future__ import annotations

import logging

import pytest
import trio

from p2pdm.core import mailbox as mb
from p2pdm.services.mailbox_server import (
    MAILBOX_PROVIDE_RETRY_SECONDS,
    MAILBOX_PROVIDE_WARN_FAILURES,
    MAILBOX_PROVIDE_WARN_SECONDS,
)
from tests.fakenet import FakeNetwork
from tests.services.conftest import Box

LOGGER = "p2pdm.services.mailbox_server"


def announce_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == LOGGER and "announc" in r.getMessage()
    ]


async def test_the_first_node_retries_quietly_and_says_once_when_it_worked(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    box = Box(FakeNetwork(nursery))
    box.host.online = False  # nobody to take the provider record yet
    await nursery.start(box.service.run)
    await trio.sleep(3 * MAILBOX_PROVIDE_RETRY_SECONDS + 1)
    failed = announce_lines(caplog)
    assert len(failed) == 4
    assert all(level == logging.DEBUG for level, _ in failed)
    box.host.online = True  # a second node joined
    await trio.sleep(MAILBOX_PROVIDE_RETRY_SECONDS)
    assert box.identity.peer_id in box.host.net.providers[mb.MAILBOX_SERVICE_KEY]
    above_debug = [line for line in announce_lines(caplog) if line[0] > logging.DEBUG]
    assert above_debug == [(logging.INFO, "announced the mailbox service in the DHT")]
    # The hourly renewals say nothing more above debug level.
    await trio.sleep(3 * 3600)
    assert [line for line in announce_lines(caplog) if line[0] > logging.DEBUG] == above_debug


async def test_a_lasting_failure_is_one_warning_then_recovery_is_one_info_line(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    box = Box(FakeNetwork(nursery))
    box.host.online = False
    await nursery.start(box.service.run)
    await trio.sleep(MAILBOX_PROVIDE_WARN_SECONDS - 1)
    assert not [line for line in announce_lines(caplog) if line[0] > logging.DEBUG]
    await trio.sleep(MAILBOX_PROVIDE_RETRY_SECONDS * (MAILBOX_PROVIDE_WARN_FAILURES + 5))
    warnings = [msg for level, msg in announce_lines(caplog) if level == logging.WARNING]
    assert len(warnings) == 1
    assert "failed" in warnings[0] and "this host is offline" in warnings[0]
    box.host.online = True
    await trio.sleep(MAILBOX_PROVIDE_RETRY_SECONDS)
    infos = [msg for level, msg in announce_lines(caplog) if level == logging.INFO]
    assert infos == ["announced the mailbox service in the DHT"]
