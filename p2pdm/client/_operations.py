"""Every API operation of the SDK, once, as a table; both clients' methods are made from it.

How this works: each row of :class:`Operations` is a function whose
signature *is* the method's (names, types, defaults, keyword-only marks and
docstring), decorated with what the node needs to know::

    @operation[Message]("POST", "/v1/messages")
    def send(to: str, text: str, *, idempotency_key: str | None = None) -> None:
        \"\"\"Queue a text message; ...\"\"\"

``operation[Result](method, path, pick=..., wait=...)`` reads: the HTTP
method; the path template, whose ``{name}`` parts are parameters sent as one
quoted URL segment each; ``pick``, the field of the answer that is the
result (none: the whole body); ``wait``, the parameter that holds the extra
seconds a long poll may take. The other parameters are the request's fields,
the query of a GET or DELETE and the JSON body otherwise, and one that is
None is left out. A row whose fields are not simply its parameters (a
renamed or computed field, a body that is one parameter) returns the fields
itself, and they are sent as they are.

The decorator makes an :class:`Endpoint`, a descriptor: read on a
:class:`~p2pdm.client.Client` it is a method that sends and returns the
result; read on an :class:`~p2pdm.client.AsyncClient`, a coroutine method.
Its ``__get__`` overloads tell mypy the same, from the row's own signature
(a ``ParamSpec``) and ``Result``, so callers are type-checked against the
very signature that runs.
"""

from __future__ import annotations

import base64
import inspect
import string
import types
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, ParamSpec, TypeVar, get_args, overload
from urllib.parse import quote

from p2pdm.client._http import _Call
from p2pdm.client._records import (
    AddedContact,
    BlockedPeer,
    Contact,
    Conversation,
    Directory,
    EventPage,
    Group,
    Message,
    MessagePage,
    MessageRequest,
    NodeInfo,
    Profile,
    Reacted,
    SearchHit,
)

if TYPE_CHECKING:
    from p2pdm.client._async import AsyncClient
    from p2pdm.client._sync import Client

__all__ = ["Endpoint", "Operations", "operation"]

P = ParamSpec("P")
T = TypeVar("T")

#: A request's fields: its query for GET and DELETE, else its JSON body.
Fields = dict[str, Any]

#: Methods whose fields go in the query string (they carry no body).
_QUERY_METHODS: Final = frozenset({"GET", "DELETE"})


class operation(Generic[T]):  # lower case: a decorator, read as one
    """``@operation[Result](method, path, pick=None, wait=None)``: one row of the table."""

    def __init__(
        self, method: str, path: str, *, pick: str | None = None, wait: str | None = None
    ) -> None:
        self.method = method
        self.path = path
        self.pick = pick
        self.wait = wait

    def __call__(self, build: Callable[P, Fields | None]) -> Endpoint[P, T]:
        # ``operation[X](...)`` records X here once __init__ has returned.
        result = get_args(getattr(self, "__orig_class__", None))
        return Endpoint(self, build, result[0] if result else inspect.Signature.empty)


