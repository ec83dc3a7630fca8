"""Echo bot: answers every text message with ``you said: …``.

Run it against a running node (``scripts/echo-bot``, or
``python -m p2pdm.examples.echo_bot``). It follows ``message.received``
events from its saved cursor, so it can be stopped and started at will; its
first start begins at the newest event, so old messages get no answer
(``--from-start`` answers them too).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import trio

from p2pdm.client import AsyncClient
from p2pdm.examples.common import BotState, add_common_arguments, connect, start


async def echo(node: AsyncClient, state: BotState) -> None:
    """Answer messages forever, saving the cursor after each event."""
    events = node.events(since=state.cursor, types=["message.received"])
    async for event in events:
        message = event["message"]
        if message is not None and message["text"]:
            await node.send(
                message["peer"],
                f"you said: {message['text']}",
                idempotency_key=f"echo-{event['id']}",
            )
        state.cursor = events.cursor
        state.save()


async def main(args: argparse.Namespace) -> None:
    async with connect(args) as node:
        state = BotState.load(Path(args.state))
        await start("echo-bot", node, state, from_start=args.from_start)
        await echo(node, state)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="echo-bot", description=__doc__.splitlines()[0])
    add_common_arguments(parser, "echo-bot.json")
    return parser


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main, build_parser().parse_args())
