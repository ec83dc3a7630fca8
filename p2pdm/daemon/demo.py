"""The local demo bot: a second node on this machine that answers like the echo bot.

How this works: a newcomer with no contacts can press "Try p2pdm with a demo
contact" in the web app (``POST /v1/demo``). :class:`Demo` then runs a second,
complete p2pdm node inside the same process: its own identity and store in
``<home>/demo/`` (plain, no passphrase: it holds nothing of the person's), its
own libp2p host on 127.0.0.1 only, and its own local API on a free loopback
port. The two nodes add each other from their invites, so messages between
them take the real path (sessions, the dm protocol, receipts). The bot
follows ``message.received`` events through its API with the SDK, like the
example echo bot (``p2pdm.examples.echo_bot``): it waits :data:`READ_AFTER_S`
(so the sender sees "delivered" before "read"), marks the conversation read,
and answers ``you said: …``.

The bot is named :data:`DEMO_NAME` in the contacts, so nobody takes it for a
person. It starts again with the node while its home exists (unless ``p2pdm
run --no-demo``); ``DELETE /v1/demo`` stops it, forgets the contact and
deletes its home.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable
from contextlib import closing, suppress
from typing import TYPE_CHECKING, Any, Final

import trio

from p2pdm.api.server import serve_api
from p2pdm.core.identity import PeerId
from p2pdm.daemon.home import Home
from p2pdm.errors import NotFound, P2PDMError
from p2pdm.node.node import Node

if TYPE_CHECKING:
    from p2pdm.client import AsyncClient

__all__ = ["DEMO_DIR", "DEMO_NAME", "Demo"]

log = logging.getLogger("p2pdm.demo")

#: The demo bot's home, inside the node's home.
DEMO_DIR: Final = "demo"
#: The bot's contact name: says what it is.
DEMO_NAME: Final = "Demo bot (local)"
#: The name in the bot's own invite.
DEMO_SELF_NAME: Final = "p2pdm demo bot"
#: Seconds the bot waits before marking a message read: long enough to see
#: "delivered" in the app first.
READ_AFTER_S: Final = 1.5
#: Seconds between marking read and answering.
ANSWER_AFTER_S: Final = 1.0
#: Longest the bot may take to start (its host, its API) before it is given up.
START_TIMEOUT_S: Final = 30.0
#: The bot's libp2p address: this machine only, a free port.
DEMO_LISTEN: Final = ("/ip4/127.0.0.1/tcp/0",)


def answer_text(text: str | None) -> str:
    """The echo bot's answer."""
    return f"you said: {text}" if text else "I got your message (I can only echo text)."


class Demo:
    """Starts, reports and removes the demo bot of one node (see the module doc)."""

    def __init__(
        self,
        home: Home,
        node: Node,
        nursery: trio.Nursery,
        serve_network: Callable[..., Awaitable[Any]],
        *,
        offered: bool,
    ) -> None:
        """``serve_network(bot, task_status=…)`` runs the bot's network services
        (the runner's ``serve_node`` on :data:`DEMO_LISTEN`, as a DHT client)."""
        self._home = Home(home.path / DEMO_DIR, env={})
        self._serve_network = serve_network
        self._node = node
        self._nursery = nursery
        self._offered = offered
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self.peer: PeerId | None = None

    @property
    def exists(self) -> bool:
        return self._home.has_identity()

    def status(self) -> dict[str, Any]:
        offer = self._node.settings().get("demo_offer") is True
        return {
            "offered": self._offered and offer,
            "running": self.peer is not None,
            "peer_id": None if self.peer is None else str(self.peer),
            "name": DEMO_NAME if self.peer is not None else None,
        }

    async def start(self) -> dict[str, Any]:
        if self.peer is None:
            if not self._offered:
                raise P2PDMError("the demo bot is off on this node (`p2pdm run --no-demo`)")
            with trio.fail_after(START_TIMEOUT_S):
                await self._nursery.start(self._run)
        return self.status()

    async def remove(self) -> dict[str, Any]:
        peer = self.peer
        if self._scope is not None:
            self._scope.cancel()
            with trio.move_on_after(START_TIMEOUT_S):
                await self._stopped.wait()
        if peer is not None:
            with suppress(NotFound):
                self._node.delete_contact(peer)
        shutil.rmtree(self._home.path, ignore_errors=True)
        return self.status()

    async def start_quietly(self) -> None:
        """:meth:`start`, logging a failure instead of raising (the node runs on)."""
        try:
            await self.start()
        except (P2PDMError, OSError, trio.TooSlowError) as exc:
            log.warning("the demo bot did not start: %s", exc)

    async def _run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as self._scope:
                await self._serve(task_status)
        except Exception as exc:
            if self.peer is None:
                raise  # not started yet: start() reports it
            # It runs in the node's own nursery: its failure must not stop the node.
            log.warning("the demo bot stopped: %r", exc)
        finally:
            self.peer = None
            self._scope = None
            self._stopped.set()

    async def _serve(self, task_status: Any) -> None:
        home = self._home
        if not home.has_identity():
            home.create_identity(DEMO_SELF_NAME)
        with home.lock(), closing(home.open_store()) as store:
            bot = Node(home.load_identity(), store)
            async with trio.open_nursery() as nursery:
                await nursery.start(self._serve_network, bot)
                host, port = await nursery.start(serve_api, bot, home.api_token(), "127.0.0.1", 0)
                # Each adds the other: a contact, not a message request.
                bot.add_contact_from_invite(self._node.invite())
                added = self._node.add_contact_from_invite(bot.invite(), DEMO_NAME)
                self.peer = added.contact.peer_id
                log.info("the demo bot %s runs on this machine", self.peer)
                task_status.started()
                # The SDK's client is loaded with the demo, not with every node.
                from p2pdm.client import AsyncClient

                async with AsyncClient(host, port, home.api_token()) as client:
                    await answer(client)


async def answer(client: AsyncClient) -> None:
    """Answer every message from now on: read it, then echo it."""
    since = int((await client.node())["event_cursor"])
    async for event in client.events(since=since, types=["message.received"]):
        message = event.get("message")
        if not message or message.get("direction") != "in":
            continue
        await trio.sleep(READ_AFTER_S)
        with suppress(P2PDMError):
            await client.mark_read(message["conversation_id"])
        await trio.sleep(ANSWER_AFTER_S)
        try:
            await client.send(
                message["peer"],
                answer_text(message.get("text")),
                idempotency_key=f"demo-{event['id']}",
            )
        except P2PDMError as exc:
            log.warning("the demo bot could not answer: %s", exc)