class Endpoint(Generic[P, T]):
    """One operation, as a method of both clients (see the module's docstring)."""

    def __init__(self, spec: operation[T], build: Callable[P, Fields | None], result: Any) -> None:
        self.method = spec.method
        self.path = spec.path
        self.pick = spec.pick
        self.wait = spec.wait
        self.name = build.__name__
        self._build = build
        self._signature = inspect.signature(build)
        self._result = result
        self._path_params = tuple(
            name for _, name, _, _ in string.Formatter().parse(self.path) if name
        )
        for name in (*self._path_params, *([self.wait] if self.wait else [])):
            if name not in self._signature.parameters:
                raise TypeError(f"{self.name}: {name!r} is not one of its parameters")
        self._methods: dict[bool, Callable[..., Any]] = {}

    def request(self, *args: P.args, **kwargs: P.kwargs) -> _Call[T]:
        """The request for these arguments; raises TypeError as a call with them would."""
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        path = self.path.format_map(
            {name: quote(values.pop(name), safe="") for name in self._path_params}
        )
        wait_s = float(values[self.wait]) if self.wait else 0.0
        fields = self._build(*args, **kwargs)
        if fields is None:
            fields = {name: value for name, value in values.items() if value is not None}
            if self.method not in _QUERY_METHODS and not fields:
                fields = None  # no body at all, rather than "{}"
        if self.method in _QUERY_METHODS:
            return _Call(self.method, path, params=fields or {}, pick=self.pick, wait_s=wait_s)
        return _Call(self.method, path, json=fields, pick=self.pick, wait_s=wait_s)

    def _method(self, awaits: bool) -> Callable[..., Any]:
        """The plain function that a client's method binds: sync, or a coroutine function."""
        if awaits in self._methods:
            return self._methods[awaits]
        method = _coroutine_function(self) if awaits else _function(self)
        this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        method.__module__ = "p2pdm.client"
        method.__name__ = self.name
        method.__qualname__ = f"{'AsyncClient' if awaits else 'Client'}.{self.name}"
        method.__doc__ = self._build.__doc__
        method.__signature__ = self._signature.replace(  # type: ignore[attr-defined]
            parameters=[this, *self._signature.parameters.values()],
            return_annotation=self._result,
        )
        self._methods[awaits] = method
        return method

    @overload
    def __get__(self, client: None, owner: type) -> Callable[..., Any]: ...
    @overload
    def __get__(self, client: Client, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, client: object, owner: type) -> Any:
        method = self._method(getattr(owner, "_awaits", False))
        return method if client is None else types.MethodType(method, client)


def _function(endpoint: Endpoint[..., Any]) -> Callable[..., Any]:
    def method(client: Any, *args: Any, **kwargs: Any) -> Any:
        return client.call(endpoint.request(*args, **kwargs))

    return method


def _coroutine_function(endpoint: Endpoint[..., Any]) -> Callable[..., Any]:
    async def method(client: Any, *args: Any, **kwargs: Any) -> Any:
        return await client.call(endpoint.request(*args, **kwargs))

    return method


# --- the table ---------------------------------------------------------------------


def _present(**fields: Any) -> Fields:
    """``fields`` without those that are None (optional fields left out)."""
    return {name: value for name, value in fields.items() if value is not None}


