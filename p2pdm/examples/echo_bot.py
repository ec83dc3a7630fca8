"""Echo bot: answers every text message with ``you said: …``.

Run it against a running node (``scripts/echo-bot``, or
``python -m p2pdm.examples.echo_bot``). It follows ``message.received``
events from its saved cursor, so it can be stopped and started at will.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import trio

from p2pdm.client import AsyncClient
from p2pdm.examples.common import BotState, add_common_arguments, connect


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
        await echo(node, BotState.load(Path(args.state)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="echo-bot", description=__doc__.splitlines()[0])
    add_common_arguments(parser, "echo-bot.json")
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main, parser.parse_args())
