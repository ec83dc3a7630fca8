"""One error tree for the whole project.

Every error says whose fault it is. The first group below comes from what a
peer sent us (``WireError`` and its subclasses, ``SignatureError``,
``ReplayError``, ``WrongRecipient``, ``DecryptError``, ``EnvelopeExpired``,
``MessageIdConflict``, ``RateLimited``, ``ProtocolViolation``): the services
log it, drop the input (answering the peer where the protocol says so) and
keep serving. The second group comes from local use (configuration, the
home, the store, the API): tell the user in one line. The docstring of each
class is written for the person who sees it.
"""

from __future__ import annotations

__all__ = [
    "ActionRefused",
    "ArchiveError",
    "ChunkRejected",
    "ConfigError",
    "DecryptError",
    "EnvelopeExpired",
    "EnvelopeIdMismatch",
    "FrameTooLarge",
    "HomeError",
    "IdempotencyConflict",
    "IdentityError",
    "InviteError",
    "InviteExpired",
    "InviteFormatError",
    "InviteSignatureError",
    "MalformedCBOR",
    "MediaRefused",
    "MessageIdConflict",
    "NameRefused",
    "NodeNotRunning",
    "NotConnected",
    "NotFound",
    "P2PDMError",
    "PassphraseError",
    "PeerBlocked",
    "PeerUnreachable",
    "PrekeyError",
    "ProtocolViolation",
    "RateLimited",
    "ReplayError",
    "SchemaError",
    "SessionError",
    "SignatureError",
    "SimWorkerError",
    "StampMissing",
    "StoreError",
    "StreamRefused",
    "TokenError",
    "UnsupportedVersion",
    "WireError",
    "WrongRecipient",
]


class P2PDMError(Exception):
    """Base of every error p2pdm raises on purpose."""


# --- what a peer sent us --------------------------------------------------


class WireError(P2PDMError):
    """Bytes from a peer (or a file) do not decode as the expected p2pdm type.

    The input is dropped; nothing was stored. Subclasses say which check failed.
    """


class FrameTooLarge(WireError):
    """A frame is larger than the cap for its type; it was refused unread."""


class MalformedCBOR(WireError):
    """The bytes are not CBOR of the shapes p2pdm allows."""


class SchemaError(WireError):
    """The CBOR decoded, but a field is missing, unknown, or of the wrong type or size."""


class UnsupportedVersion(WireError):
    """The data carries a format version this node does not know; upgrade p2pdm."""


class EnvelopeIdMismatch(WireError):
    """An envelope's id is not the hash of its content (protocol §9): it was forged,
    damaged, or made by a p2pdm from before ids were bound to content; dropped."""


class SignatureError(P2PDMError):
    """A signature does not verify: the data was forged or damaged, and was dropped."""


class ReplayError(P2PDMError):
    """A message or envelope id that was already accepted arrived again; dropped."""


class MessageIdConflict(P2PDMError):
    """A message arrived under an id this node already uses for another peer's (or its own)
    message; it was dropped. Only a forged or broken sender does this."""


class WrongRecipient(P2PDMError):
    """A message names another recipient than this node; dropped."""


class DecryptError(P2PDMError):
    """A ciphertext could not be decrypted or authenticated; dropped."""


class ChunkRejected(DecryptError):
    """A blob chunk from a peer failed its authentication (tampered, truncated,
    out of place); it was not written, and it is fetched again."""


class EnvelopeExpired(P2PDMError):
    """An envelope arrived after its expiry time; dropped unread."""


class RateLimited(P2PDMError):
    """A stranger (not a contact) sends faster than this node accepts requests.

    Nothing was stored; the envelope is answered ``retry``, so its sender
    keeps it and tries again later.
    """


class GroupBehind(RateLimited):
    """A group message names a group or changes this node does not hold yet:
    nothing was kept, the changes are asked from its author, and the sender
    retries (docs/protocol.md §19.4)."""

    def __init__(self, message: str, peer: object, group: bytes) -> None:
        super().__init__(message)
        self.peer = peer
        self.group = group