class Operations:
    """The API operations of both clients, one row each (see the module's docstring)."""

    @operation[NodeInfo]("GET", "/v1/node")
    def node() -> None:
        """The node: PeerID, name, addresses, version, counts, the newest event's id,
        its DHT store's counters and a fresh invite."""

    @operation[list[Contact]]("GET", "/v1/contacts", pick="contacts")
    def contacts() -> None:
        """Every contact."""

    @operation[AddedContact]("POST", "/v1/contacts")
    def add_contact(invite_or_peer_id: str, name: str | None = None) -> Fields:
        """Add a contact from a ``p2pdm:`` invite, or else a PeerID."""
        value = invite_or_peer_id.strip()
        key = "invite" if value.lower().startswith("p2pdm:") else "peer_id"
        return _present(**{key: value}, name=name)

    @operation[None]("DELETE", "/v1/contacts/{peer_id}")
    def delete_contact(peer_id: str) -> None:
        """Delete a contact; its conversation stays."""

    @operation[Message]("POST", "/v1/messages")
    def send(
        to: str, text: str, *, idempotency_key: str | None = None, reply_to: str | None = None
    ) -> None:
        """Queue a text message to a contact (name or PeerID) or a group (id or name);
        with ``idempotency_key``, a retry never sends twice; ``reply_to``: the id of a
        message of the same conversation it answers. To a contact added by PeerID
        whose keys are not found yet, it is ``queued`` with a ``status_detail``
        "waiting for <name>'s keys: ..." and sent once they are found."""

    @operation[dict[str, Any]]("GET", "/v1/messages/{message_id}")
    def message(message_id: str) -> None:
        """One message and its status history."""

    @operation[list[Conversation]]("GET", "/v1/conversations", pick="conversations")
    def conversations() -> None:
        """Conversations, most recent first."""

    @operation[MessagePage]("GET", "/v1/conversations/{who}/messages")
    def messages(who: str, limit: int | None = None, before: int | None = None) -> None:
        """A page of a conversation, newest first; ``who``: its id, or (one-to-one)
        the contact's name or PeerID."""

    @operation[list[str]]("POST", "/v1/conversations/{who}/read", pick="read")
    def mark_read(who: str) -> None:
        """Mark a conversation (its id, or the contact's name or PeerID) read (sends
        read receipts if on); returns the ids marked."""

    @operation[Message]("POST", "/v1/messages/{message_id}/read")
    def mark_message_read(message_id: str) -> None:
        """Mark a message's conversation read up to now; returns the message."""

    @operation[Message]("POST", "/v1/messages/{message_id}/forward")
    def forward(message_id: str, to: str, *, idempotency_key: str | None = None) -> None:
        """Send a copy of a message (its text, its files with their caption, or its
        place) to a contact or a group, as a new message of yours; a file must be
        on this node (``download`` it first)."""

    @operation[Reacted]("POST", "/v1/messages/{message_id}/reactions")
    def react(message_id: str, emoji: str) -> None:
        """React to a message (replaces your reaction; ``""`` takes it back:
        ``removed`` says whether there was one)."""

    @operation[Message]("PATCH", "/v1/messages/{message_id}")
    def edit(message_id: str, text: str) -> None:
        """Change the text of your own message (within 15 minutes of sending it)."""

    @operation[None]("DELETE", "/v1/messages/{message_id}")
    def unsend(message_id: str) -> None:
        """Remove your own message for everyone."""

    @operation[None]("DELETE", "/v1/messages/{message_id}")
    def delete_for_me(message_id: str) -> Fields:
        """Delete a message from this node only; nobody is told."""
        return {"for": "me"}

    @operation[None]("DELETE", "/v1/conversations/{who}")
    def delete_conversation(who: str) -> None:
        """Delete a conversation (its id, or the contact's name or PeerID) from this
        node only; nobody is told."""

    @operation[dict[str, Any]]("GET", "/v1/mailboxes")
    def mailboxes() -> None:
        """The mailboxes this node fetches its envelopes from (``used``), what its
        own mailbox holds against its quotas (``offered``, None if it runs none),
        and the deposits of unsent messages still to take back from mailboxes
        (``withdrawals``: ``pending``, ``withdrawn``)."""

    @operation[dict[str, Any]]("GET", "/v1/settings")
    def settings() -> None:
        """The node's settings."""

    @operation[dict[str, Any]]("PATCH", "/v1/settings")
    def update_settings(patch: dict[str, Any]) -> Fields:
        """Change some settings; returns them all."""
        return patch

    @operation[EventPage]("GET", "/v1/events/poll", wait="timeout_s")
    def poll_events(
        since: int = 0,
        timeout_s: int = 0,
        limit: int | None = None,
        types: Iterable[str] | None = None,
    ) -> Fields:
        """One long poll: events after ``since``, waiting up to ``timeout_s`` for the first."""
        kinds = None if types is None else ",".join(types)
        return _present(since=since, timeout=timeout_s, limit=limit, types=kinds)

    @operation[dict[str, Any]]("POST", "/v1/tokens")
    def create_token(scope: str, contacts: Iterable[str] = (), name: str | None = None) -> Fields:
        """Make a scoped token (admin tokens only); the answer's ``token`` is the secret."""
        return _present(scope=scope, contacts=list(contacts), name=name)

    @operation[list[dict[str, Any]]]("GET", "/v1/tokens", pick="tokens")
    def tokens() -> None:
        """Every scoped token (admin tokens only), without secrets."""

    @operation[None]("DELETE", "/v1/tokens/{name}")
    def revoke_token(name: str) -> None:
        """Revoke a scoped token by name (admin tokens only); it stops working at once."""

    @operation[list[BlockedPeer]]("GET", "/v1/blocked", pick="blocked")
    def blocked() -> None:
        """Blocked peers, most recently blocked first."""

    @operation[BlockedPeer]("POST", "/v1/blocked")
    def block(peer_id: str) -> None:
        """Block a contact (name or PeerID) or a stranger (PeerID): what it sends is
        dropped unseen, nothing is sent to it."""

    @operation[None]("DELETE", "/v1/blocked/{peer}")
    def unblock(peer: str) -> None:
        """Unblock a peer (name or PeerID)."""

    @operation[list[MessageRequest]]("GET", "/v1/requests", pick="requests")
    def requests() -> None:
        """Strangers' pending message requests, one per stranger, newest first."""

    @operation[AddedContact]("POST", "/v1/requests/{peer}/accept")
    def accept_request(peer: str) -> None:
        """Accept a stranger's request: it becomes a contact."""

    @operation[dict[str, Any]]("POST", "/v1/requests/{peer}/decline")
    def decline_request(peer: str) -> None:
        """Delete a stranger's request; it is told nothing."""

    @operation[dict[str, Any]]("POST", "/v1/requests/{peer}/block")
    def block_request(peer: str) -> None:
        """Block a stranger and delete its request; it is told nothing."""

    @operation[Message]("POST", "/v1/messages")
    def send_media(
        to: str,
        media: list[str],
        caption: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Fields:
        """Send files uploaded before (``upload_file``) with an optional caption;
        ``idempotency_key``: a retry with the same key returns the first message."""
        return _present(to=to, media=list(media), text=caption, idempotency_key=idempotency_key)

    @operation[Message]("POST", "/v1/messages")
    def send_location(
        to: str,
        lat: float,
        lon: float,
        accuracy_m: float | None = None,
        label: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Fields:
        """Send a place: latitude and longitude in degrees, an optional accuracy and
        label; ``idempotency_key``: a retry with the same key returns the first message."""
        return _present(
            to=to,
            location=_present(lat=lat, lon=lon, accuracy_m=accuracy_m, label=label),
            idempotency_key=idempotency_key,
        )

    @operation[dict[str, Any]]("POST", "/v1/media/{blob_id}/download")
    def fetch_media(blob_id: str) -> None:
        """Ask the node to fetch a file that waits to be asked for; returns its state."""

    @operation[Profile]("GET", "/v1/profile")
    def profile() -> None:
        """The profile this node publishes (``published`` is False until one is set)."""

    @operation[Profile]("PATCH", "/v1/profile")
    def update_profile(
        *,
        name: str | None = None,
        handle: str | None = None,
        bio: str | None = None,
        avatar: bytes | None = None,
    ) -> Fields:
        """Set some profile fields ('' or b'' clears one); ``avatar`` is any picture the
        node makes a small WebP of. Returns the profile."""
        picture = None if avatar is None else base64.b64encode(avatar).decode()
        return _present(name=name, handle=handle, bio=bio, avatar=picture)

    @operation[None]("DELETE", "/v1/profile")
    def clear_profile() -> None:
        """Stop publishing a profile."""

    @operation[Directory]("GET", "/v1/directory")
    def find(handle: str) -> None:
        """Every checked claimant of ``handle``, likeliest first (exact handle, no prefix)."""

    @operation[dict[str, Any]]("POST", "/v1/sessions/codes")
    def login_link() -> None:
        """A one-time sign-in link for the web app (admin tokens only); ``url`` and
        ``expires_at_ms``."""

    @operation[list[dict[str, Any]]]("GET", "/v1/sessions", pick="sessions")
    def sessions() -> None:
        """The web app's signed-in browsers (admin tokens only)."""

    @operation[None]("DELETE", "/v1/sessions/{session_id}")
    def revoke_session(session_id: str) -> None:
        """Sign a browser out (admin tokens only); its session stops at once."""

    @operation[Conversation]("PATCH", "/v1/conversations/{who}")
    def update_conversation(
        who: str,
        *,
        timer_s: int | None = None,
        muted: bool | None = None,
        archived: bool | None = None,
        pinned: bool | None = None,
    ) -> None:
        """Set a conversation's disappearing-messages timer in seconds (0, 300, 3600,
        86400 or 604800; the peer is told), or mute, archive or pin it (at most 5
        pinned); returns it."""

    @operation[dict[str, Any]]("POST", "/v1/conversations/{who}/typing")
    def typing(who: str) -> None:
        """Tell the contact you are typing (open connection only, never queued);
        ``sent`` says whether it went, ``reason`` why not."""

    @operation[dict[str, Any]]("POST", "/v1/conversations/{who}/live-location")
    def share_live_location(
        who: str,
        lat: float,
        lon: float,
        *,
        duration_s: int | None = None,
        accuracy_m: float | None = None,
    ) -> Fields:
        """Start sharing your live location with ``who`` (a contact, or a group's id:
        every member online) for ``duration_s`` (900, 3600 or 28800), or move a running
        share (no ``duration_s``); updates go over an open connection only, never
        queued. Returns ``live_location``, ``sent`` and ``reason``."""
        return _present(lat=lat, lon=lon, accuracy_m=accuracy_m, duration_s=duration_s)

    @operation[dict[str, Any]]("DELETE", "/v1/conversations/{who}/live-location")
    def stop_live_location(who: str) -> None:
        """Stop sharing your live location with ``who`` (a contact or a group's id);
        ``stopped`` says if one ran."""

    @operation[list[dict[str, Any]]](
        "GET", "/v1/conversations/{who}/live-location", pick="live_locations"
    )
    def live_locations(who: str) -> None:
        """The live locations shown in a conversation now (yours first)."""

    @operation[list[SearchHit]]("GET", "/v1/search", pick="results")
    def search(q: str, peer: str | None = None, limit: int | None = None) -> None:
        """Messages whose text has every word of ``q``, newest first."""

    @operation[list[dict[str, Any]]]("POST", "/v1/messages/batch", pick="results")
    def send_many(messages: Iterable[Mapping[str, str]]) -> Fields:
        """Queue many messages (each ``{"to", "text"}``, maybe ``"idempotency_key"``; at
        most 500) in one request and one commit; returns, in order, each one's
        ``{"id", "status", "replayed"}`` or ``{"error": {"code", "message"}}``."""
        return {"messages": [dict(m) for m in messages]}

    # --- groups (docs/api.md, "Groups"); ``group``: its id, or its name when unique ---

    @operation[Group]("POST", "/v1/groups")
    def create_group(name: str, members: Iterable[str], *, timer_s: int | None = None) -> Fields:
        """Start a group chat with contacts (names or PeerIDs; 1 to 31 others); they are
        invited at once. Returns the group."""
        return _present(name=name, members=list(members), timer_s=timer_s)

    @operation[list[Group]]("GET", "/v1/groups", pick="groups")
    def groups() -> None:
        """Every group this node knows: active ones, invitations, those left or removed from."""

    @operation[Group]("GET", "/v1/groups/{group}")
    def group(group: str) -> None:
        """One group: members, admins, state, the length of its membership log."""

    @operation[Group]("POST", "/v1/groups/{group}/members")
    def add_group_members(group: str, members: Iterable[str]) -> Fields:
        """Add members (names or PeerIDs; admins only); returns the group."""
        return {"members": list(members)}

    @operation[Group]("DELETE", "/v1/groups/{group}/members/{peer}")
    def remove_group_member(group: str, peer: str) -> None:
        """Remove a member (name or PeerID; admins only); returns the group."""

    @operation[Group]("POST", "/v1/groups/{group}/leave")
    def leave_group(group: str) -> None:
        """Leave a group: the others are told, nothing more reaches you; returns it."""

    @operation[Group]("PATCH", "/v1/groups/{group}")
    def update_group(
        group: str,
        *,
        name: str | None = None,
        timer_s: int | None = None,
        add_admins: Iterable[str] = (),
        remove_admins: Iterable[str] = (),
    ) -> Fields:
        """Rename a group, set its disappearing timer, or make members admins or not
        (admins only); returns the group."""
        add, remove = list(add_admins), list(remove_admins)
        admins = _present(add=add or None, remove=remove or None) or None
        return _present(name=name, timer_s=timer_s, admins=admins)

    @operation[Group]("PATCH", "/v1/groups/{group}")
    def set_group_photo(group: str, media: str | None) -> Fields:
        """Set the group's photo to a picture uploaded before (``upload_file``'s
        ``id``; the node makes a small square WebP of it), or remove it (None;
        admins only); returns the group, whose ``photo`` names it."""
        return {"photo": media}

    @operation[Group]("POST", "/v1/groups/{group}/accept")
    def accept_group(group: str) -> None:
        """Accept an invitation to a group; returns the group."""

    @operation[Group]("POST", "/v1/groups/{group}/decline")
    def decline_group(group: str) -> None:
        """Decline an invitation to a group (nobody is told); returns the group."""

    @operation[Group]("POST", "/v1/groups/{group}/block")
    def block_group(group: str) -> None:
        """Decline an invitation and block the stranger who sent it; returns the group."""
