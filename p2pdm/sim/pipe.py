"""Frames between ``p2pdm sim`` and its worker processes (``--workers``).

How this works: the coordinator (``p2pdm sim``) and each worker
(``python -m p2pdm.sim.worker``) talk over the worker's stdin and stdout.
A frame is a varint length prefix (:mod:`p2pdm.net.frames`) and one strict
CBOR map (:mod:`p2pdm.core.cbor`: no floats, so times travel as integer
nanoseconds of ``time.monotonic_ns()``, which is system-wide on Linux). The
size cap is checked on the prefix, before any payload byte is kept. Three
kinds of frame, each checked against the tables below:

- request ``{"id": n, "op": name, "args": {…}}`` (coordinator → worker);
- reply ``{"re": n, "ok": {…}}`` or ``{"re": n, "error": text}``;
- event ``{"ev": name, "args": {…}}`` (worker → coordinator: deliveries,
  refusals, DHT lookups, as they happen).

Any frame that is not exactly this raises :class:`~p2pdm.errors.WireError`:
the pipe is then out of sync and the simulation stops with that one line.
Sans-I/O: no trio here; :mod:`p2pdm.sim.worker` and :mod:`p2pdm.sim.remote`
move the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from p2pdm.core import cbor
from p2pdm.core.cbor import Fields
from p2pdm.errors import SchemaError
from p2pdm.net.frames import FrameDecoder, encode_frame

__all__ = [
    "EVENTS",
    "MAX_PIPE_FRAME_BYTES",
    "REPLIES",
    "REQUESTS",
    "Event",
    "PipeDecoder",
    "Reply",
    "Request",
    "encode_event",
    "encode_reply",
    "encode_request",
]

#: Largest frame either side accepts. The biggest frames are a batch of
#: undelivered messages to explain (PIPE_BATCH ids) and an invite (a few
#: KiB); 1 MiB leaves room without letting a broken peer make us buffer more.
MAX_PIPE_FRAME_BYTES: Final = 1 << 20
#: Most items sent in one list (CBOR documents hold at most MAX_CBOR_ITEMS).
PIPE_BATCH: Final = 1000
#: Largest node index, error text, address or invite carried.
MAX_INDEX: Final = 1_000_000
MAX_TEXT: Final = 64 << 10
#: Largest request id (they count up from 1; 2**62 never wraps).
MAX_REQUEST_ID: Final = 1 << 62
_MAX_INT: Final = 1 << 63


def _index(f: Fields, key: str) -> int:
    return f.integer(key, 0, MAX_INDEX)


def _count(f: Fields, key: str) -> int:
    return f.integer(key, 0, _MAX_INT)


def _seed(f: Fields, key: str) -> int:
    return f.integer(key, -_MAX_INT, _MAX_INT)


def _texts(f: Fields, key: str) -> list[str]:
    items = f.array(key, PIPE_BATCH)
    if not all(type(item) is str and len(item) <= MAX_TEXT for item in items):
        raise SchemaError(f"{f.what}: field {key!r} must be an array of text strings")
    return items


def _indices(items: Any, what: str) -> list[int]:
    if type(items) is not list or not all(type(i) is int and 0 <= i <= MAX_INDEX for i in items):
        raise SchemaError(f"{what}: expected an array of node indices")
    return items


def _node_list(f: Fields, key: str) -> list[int]:
    return _indices(f.array(key, PIPE_BATCH), f"{f.what}.{key}")


def _groups(f: Fields, key: str) -> list[list[int]]:
    return [_indices(group, f"{f.what}.{key}") for group in f.array(key, PIPE_BATCH)]


def _undelivered(f: Fields, key: str) -> list[tuple[bytes, int, int]]:
    """[[message id, sender index, recipient index], …]"""
    out = []
    for item in f.array(key, PIPE_BATCH):
        if (
            type(item) is not list
            or len(item) != 3
            or type(item[0]) is not bytes
            or len(item[0]) > 64
            or not all(type(i) is int and 0 <= i <= MAX_INDEX for i in item[1:])
        ):
            raise SchemaError(
                f"{f.what}: {key} items are [message id, sender index, recipient index]"
            )
        out.append((item[0], item[1], item[2]))
    return out


def _reasons(f: Fields, key: str) -> dict[str, int]:
    sub = f.submap(key).raw()
    if len(sub) > PIPE_BATCH or not all(
        type(v) is int and 0 <= v <= MAX_INDEX * PIPE_BATCH and len(k) <= MAX_TEXT
        for k, v in sub.items()
    ):
        raise SchemaError(f"{f.what}: {key} maps reasons to counts")
    return sub


def _counts(f: Fields, key: str) -> dict[str, int]:
    """A map of counter names to counts (a fault layer's stats)."""
    sub = f.submap(key).raw()
    if len(sub) > PIPE_BATCH or not all(
        type(v) is int and 0 <= v < _MAX_INT and len(k) <= MAX_TEXT for k, v in sub.items()
    ):
        raise SchemaError(f"{f.what}: {key} maps counter names to counts")
    return sub


_Reader = Callable[[Fields, str], Any]


def _text(f: Fields, key: str) -> str:
    return f.text(key, MAX_TEXT)


def _blob(f: Fields, key: str) -> bytes:
    return f.blob(key, max_size=64)


def _flag(f: Fields, key: str) -> bool:
    return f.boolean(key)


#: What each request carries: field → reader (the readers raise SchemaError).
REQUESTS: Final[dict[str, dict[str, _Reader]]] = {
    "ping": {},
    "start": {"node": _index, "bootstrap": _texts},
    "stop": {"node": _index},
    "invite": {"node": _index},
    "add_contact": {"node": _index, "invite": _text, "name": _text},
    "send": {"sender": _index, "recipient": _index, "text": _text},
    "partition": {"groups": _groups},
    "heal": {},
    "collect": {"undelivered": _undelivered, "now_ms": _count, "mailboxes": _flag},
    "rss": {},
    "link": {"latency_us": _count, "jitter_us": _count, "loss_ppm": _count},
    "outside": {},
    "stats": {},
    # Tables from the plan (``--dht-forming plan``): the nodes listen first,
    # then learn each other's addresses, join over a window, publish.
    "book": {"nodes": _node_list, "addrs": _texts},
    "join": {"window_ms": _count},
    "publish": {},
}
#: What each successful reply carries.
REPLIES: Final[dict[str, dict[str, _Reader]]] = {
    "ping": {},
    "start": {"addrs": _texts},
    "stop": {},
    "invite": {"invite": _text},
    "add_contact": {},
    "send": {"id": _blob, "at_ns": _count},
    "partition": {},
    "heal": {},
    "collect": {"reasons": _reasons, "held": _count, "expired": _count, "starts": _count},
    "rss": {"kb": _count},
    "link": {},
    "outside": {"in_routing_tables": _texts, "mailbox_providers": _texts},
    "stats": {"stats": _counts},
    "book": {},
    "join": {},
    "publish": {},
}
#: What each event carries: the recipient committed a message; a node
#: refused an envelope; a node's host made a DHT lookup.
EVENTS: Final[dict[str, dict[str, _Reader]]] = {
    "stored": {"node": _index, "id": _blob, "path": _text, "at_ns": _count},
    "refused": {"error": _text},
    "lookup": {"call": _text, "us": _count, "found": _flag, "why": _text},
}
#: The first frame a worker reads: what to build.
CONFIG: Final[dict[str, _Reader]] = {
    "nodes": _index,
    "seed": _seed,
    "workers": _index,
    "worker": _index,
    "mailboxes": _index,
    "store_dir": _text,
    "external": _texts,
    "log_level": _text,
    #: ``--listen`` ("" for the default).
    "listen": _text,
    #: Latency and loss on TCP (``faults``: whether to wrap TCP at all).
    "faults": _flag,
    "latency_us": _count,
    "jitter_us": _count,
    "loss_ppm": _count,
    #: Routing tables from the plan (``--dht-forming``): joins wait for "join".
    "planned": _flag,
}


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    op: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    re: int
    ok: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    args: dict[str, Any]


def _read(f: Fields, spec: dict[str, _Reader]) -> dict[str, Any]:
    values = {key: reader(f, key) for key, reader in spec.items()}
    f.done()
    return values


def read_args(payload: Any, spec: dict[str, _Reader], what: str) -> dict[str, Any]:
    """Check a decoded map against ``spec``; its fields by name. Raises SchemaError."""
    if type(payload) is not dict:
        raise SchemaError(f"{what}: expected a map")
    return _read(Fields(payload, what), spec)


def encode_request(request_id: int, op: str, args: dict[str, Any]) -> bytes:
    return encode_frame(cbor.encode({"id": request_id, "op": op, "args": args}))


def encode_reply(request_id: int, ok: dict[str, Any] | None, error: str | None = None) -> bytes:
    body: dict[str, Any] = {"re": request_id}
    if error is not None:
        body["error"] = error[:MAX_TEXT]
    else:
        body["ok"] = ok or {}
    return encode_frame(cbor.encode(body))


def encode_event(name: str, args: dict[str, Any]) -> bytes:
    return encode_frame(cbor.encode({"ev": name, "args": args}))


def encode_config(config: dict[str, Any]) -> bytes:
    return encode_frame(cbor.encode(config))


class PipeDecoder:
    """Bytes from a pipe in, checked frames out; raises WireError on anything else.

    ``side`` is "worker" (reads the config, then requests) or "coordinator"
    (reads replies and events). After an error the decoder is unusable.
    """

    def __init__(self, side: str) -> None:
        if side not in ("worker", "coordinator"):
            raise ValueError("side is 'worker' or 'coordinator'")
        self.side = side
        self._frames = FrameDecoder(MAX_PIPE_FRAME_BYTES)
        self._configured = side == "coordinator"

    def feed(self, data: bytes) -> list[Any]:
        """Every frame ``data`` completes: config dict, Request, Reply or Event."""
        return [self._message(frame) for frame in self._frames.feed(data)]

    def _message(self, frame: bytes) -> Any:
        fields = cbor.decode_map(frame, MAX_PIPE_FRAME_BYTES, "sim pipe frame")
        if not self._configured:
            self._configured = True
            return _read(fields, CONFIG)
        if self.side == "worker":
            request_id = fields.integer("id", 1, MAX_REQUEST_ID)
            op = fields.text("op", MAX_TEXT)
            if op not in REQUESTS:
                raise SchemaError(f"sim pipe: unknown request {op[:40]!r}")
            args = _read(fields.submap("args"), REQUESTS[op])
            fields.done()
            return Request(request_id, op, args)
        if fields.has("ev"):
            name = fields.text("ev", MAX_TEXT)
            if name not in EVENTS:
                raise SchemaError(f"sim pipe: unknown event {name[:40]!r}")
            args = _read(fields.submap("args"), EVENTS[name])
            fields.done()
            return Event(name, args)
        request_id = fields.integer("re", 1, MAX_REQUEST_ID)
        if fields.has("error"):
            error = fields.text("error", MAX_TEXT)
            fields.done()
            return Reply(request_id, None, error)
        ok = fields.submap("ok").raw()  # checked by the caller, who knows the op
        fields.done()
        return Reply(request_id, ok, None)
