"""The local demo bot beside a real node: started through the API, it reads and
answers; it runs again after a restart, and removing it leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pdm.daemon.demo import DEMO_DIR, DEMO_NAME, answer_text
from tests.conftest import node, wait_for_status

pytestmark = [pytest.mark.net, pytest.mark.slow]

#: The bot waits before reading and answering; its start is a whole node.
DEMO_WAIT_S = 30.0


async def test_the_demo_bot_reads_and_answers_and_can_be_removed(tmp_path: Path) -> None:
    async with node(tmp_path, "alice") as alice:
        assert (await alice.call("GET", "/v1/demo")) == {
            "offered": True,
            "running": False,
            "peer_id": None,
            "name": None,
        }
        with trio.fail_after(DEMO_WAIT_S):
            demo = await alice.call("POST", "/v1/demo")
        assert demo["running"] and demo["name"] == DEMO_NAME
        [contact] = (await alice.call("GET", "/v1/contacts"))["contacts"]
        assert contact == {**contact, "peer_id": demo["peer_id"], "name": DEMO_NAME}
        assert (tmp_path / "alice" / DEMO_DIR / "identity.cbor").exists()

        sent = await alice.call("POST", "/v1/messages", json={"to": DEMO_NAME, "text": "hello"})
        await wait_for_status(alice, sent["id"], "read", DEMO_WAIT_S)
        with trio.fail_after(DEMO_WAIT_S):
            while True:
                page = await alice.call(
                    "GET", f"/v1/conversations/{sent['conversation_id']}/messages"
                )
                texts = [m["text"] for m in page["messages"] if m["direction"] == "in"]
                if texts:
                    break
                await trio.sleep(0.1)
        assert texts == [answer_text("hello")]
        # Not a request: the two added each other.
        assert not page["messages"][0]["request"]

    # The node starts again: so does the demo bot the newcomer kept.
    async with node(tmp_path, "alice") as alice:
        with trio.fail_after(DEMO_WAIT_S):
            while not (await alice.call("GET", "/v1/demo"))["running"]:  # noqa: ASYNC110 - polls the API
                await trio.sleep(0.1)
        removed = await alice.call("DELETE", "/v1/demo")
        assert removed["running"] is False and removed["peer_id"] is None
        assert (await alice.call("GET", "/v1/contacts"))["contacts"] == []
        assert not (tmp_path / "alice" / DEMO_DIR).exists()