class StampMissing(P2PDMError):
    """A stranger's envelope carries no valid request stamp (docs/protocol.md §18.2).

    Nothing was stored; it is answered ``rejected`` and counted.
    """


class ProtocolViolation(P2PDMError):
    """A peer broke the protocol (limits, order of frames); it gets disconnected."""


# --- local use ------------------------------------------------------------


class ActionRefused(P2PDMError):
    """A reaction, edit or unsend is not allowed on that message (not yours, another
    conversation, past the edit window, or unsent); nothing was sent."""


class GroupRefused(P2PDMError):
    """A group change or message is not allowed: only admins add, remove,
    rename and promote; you must be a member to send; a group has at most
    32 members. Nothing was sent."""


class SessionError(P2PDMError):
    """An end-to-end session could not be set up or used."""


class PrekeyError(SessionError):
    """A key agreement names a prekey this node does not have (expired or already used)."""


class IdentityError(P2PDMError):
    """The node identity is missing or unusable. Run `p2pdm init` first."""


class PassphraseError(IdentityError):
    """The identity file is encrypted and the passphrase (P2PDM_PASSPHRASE) is missing or wrong."""


class HomeError(P2PDMError):
    """The node home directory cannot be used (permissions, missing files)."""


class ArchiveError(P2PDMError):
    """An export archive cannot be written or read: it exists already, or it is damaged,
    truncated, too large, of an unknown version, or the passphrase is wrong."""


class ConfigError(P2PDMError):
    """A configuration value or command-line option is invalid."""


class InviteError(P2PDMError):
    """An invite could not be used."""


class InviteFormatError(InviteError, WireError):
    """The text is not a p2pdm invite, or it is truncated or damaged."""


class InviteSignatureError(InviteError, SignatureError):
    """The invite's signature does not match its content: it was tampered with."""


class InviteExpired(InviteError):
    """The invite has expired; ask the contact for a fresh one (`p2pdm id`)."""


class StoreError(P2PDMError):
    """The message store failed or refused an operation."""


class NotFound(StoreError):
    """The contact, conversation or message asked for does not exist."""


class NameRefused(P2PDMError):
    """That contact name is refused: it is a PeerID or another contact's name; choose another."""


class PeerBlocked(P2PDMError):
    """You blocked this peer: nothing is sent to it or accepted from it; unblock it first."""


class IdempotencyConflict(P2PDMError):
    """This idempotency key was already used for another message; use a new key for a new one."""


class TokenError(P2PDMError):
    """An API token could not be made: its name is taken, or there are too many; revoke one."""


class PeerUnreachable(P2PDMError):
    """The peer could not be reached at any known address.

    ``reason``: why, in a few words for a person ("connection refused",
    "not found in the DHT"); the message itself may name addresses.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class StreamRefused(PeerUnreachable):
    """The peer was reached but refused the stream: it does not speak the
    protocol asked for (an older node), or is over its stream limit."""


class NotConnected(PeerUnreachable):
    """The node is not on the network (started without it, or not yet): what
    needs the network, such as a DHT lookup, cannot be done now."""

    def __init__(self, message: str = "the node is not connected to the network") -> None:
        super().__init__(message, "offline")


class MediaRefused(P2PDMError):
    """A file cannot be sent or shown as it is: too large, an image that
    would decompress to too many pixels, or one that does not decode.
    Nothing was stored; the message says which limit it broke."""


class NodeNotRunning(P2PDMError):
    """No p2pdm node is running for this home. Start one with `p2pdm run`."""


class SimWorkerError(P2PDMError):
    """A `p2pdm sim` worker process died, hung or broke its pipe; the simulation was
    stopped. Its last stderr line says why; `--workers 1` runs the nodes in one process."""


class ProfileRefused(P2PDMError):
    """That profile value is refused: a handle is 3 to 30 of a-z, 0-9, '.' and '_' (after
    Unicode NFKC and case folding), a bio is short, an avatar is an image of reasonable size."""
