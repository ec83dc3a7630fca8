"""Customer-service bot: answers common questions, hands the rest to a person.

For each text message it looks for the keywords of a FAQ entry. On a
match it answers and marks the conversation read, so the customer sees
``read`` (if the node's read receipts are on, the node's setting decides).
Without a match it tells the customer that a person will reply, sets the
conversation aside and leaves it unread for the shop's staff; it answers
nothing more there until the staff hand it back with ``--release PEER``.

With ``--notify CONTACT`` (a staff member's node, or a staff group, known
to this node) each hand-over is also told there, naming the customer and
quoting the question, so a person knows to open the shop's node; what the
staff write to the shop, and any group chat, get no answer from the bot.

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
#: Most characters of the question quoted to the staff.
QUOTED_CHARS: Final = 200
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


def handover_note(who: str, text: str) -> str:
    """What the staff are told of a question the bot handed over."""
    quoted = text if len(text) <= QUOTED_CHARS else text[: QUOTED_CHARS - 1] + "…"
    return f"{who} needs a person: “{quoted}” (answer from the shop's node)"


@dataclass(frozen=True)
class Staff:
    """Where hand-overs are told (``--notify``), and whom the bot leaves alone there."""

    notify: str
    #: The staff contact's PeerID (None for a group, whose chat the bot skips anyway).
    peer: str | None


async def find_staff(node: AsyncClient, notify: str) -> Staff:
    """``--notify``'s contact (name or PeerID) or group; SystemExit with one line if none."""
    for contact in await node.contacts():
        if notify == contact["peer_id"] or notify.lower() == (contact["name"] or "").lower():
            return Staff(contact["peer_id"], contact["peer_id"])
    for group in await node.groups():
        if notify in (group["id"], group["name"]) and group["state"] == "active":
            return Staff(group["id"], None)
    raise SystemExit(f"support-bot: --notify {notify!r}: no contact or group of that name here")


async def handle(
    node: AsyncClient,
    event: Event,
    state: BotState,
    faq: tuple[FaqEntry, ...],
    staff: Staff | None = None,
) -> None:
    message = event["message"]
    if message is None or not message["text"] or message.get("group"):
        return  # customers write one to one; a group chat is not theirs
    peer = message["peer"]
    if staff is not None and peer == staff.peer:
        return  # the staff, not a customer
    set_aside: list[str] = state.notes.setdefault("set_aside", [])
    if peer in set_aside:
        return  # a person is handling this conversation
    answer = answer_for(message["text"], faq)
    key = f"support-{event['id']}"
    if answer is None:
        await node.send(peer, HANDOVER_REPLY, idempotency_key=key)
        if staff is not None:
            names = {c["peer_id"]: c["name"] for c in await node.contacts()}
            who = f"{names[peer]} ({peer})" if names.get(peer) else peer
            note = handover_note(who, message["text"])
            await node.send(staff.notify, note, idempotency_key=f"support-notify-{event['id']}")
        set_aside.append(peer)
        return
    await node.send(peer, answer, idempotency_key=key)
    await node.mark_read(peer)


async def support(
    node: AsyncClient, state: BotState, faq: tuple[FaqEntry, ...], staff: Staff | None = None
) -> None:
    events = node.events(since=state.cursor, types=["message.received"])
    async for event in events:
        await handle(node, event, state, faq, staff)
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
        staff = await find_staff(node, args.notify) if args.notify else None
        await start("support-bot", node, state, from_start=args.from_start)
        await support(node, state, faq, staff)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="support-bot", description=__doc__.splitlines()[0])
    add_common_arguments(parser, "support-bot.json")
    parser.add_argument("--faq", help="a TOML file of [[entry]] keywords = [...], answer = '...'")
    parser.add_argument(
        "--notify",
        metavar="CONTACT",
        help="tell this contact or group of each conversation handed to a person",
    )
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
