"""The example bots against real nodes on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pdm.client import AsyncClient
from p2pdm.examples import echo_bot, support_bot
from p2pdm.examples.common import BotState
from p2pdm.examples.echo_bot import echo
from p2pdm.examples.support_bot import (
    DEFAULT_FAQ,
    HANDOVER_REPLY,
    answer_for,
    find_staff,
    handover_note,
    support,
)
from p2pdm.node.tokens import create_token
from tests.conftest import Peer, node

pytestmark = pytest.mark.net


async def texts_from(peer: Peer, other: Peer) -> list[str]:
    page = await peer.call("GET", f"/v1/conversations/{other.id}/messages")
    return [m["text"] for m in reversed(page["messages"]) if m["direction"] == "in"]


async def wait_for_texts(peer: Peer, other: Peer, count: int, deadline: float = 20) -> list[str]:
    with trio.fail_after(deadline):
        while len(found := await texts_from(peer, other)) < count:  # noqa: ASYNC110
            await trio.sleep(0.05)
    return found


async def befriend(a: Peer, b: Peer) -> None:
    await a.call("POST", "/v1/contacts", json={"invite": b.running.node.invite()})
    await b.call("POST", "/v1/contacts", json={"invite": a.running.node.invite()})


async def test_echo_bot_answers_and_resumes_without_repeating(tmp_path: Path) -> None:
    async with node(tmp_path, "bot") as bot, node(tmp_path, "ann", bot.running) as ann:
        await befriend(bot, ann)
        state_path = tmp_path / "echo.json"
        async with AsyncClient.for_home(bot.home) as client, trio.open_nursery() as nursery:
            nursery.start_soon(echo, client, BotState.load(state_path))
            await ann.call("POST", "/v1/messages", json={"to": "bot", "text": "ping"})
            assert await wait_for_texts(ann, bot, 1) == ["you said: ping"]
            nursery.cancel_scope.cancel()
        # Restarted from its saved cursor, it answers only what is new.
        async with AsyncClient.for_home(bot.home) as client, trio.open_nursery() as nursery:
            nursery.start_soon(echo, client, BotState.load(state_path))
            await ann.call("POST", "/v1/messages", json={"to": "bot", "text": "again"})
            assert await wait_for_texts(ann, bot, 2) == ["you said: ping", "you said: again"]
            await trio.sleep(0.5)
            assert len(await texts_from(ann, bot)) == 2
            nursery.cancel_scope.cancel()


async def received(peer: Peer, count: int) -> None:
    with trio.fail_after(20):
        while peer.running.node.store.counts()["messages"] < count:  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_echo_bot_starts_now_then_resumes_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with node(tmp_path, "bot") as bot, node(tmp_path, "ann", bot.running) as ann:
        await befriend(bot, ann)
        await ann.call("POST", "/v1/messages", json={"to": "bot", "text": "before the bot"})
        await received(bot, 1)
        state = tmp_path / "echo.json"
        argv = ["--home", str(bot.home.path), "--state", str(state)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_bot.main, echo_bot.build_parser().parse_args(argv))
            await ann.call("POST", "/v1/messages", json={"to": "bot", "text": "now"})
            assert await wait_for_texts(ann, bot, 1) == ["you said: now"]
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
        # The first start began at the newest event: the old message got no answer.
        assert await texts_from(ann, bot) == ["you said: now"]
        [line] = capsys.readouterr().out.splitlines()
        assert line.startswith(f"echo-bot: node bot {bot.id} at 127.0.0.1:")
        assert "the owner's token" in line and bot.home.api_token() not in line
        assert f"cursor in {state} (first start: from now, after event " in line

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_bot.main, echo_bot.build_parser().parse_args(argv))
            await ann.call("POST", "/v1/messages", json={"to": "bot", "text": "later"})
            assert await wait_for_texts(ann, bot, 2) == ["you said: now", "you said: later"]
            nursery.cancel_scope.cancel()
        [line] = capsys.readouterr().out.splitlines()
        assert f"cursor in {state} (resuming after event " in line


async def test_bots_from_the_start_answer_old_messages_and_name_their_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with node(tmp_path, "shop") as shop, node(tmp_path, "ann", shop.running) as ann:
        await befriend(shop, ann)
        await ann.call("POST", "/v1/messages", json={"to": "shop", "text": "are you open?"})
        await received(shop, 1)
        _, secret = create_token(shop.running.node.store, "send", [], "helpdesk", now_ms=0)
        argv = ["--home", str(shop.home.path), "--token", secret, "--from-start"]
        args = support_bot.build_parser().parse_args([*argv, "--state", str(tmp_path / "s")])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(support_bot.main, args)
            assert await wait_for_texts(ann, shop, 1) == [DEFAULT_FAQ[0].answer]
            nursery.cancel_scope.cancel()
        [line] = capsys.readouterr().out.splitlines()
        assert line.startswith(f"support-bot: node shop {shop.id} at ")
        assert "token 'helpdesk' (scope send)" in line and secret not in line
        assert "(from the oldest event kept (--from-start))" in line


def test_faq_matching_is_by_whole_words() -> None:
    assert answer_for("What are your opening HOURS?", DEFAULT_FAQ) == DEFAULT_FAQ[0].answer
    assert answer_for("can I get a refund", DEFAULT_FAQ) == DEFAULT_FAQ[2].answer
    assert answer_for("reopened", DEFAULT_FAQ) is None
    assert answer_for("my parcel arrived broken", DEFAULT_FAQ) is None


async def test_support_bot_answers_faq_and_hands_the_rest_to_a_person(tmp_path: Path) -> None:
    async with (
        node(tmp_path, "shop") as shop,
        node(tmp_path, "ann", shop.running) as ann,
    ):
        await befriend(shop, ann)
        state_path = tmp_path / "support.json"
        async with AsyncClient.for_home(shop.home) as client, trio.open_nursery() as nursery:
            nursery.start_soon(support, client, BotState.load(state_path), DEFAULT_FAQ)
            asked = await ann.call(
                "POST", "/v1/messages", json={"to": "shop", "text": "when are you open?"}
            )
            assert await wait_for_texts(ann, shop, 1) == [DEFAULT_FAQ[0].answer]
            # The bot read it: Ann sees `read`.
            with trio.fail_after(20):
                while (await ann.call("GET", f"/v1/messages/{asked['id']}"))[  # noqa: ASYNC110
                    "status"
                ] != "read":
                    await trio.sleep(0.05)

            await ann.call("POST", "/v1/messages", json={"to": "shop", "text": "my parcel broke"})
            assert (await wait_for_texts(ann, shop, 2))[-1] == HANDOVER_REPLY
            await ann.call("POST", "/v1/messages", json={"to": "shop", "text": "hello??"})
            with trio.fail_after(20):
                while shop.running.node.store.counts()["unread"] < 2:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
        # Set aside: no answer to the follow-up, both left unread for a person.
        assert len(await texts_from(ann, shop)) == 2
        assert shop.running.node.store.counts()["unread"] == 2
        assert BotState.load(state_path).notes["set_aside"] == [ann.id]


async def test_support_bot_tells_the_staff_of_a_hand_over_and_leaves_them_alone(
    tmp_path: Path,
) -> None:
    async with (
        node(tmp_path, "shop") as shop,
        node(tmp_path, "ann", shop.running) as ann,
        node(tmp_path, "sam", shop.running) as sam,
    ):
        await befriend(shop, ann)
        await befriend(shop, sam)
        async with AsyncClient.for_home(shop.home) as client, trio.open_nursery() as nursery:
            staff = await find_staff(client, "SAM")  # a contact's name, any case
            assert (staff.notify, staff.peer) == (sam.id, sam.id)
            with pytest.raises(SystemExit, match="--notify 'zed': no contact or group"):
                await find_staff(client, "zed")
            state = BotState.load(tmp_path / "support.json")
            nursery.start_soon(support, client, state, DEFAULT_FAQ, staff)
            await ann.call("POST", "/v1/messages", json={"to": "shop", "text": "my parcel broke"})
            assert (await wait_for_texts(ann, shop, 1)) == [HANDOVER_REPLY]
            told = await wait_for_texts(sam, shop, 1)
            assert told == [handover_note(f"ann ({ann.id})", "my parcel broke")]
            # Sam writes to the shop: no FAQ answer, no hand-over of Sam himself.
            await sam.call("POST", "/v1/messages", json={"to": "shop", "text": "on it, hours?"})
            await received(shop, 4)  # Ann's, the reply, the note, Sam's
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
        assert len(await texts_from(sam, shop)) == 1
        assert BotState.load(tmp_path / "support.json").notes["set_aside"] == [ann.id]
    long = handover_note("ann", "x" * 500)
    assert len(long) < 300 and "x" * 199 + "…" in long
