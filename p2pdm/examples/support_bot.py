"""Customer-service bot: answers common questions, hands the rest to a person.

For each text message it looks for the keywords of a FAQ entry. On a
match it answers and marks the conversation read, so the customer sees
``read`` (if the node's read receipts are on, the node's setting decides).
Without a match it tells the customer that a person will reply, sets the
conversation aside and leaves it unread for the shop's staff; it answers
nothing more there until the staff hand it back with ``--release PEER``.

The FAQ is a TOML file (``--faq FILE``) of ``[[entry]]`` tables with
``keywords`` (a list) and ``answer``; without one, a small built-in FAQ.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from p2pdm.client import AsyncClient, Event
from p2pdm.examples.common import BotState, add_common_arguments, connect, start

__all__ = ["DEFAULT_FAQ", "HANDOVER_REPLY", "FaqEntry", "answer_for", "support"]

HANDOVER_REPLY: Final = "Thanks! A person from our team will get back to you soon."
#: A FAQ file bigger than this is a mistake.
MAX_FAQ_BYTES: Final = 256 << 10


@dataclass(frozen=True)
class FaqEntry:
    keywords: tuple[str, ...]
    answer: str


DEFAULT_FAQ: Final = (
    FaqEntry(("hours", "open", "opening"), "We are open Monday to Saturday, 9:00 to 18:00."),
    FaqEntry(("shipping", "delivery", "ship"), "We ship within 2 working days; tracking follows."),
    FaqEntry(("return", "refund"), "You can return any item within 30 days for a full refund."),
)


def load_faq(path: Path) -> tuple[FaqEntry, ...]:
    data = tomllib.loads(path.read_bytes()[:MAX_FAQ_BYTES].decode())
    entries = []
    for item in data.get("entry", []):
        keywords = tuple(str(k).lower() for k in item["keywords"])
        entries.append(FaqEntry(keywords, str(item["answer"])))
    return tuple(entries)


def answer_for(text: str, faq: tuple[FaqEntry, ...]) -> str | None:
    """The answer of the first entry with a keyword among the words of ``text``."""
    words = set(re.findall(r"\w+", text.lower()))
    for entry in faq:
        if words & set(entry.keywords):
            return entry.answer
    return None


async def handle(
    node: AsyncClient, event: Event, state: BotState, faq: tuple[FaqEntry, ...]
) -> None:
    message = event["message"]
    if message is None or not message["text"]:
        return
    peer = message["peer"]
    set_aside: list[str] = state.notes.setdefault("set_aside", [])
    if peer in set_aside:
        return  # a person is handling this conversation
    answer = answer_for(message["text"], faq)
    key = f"support-{event['id']}"
    if answer is None:
        await node.send(peer, HANDOVER_REPLY, idempotency_key=key)
        set_aside.append(peer)
        return
    await node.send(peer, answer, idempotency_key=key)
    await node.mark_read(peer)


async def support(node: AsyncClient, state: BotState, faq: tuple[FaqEntry, ...]) -> None:
    events = node.events(since=state.cursor, types=["message.received"])
    async for event in events:
        await handle(node, event, state, faq)
        state.cursor = events.cursor
        state.save()


async def main(args: argparse.Namespace) -> None:
    state = BotState.load(Path(args.state))
    if args.release:
        if state.saved:  # else nothing is set aside, and a first start stays a first start
            set_aside = state.notes.get("set_aside", [])
            state.notes["set_aside"] = [p for p in set_aside if p not in args.release]
            state.save()
        return
    faq = load_faq(Path(args.faq)) if args.faq else DEFAULT_FAQ
    async with connect(args) as node:
        await start("support-bot", node, state, from_start=args.from_start)
        await support(node, state, faq)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="support-bot", description=__doc__.splitlines()[0])
    add_common_arguments(parser, "support-bot.json")
    parser.add_argument("--faq", help="a TOML file of [[entry]] keywords = [...], answer = '...'")
    parser.add_argument(
        "--release",
        action="append",
        default=[],
        metavar="PEER",
        help="hand a conversation back to the bot (repeatable), then exit",
    )
    return parser


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main, build_parser().parse_args())
