"""One change to hypercorn 0.18's HTTP/1.1 protocol: a response's head and body in one write.

How this works: hypercorn writes the status line and headers as soon as the
app starts its response, then the body in a second write: two ``send``
calls per answer, and on the client's side two wake-ups, for a JSON answer
of a few hundred bytes. :func:`coalesce_response_head` makes
``H11Protocol.stream_send`` hold the encoded head of a response that
declares its ``Content-Length`` (every JSON answer of the API, files) and
write it together with the first piece of body that follows (or with the
end of the message, for an empty body). Anything else that comes first
sends the held head before it, so the bytes and their order on the wire are
unchanged. Responses without a length (the event stream, which must show
its head before its first event) and WebSocket handshakes are written as
before. Applied once, when :mod:`p2pdm.api.server` is imported, and only to
the hypercorn releases it was checked against (:data:`CHECKED_RELEASES`; the
project's dependency allows no other): any other release is left as it is,
correct and one ``send`` slower an answer.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from hypercorn.events import RawData
from hypercorn.protocol.events import Body, EndBody, Response
from hypercorn.protocol.h11 import H11Protocol

__all__ = ["coalesce_response_head"]

#: hypercorn's minor releases whose ``H11Protocol.stream_send`` this change was
#: read against and tested with (``tests/api/test_hot_route.py``).
CHECKED_RELEASES = ("0.18",)

#: Where the held head is kept on the protocol object (one response at a time).
_HELD = "_p2pdm_held_head"


def _declares_length(response: Response) -> bool:
    return any(bytes(name).lower() == b"content-length" for name, _ in response.headers)


def checked(release: str) -> bool:
    """Whether hypercorn *release* (``"0.18.0"``) is one the change was checked against."""
    return ".".join(release.split(".")[:2]) in CHECKED_RELEASES


def coalesce_response_head() -> bool:
    """Patch ``H11Protocol.stream_send`` (once; again: nothing); whether it is patched."""
    if not checked(version("hypercorn")):
        return False
    original = H11Protocol.stream_send
    if getattr(original, "coalesces", False):
        return True

    async def stream_send(self: H11Protocol, event: Any) -> None:
        held: bytes | None = getattr(self, _HELD, None)
        if held is None:
            if isinstance(event, Response) and event.status_code >= 200 and _declares_length(event):
                sent: list[bytes] = []

                async def keep(raw: Any) -> None:
                    sent.append(raw.data)

                real_send, self.send = self.send, keep
                try:
                    await original(self, event)  # h11 encodes it and moves its state
                finally:
                    self.send = real_send
                setattr(self, _HELD, b"".join(sent))
                return
            await original(self, event)
            return
        setattr(self, _HELD, None)
        if isinstance(event, Body | EndBody):
            written: list[bytes] = []

            async def join(raw: Any) -> None:
                written.append(raw.data)

            real_send, self.send = self.send, join
            try:
                await original(self, event)
            finally:
                self.send = real_send
            await self.send(RawData(data=held + b"".join(written)))
            return
        await self.send(RawData(data=held))
        await original(self, event)

    stream_send.coalesces = True  # type: ignore[attr-defined]
    H11Protocol.stream_send = stream_send  # type: ignore[method-assign]
    return True
