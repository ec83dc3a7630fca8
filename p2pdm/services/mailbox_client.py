"""Using other nodes' mailboxes: finding them, depositing, fetching our own.

How this works: :class:`MailboxClient` speaks ``/p2pdm/mailbox/1.0.0`` to one
mailbox at a time (deposit a batch; or challenge, answer, then fetch and
delete page by page). :class:`MailboxDirectory` decides which mailboxes:

* for a recipient, first the mailboxes it names in its signed DHT record
  (``NodeRecord.mailboxes``), then the nodes that provide the mailbox service,
  closest first by XOR distance to the recipient's mailbox key;
* for ourselves, our preferred mailboxes (``--mailbox-peer``) and the same
  closest providers a sender would pick for us, with some slack.

The providers a lookup found are kept in the node's store
(:data:`PROVIDERS_SETTING`), so a node that starts again fetches at once
from the mailboxes it knew (:meth:`MailboxDirectory.own_first`), as a
Session client keeps its swarm and a Briar client its mailbox: it looks
providers up only when it remembers none (or none from the last
``MAILBOX_REMEMBER_SECONDS``) or one of them fails. A list of at least
``MAILBOX_COPIES`` providers is then used for ``MAILBOX_TRUST_SECONDS``
(fetching and deposits alike), after a restart too, and looked up again
sooner only when one of its mailboxes fails.

Deposits go over ``/p2pdm/mailbox/1.1.0`` where the mailbox speaks it (else
1.0.0), each with the hash of a withdraw secret derived from our identity
seed, the mailbox and the envelope id (:func:`withdraw_secret`): nothing is
stored for it, and after an unsend :meth:`MailboxClient.withdraw` presents
the secrets to take the deposits back.

A mailbox that answers ``stamp_required`` gets the same envelope again with
a proof-of-work stamp (minted in a worker thread), a few per batch; a
refusal is returned to the caller, who records it with the message.

Both ends compute "closest" the same way from the same provider list, so a
sender and a returning recipient meet at the same nodes without talking.
Lookups are cached for a while and every cache is bounded.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final, Protocol

import trio

from p2pdm.core import mailbox as mb
from p2pdm.core import records
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.profile import Profile
from p2pdm.core.wire import Envelope, PrekeyBundle
from p2pdm.errors import (
    ConfigError,
    P2PDMError,
    PeerUnreachable,
    ProtocolViolation,
    SchemaError,
    StreamRefused,
)
from p2pdm.limits import MAX_ADDR_BYTES, MAX_ADDRS
from p2pdm.net.stream import Stream
from p2pdm.services.limits import (  # re-exported: tests use them here
    MAILBOX_CACHE_SECONDS,
    MAILBOX_COPIES,
    MAILBOX_FETCH_FANOUT,
    MAILBOX_INLINE_STAMP_BITS,
    MAILBOX_LOOKUP_TIMEOUT,
    MAILBOX_MAX_CACHED_RECIPIENTS,
    MAILBOX_MAX_CANDIDATES,
    MAILBOX_MAX_PAGES_PER_ROUND,
    MAILBOX_MAX_REMEMBERED,
    MAILBOX_MAX_STAMP_BITS,
    MAILBOX_MAX_STAMPS_PER_BATCH,
    MAILBOX_REMEMBER_SECONDS,
    MAILBOX_REQUEST_TIMEOUT,
    MAILBOX_SHORT_CACHE_SECONDS,
    MAILBOX_TRUST_SECONDS,
)
from p2pdm.services.ports import Network

__all__ = [
    "MAILBOX_CACHE_SECONDS",
    "MAILBOX_COPIES",
    "MAILBOX_FETCH_FANOUT",
    "MAILBOX_INLINE_STAMP_BITS",
    "MAILBOX_LOOKUP_TIMEOUT",
    "MAILBOX_MAX_CACHED_RECIPIENTS",
    "MAILBOX_MAX_CANDIDATES",
    "MAILBOX_MAX_PAGES_PER_ROUND",
    "MAILBOX_MAX_STAMPS_PER_BATCH",
    "MAILBOX_MAX_STAMP_BITS",
    "MAILBOX_REQUEST_TIMEOUT",
    "MAILBOX_SHORT_CACHE_SECONDS",
    "MAILBOX_TRUST_SECONDS",
    "PROVIDERS_SETTING",
    "MailboxClient",
    "MailboxDirectory",
    "Settings",
    "describe_refusal",
    "parse_mailbox_addr",
    "recall_providers",
    "remember_providers",
    "withdraw_secret",
]

log = logging.getLogger("p2pdm.services.mailbox_client")

#: What a refusal code means, in words for the sender's status detail.
REFUSALS: Final = {
    mb.OVER_QUOTA: "over quota for this recipient",
    mb.OVER_SHARE: "our share of this recipient's quota is used up",
    mb.FULL: "mailbox full",
    mb.TOO_LARGE: "envelope too large",
    mb.EXPIRED: "envelope expired",
    mb.BAD_ENVELOPE: "bad envelope",
    mb.STAMP_REQUIRED: "proof-of-work stamp required",
    mb.RATE_LIMITED: "too many deposits, rate-limited",
    mb.UNAVAILABLE: "mailbox store unavailable",
}

Candidate = tuple[PeerId, list[str]]

#: Store setting holding the mailbox providers found last and when
#: (``{"at_ms": wall ms, "providers": [[PeerID, [addr, ...]], ...]}``).
PROVIDERS_SETTING: Final = "mailbox_providers"


class Settings(Protocol):
    """Where the directory keeps what it found (the node's store)."""

    def get_setting(self, key: str, default: object = None) -> object: ...
    def set_setting(self, key: str, value: object) -> None: ...


def remember_providers(store: Settings, at_ms: int, providers: Sequence[Candidate]) -> None:
    """Keep ``providers`` (found at ``at_ms``) in ``store``: at most
    MAILBOX_MAX_REMEMBERED, each with at most MAX_ADDRS addresses."""
    listed = [[str(peer), list(addrs[:MAX_ADDRS])] for peer, addrs in providers]
    store.set_setting(
        PROVIDERS_SETTING, {"at_ms": at_ms, "providers": listed[:MAILBOX_MAX_REMEMBERED]}
    )


def recall_providers(store: Settings) -> tuple[int, list[Candidate]] | None:
    """The providers :func:`remember_providers` kept and when they were found;
    None if there are none or the setting is not what it wrote (ignored whole)."""
    value = store.get_setting(PROVIDERS_SETTING)
    if not isinstance(value, dict):
        return None
    at_ms, listed = value.get("at_ms"), value.get("providers")
    if type(at_ms) is not int or not isinstance(listed, list):
        return None
    found: list[Candidate] = []
    for item in listed[:MAILBOX_MAX_REMEMBERED]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
            return None
        try:
            peer = PeerId.parse(item[0])
        except (P2PDMError, ValueError):
            return None
        addrs = item[1][:MAX_ADDRS]
        if not all(isinstance(a, str) and len(a.encode()) <= MAX_ADDR_BYTES for a in addrs):
            return None
        found.append((peer, addrs))
    return (at_ms, found) if found else None


def parse_mailbox_addr(text: str) -> Candidate:
    """A mailbox multiaddr names its peer (``/ip4/…/tcp/…/p2p/12D3KooW…``); raises ConfigError."""
    text = text.strip()
    head, sep, named = text.rpartition("/p2p/")
    try:
        if not sep or not head or len(text.encode()) > MAX_ADDR_BYTES:
            raise SchemaError("no /p2p/ part")
        return PeerId.parse(named), [text]
    except SchemaError:
        raise ConfigError(f"a mailbox address must end in /p2p/<PeerID>: {text[:80]!r}") from None


def withdraw_secret(key: bytes, mailbox: PeerId, envelope_id: bytes) -> bytes:
    """The secret that takes back our deposit of ``envelope_id`` at ``mailbox``:
    keyed by ``key`` (from our identity seed), one per mailbox and envelope,
    so one mailbox that learns a secret cannot withdraw another's copy."""
    return hashlib.blake2b(
        bytes([len(mailbox.raw)]) + mailbox.raw + envelope_id,
        key=key,
        digest_size=mb.WITHDRAW_SECRET_BYTES,
        person=b"p2pdm-wd-secret",
    ).digest()


def describe_refusal(result: mb.Result) -> str:
    """A mailbox's refusal in words (its code if unknown: mailboxes may add codes)."""
    text = REFUSALS.get(result.code, result.code)
    if result.code == mb.STAMP_REQUIRED and result.bits > MAILBOX_MAX_STAMP_BITS:
        return f"{text} ({result.bits} bits, more than we mint)"
    return text


class MailboxClient:
    """Deposit at, and fetch from, one mailbox at a time."""

    def __init__(
        self, identity: Identity, network: Network, *, now_ms: Callable[[], int] | None = None
    ) -> None:
        self.identity = identity
        self.network = network
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        #: Keys the withdraw secrets; derived, so nothing per deposit is stored.
        self._withdraw_key = hashlib.blake2b(
            identity.seed, digest_size=32, person=b"p2pdm-wd-key"
        ).digest()

    def withdraw_secret(self, mailbox: PeerId, envelope_id: bytes) -> bytes:
        return withdraw_secret(self._withdraw_key, mailbox, envelope_id)

    async def deposit(
        self, mailbox: PeerId, addrs: Sequence[str], envelopes: Sequence[bytes]
    ) -> list[mb.Result]:
        """Deposit each envelope; one result per envelope, in order.

        Raises PeerUnreachable (or another P2PDMError) if the mailbox cannot
        be reached or breaks the protocol.
        """
        results = []
        stamps = MAILBOX_MAX_STAMPS_PER_BATCH
        try:
            stream = await self._open(mailbox, addrs, mb.MAILBOX_PROTOCOL_WITHDRAW)
        except StreamRefused:  # an older mailbox: deposits it cannot give back
            stream = await self._open(mailbox, addrs)
        withdrawable = stream.protocol == mb.MAILBOX_PROTOCOL_WITHDRAW
        async with stream:
            for envelope in envelopes:
                wd = None
                if withdrawable:
                    envelope_id = Envelope.decode(envelope).id
                    wd = mb.withdraw_hash(self.withdraw_secret(mailbox, envelope_id))
                deposit = mb.Deposit(envelope, withdraw=wd)
                result = _result(await _ask(stream, deposit.encode()))
                asked = result.bits if result.code == mb.STAMP_REQUIRED else 0
                if stamps and 0 < asked <= MAILBOX_MAX_STAMP_BITS:
                    stamps -= 1
                    token = await self._mint(mailbox, envelope, asked)
                    stamped = mb.Deposit(envelope, token, wd)
                    result = _result(await _ask(stream, stamped.encode()))
                results.append(result)
        return results

    async def withdraw(
        self, mailbox: PeerId, addrs: Sequence[str], envelope_ids: Sequence[bytes]
    ) -> int | None:
        """Take back our deposits of ``envelope_ids`` at ``mailbox``; how many it
        removed, or None if it cannot withdraw (an older mailbox, or a refusal).

        Raises PeerUnreachable (or another P2PDMError) if it cannot be reached.
        """
        try:
            stream = await self._open(mailbox, addrs, mb.MAILBOX_PROTOCOL_WITHDRAW)
        except StreamRefused:
            return None
        removed = 0
        async with stream:
            for start in range(0, len(envelope_ids), mb.MAX_WITHDRAW_ITEMS):
                batch = envelope_ids[start : start + mb.MAX_WITHDRAW_ITEMS]
                secrets = tuple(self.withdraw_secret(mailbox, eid) for eid in batch)
                result = _result(await _ask(stream, mb.Withdraw(secrets).encode()))
                if result.code in (mb.UNAVAILABLE, mb.RATE_LIMITED):  # worth another try
                    raise P2PDMError(f"mailbox {mailbox.short()}: {describe_refusal(result)}")
                if not result.ok:
                    log.info("mailbox %s refused a withdraw: %s", mailbox.short(), result.code)
                    return None
                removed += result.count
        return removed

    async def _mint(self, mailbox: PeerId, envelope: bytes, bits: int) -> bytes:
        """A stamp for depositing ``envelope`` at ``mailbox``; raises WireError for a bad one."""
        recipient = Envelope.decode(envelope).recipient
        mint = partial(mb.mint_stamp, mailbox, recipient, envelope, self.now_ms(), bits)
        if bits <= MAILBOX_INLINE_STAMP_BITS:
            return mint()
        return await trio.to_thread.run_sync(mint)

    async def fetch(
        self,
        mailbox: PeerId,
        addrs: Sequence[str],
        handle: Callable[[list[mb.FetchedEnvelope]], list[int]],
    ) -> int:
        """Fetch our envelopes page by page; ``handle`` returns the seqs to delete.

        Returns how many envelopes were handled. Raises PeerUnreachable, a
        WireError for a bad reply, P2PDMError if the mailbox refuses us.
        """
        stream = await self._open(mailbox, addrs)
        handled = 0
        async with stream:
            challenge = await _ask(stream, mb.ChallengeRequest().encode())
            if not isinstance(challenge, mb.ChallengeReply):
                raise ProtocolViolation(f"mailbox {mailbox.short()} sent no challenge")
            signature = mb.auth_signature(self.identity, mailbox, challenge.nonce)
            auth = _result(await _ask(stream, mb.Auth(self.identity.peer_id, signature).encode()))
            if not auth.ok:
                raise P2PDMError(f"mailbox {mailbox.short()} refused our key: {auth.code}")
            after = 0
            for _ in range(MAILBOX_MAX_PAGES_PER_ROUND):
                page = await _ask(stream, mb.Fetch(after).encode())
                if not isinstance(page, mb.Envelopes):
                    raise P2PDMError(f"mailbox {mailbox.short()} refused to fetch: {page}")
                if not page.items:
                    break
                if any(item.seq <= after for item in page.items):
                    raise ProtocolViolation(f"mailbox {mailbox.short()} went backwards")
                after = page.items[-1].seq
                done = handle(list(page.items))
                handled += len(page.items)
                if done:
                    await _ask(stream, mb.Delete(tuple(done)).encode())
                if not page.more:
                    break
        return handled

    async def _open(
        self, mailbox: PeerId, addrs: Sequence[str], protocol: str = mb.MAILBOX_PROTOCOL
    ) -> Stream:
        try:
            with trio.fail_after(MAILBOX_REQUEST_TIMEOUT):
                return await self.network.open_stream(mailbox, protocol, addrs)
        except trio.TooSlowError:
            raise PeerUnreachable(f"mailbox {mailbox.short()} did not answer in time") from None


async def _ask(stream: Stream, frame: bytes) -> mb.Reply:
    """Send one request and read its reply; raises PeerUnreachable or WireError."""
    await stream.write_frame(frame, MAILBOX_REQUEST_TIMEOUT)
    reply = await stream.read_frame(mb.MAX_REPLY_FRAME_BYTES, MAILBOX_REQUEST_TIMEOUT)
    if reply is None:
        raise PeerUnreachable(f"mailbox {stream.remote_peer.short()} closed the stream")
    return mb.decode_reply(reply)


def _result(reply: mb.Reply) -> mb.Result:
    if not isinstance(reply, mb.Result):
        raise ProtocolViolation("mailbox answered with the wrong kind of frame")
    return reply


class MailboxDirectory:
    """Which mailboxes to deposit at for a recipient, and which to fetch ours from."""

    def __init__(
        self,
        identity: Identity,
        network: Network,
        *,
        preferred: Sequence[str] = (),
        clock: Callable[[], float] = trio.current_time,
        memory: Settings | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        """``memory`` (with ``now_ms``, the wall clock): where the providers found
        are kept across restarts (the node's store); None keeps nothing."""
        if len(preferred) > MAX_ADDRS:
            raise ConfigError(f"at most {MAX_ADDRS} preferred mailboxes")
        if memory is not None and now_ms is None:
            raise ValueError("a directory that remembers providers needs the wall clock")
        self.identity = identity
        self.network = network
        self.clock = clock
        self._memory = memory
        self._now_ms = now_ms
        #: Remembered providers not read yet from ``memory`` (it is read once).
        self._unrecalled = memory is not None
        #: Our preferred mailboxes (``--mailbox-peer``), published in our record.
        self.preferred: list[Candidate] = [parse_mailbox_addr(a) for a in preferred]
        #: (looked up at, reuse for seconds, providers).
        self._providers: tuple[float, float, list[Candidate]] | None = None
        self._named: OrderedDict[PeerId, tuple[float, list[Candidate]]] = OrderedDict()

    @property
    def preferred_addrs(self) -> tuple[str, ...]:
        return tuple(addrs[0] for _, addrs in self.preferred)

    async def publish_record(
        self,
        bundle: PrekeyBundle,
        seq: int,
        profile: Profile | None = None,
        relays: Sequence[str] = (),
    ) -> tuple[records.NodeRecord, int]:
        """Put our signed record (prekey bundle, preferred mailboxes, profile, relayed
        addresses) in the DHT; returns it and how many peers hold it now (0: none
        took it).

        ``seq`` must grow with every publication (the wall clock in ms does).
        """
        record = records.NodeRecord(
            self.identity.peer_id,
            seq,
            bundle,
            self.preferred_addrs,
            profile,
            tuple(relays[: records.MAX_RELAY_ADDRS]),
        )
        holders = await self.network.put_record(
            records.record_key(self.identity.peer_id), record.sign(self.identity)
        )
        return record, holders

    def forget(self) -> None:
        """Drop cached lookups (e.g. after every candidate failed)."""
        self._providers = None
        self._named.clear()

    def forget_providers(self) -> None:
        """Drop the cached provider list (one of them failed): the next call looks up.

        Kept in the store still: a restart fetches from it at once, as after
        any failure (the start-up round looks up when one fails)."""
        self._providers = None
        self._unrecalled = False

    def _recall(self) -> list[Candidate]:
        """The providers found last, cached or (once) from ``memory``; [] if none
        or if they are older than MAILBOX_REMEMBER_SECONDS. A list found less than
        its trust time ago becomes the cache."""
        if self._providers is not None:
            return self._providers[2]
        if not self._unrecalled or self._memory is None or self._now_ms is None:
            return []
        self._unrecalled = False
        try:
            recalled = recall_providers(self._memory)
        except P2PDMError as exc:
            log.info("could not read the mailbox providers found before: %s", exc)
            return []
        if recalled is None:
            return []
        at_ms, found = recalled
        age = (self._now_ms() - at_ms) / 1000
        if not 0 <= age <= MAILBOX_REMEMBER_SECONDS:  # too old, or the wall clock went back
            return []
        if age < _trust_seconds(found):
            self._providers = (self.clock() - age, _trust_seconds(found), found)
        return found

    async def providers(self) -> list[Candidate]:
        """Nodes that announce the mailbox service (cached: see MAILBOX_TRUST_SECONDS)."""
        return (await self._providers_cached())[0]

    async def _providers_cached(self) -> tuple[list[Candidate], bool]:
        """The providers, and whether they came from the cache (no lookup now)."""
        now = self.clock()
        self._recall()
        if self._providers is not None and now - self._providers[0] < self._providers[1]:
            return self._providers[2], True
        try:
            found = await self.network.find_providers(
                mb.MAILBOX_SERVICE_KEY, MAILBOX_LOOKUP_TIMEOUT
            )
        except P2PDMError as exc:
            log.info("finding mailbox providers failed: %s", exc)
            found = []
        if found:
            self._providers = (now, _trust_seconds(found), found)
            if self._memory is not None and self._now_ms is not None:
                try:
                    remember_providers(self._memory, self._now_ms(), found)
                except P2PDMError as exc:
                    log.info("could not keep the mailbox providers found: %s", exc)
        return found, False

    def known_providers(self) -> list[PeerId]:
        """The mailbox providers the last successful lookup found; looks nothing up."""
        return [] if self._providers is None else [peer for peer, _ in self._providers[2]]

    async def named_by(self, recipient: PeerId) -> list[Candidate]:
        """The mailboxes ``recipient`` names in its signed DHT record (cached)."""
        now = self.clock()
        cached = self._named.get(recipient)
        if cached is not None and now - cached[0] < MAILBOX_CACHE_SECONDS:
            return cached[1]
        named: list[Candidate] = []
        key = records.record_key(recipient)
        try:
            value = await self.network.get_record(key, MAILBOX_LOOKUP_TIMEOUT)
            if value is not None:
                for addr in records.validate(key, value).mailboxes:
                    try:
                        named.append(parse_mailbox_addr(addr))
                    except ConfigError:
                        continue
        except (P2PDMError, ValueError) as exc:
            log.info("no usable record for %s: %s", recipient.short(), exc)
        self._named[recipient] = (now, named)
        self._named.move_to_end(recipient)
        while len(self._named) > MAILBOX_MAX_CACHED_RECIPIENTS:
            self._named.popitem(last=False)
        return named

    async def for_recipient(self, recipient: PeerId) -> list[Candidate]:
        """Where to deposit for ``recipient``, best first."""
        chosen = _merge(await self.named_by(recipient), [], MAILBOX_MAX_CANDIDATES)
        return self._closest(recipient, chosen, MAILBOX_MAX_CANDIDATES, await self.providers())

    async def own(self) -> list[Candidate]:
        """Where to fetch our own envelopes from: preferred, then the closest providers."""
        return (await self.own_cached())[0]

    async def own_cached(self) -> tuple[list[Candidate], bool]:
        """Like :meth:`own`, and whether the providers came from the cache rather
        than a lookup just now (a failure then calls for a lookup)."""
        chosen = _merge(self.preferred, [], MAILBOX_MAX_CANDIDATES)
        limit = len(chosen) + MAILBOX_FETCH_FANOUT
        found, cached = await self._providers_cached()
        return self._closest(self.identity.peer_id, chosen, limit, found), cached

    async def own_first(self) -> tuple[list[Candidate], bool]:
        """Where the start-up round fetches from, and whether that is what we knew
        (the providers found last, perhaps before a restart) rather than a lookup:
        the lookup is made only when we know no provider."""
        known = self._recall()
        if not known:
            return await self.own(), False
        chosen = _merge(self.preferred, [], MAILBOX_MAX_CANDIDATES)
        limit = len(chosen) + MAILBOX_FETCH_FANOUT
        return self._closest(self.identity.peer_id, chosen, limit, known), True

    def own_known(self) -> list[Candidate]:
        """Like :meth:`own`, from the last provider lookup only; looks nothing up."""
        chosen = _merge(self.preferred, [], MAILBOX_MAX_CANDIDATES)
        limit = len(chosen) + MAILBOX_FETCH_FANOUT
        found = [] if self._providers is None else self._providers[2]
        return self._closest(self.identity.peer_id, chosen, limit, found)

    def _closest(
        self, target: PeerId, chosen: list[Candidate], limit: int, providers: list[Candidate]
    ) -> list[Candidate]:
        skip = {self.identity.peer_id, target}
        addrs = dict(providers)
        others = [p for p in addrs if p not in skip]
        nearest = mb.closest(mb.mailbox_key(target), others, limit)
        merged = _merge(chosen, [(p, addrs[p]) for p in nearest], limit)
        return [(p, a) for p, a in merged if p not in skip]


def _trust_seconds(providers: Sequence[Candidate]) -> float:
    """How long a provider list is used before it is looked up again."""
    enough = len(providers) >= MAILBOX_COPIES
    return MAILBOX_TRUST_SECONDS if enough else MAILBOX_SHORT_CACHE_SECONDS


def _merge(first: list[Candidate], then: list[Candidate], limit: int) -> list[Candidate]:
    """``first`` then ``then``, each peer once, at most ``limit``."""
    out: dict[PeerId, list[str]] = {}
    for peer, addrs in [*first, *then]:
        if peer not in out and len(out) < limit:
            out[peer] = list(addrs)
    return list(out.items())
