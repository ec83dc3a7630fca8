"""The identity file: the node's 32-byte seed, in the clear or sealed by a passphrase.

How this works: the file is a small CBOR map with a format version and
either the seed (no passphrase) or the seed sealed with a key derived from
``P2PDM_PASSPHRASE`` by argon2id (salt and cost parameters stored beside it,
so they can be raised later without breaking old files). The store key
(SQLCipher) is derived from the same argon2id output, so unlocking costs one
argon2id run. :mod:`p2pdm.daemon.home` reads and writes the file.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.pwhash.argon2id as argon2id
import nacl.secret

from p2pdm.core import cbor
from p2pdm.core.identity import SEED_BYTES
from p2pdm.errors import IdentityError, PassphraseError, UnsupportedVersion, WireError
from p2pdm.homefiles import ENV_PASSPHRASE
from p2pdm.store.cipher import KEY_BYTES

__all__ = [
    "DEFAULT_KDF_LIMITS",
    "ENV_PASSPHRASE",
    "KDF_MEM_RANGE",
    "KDF_NAME",
    "KDF_OPS_RANGE",
    "SALT_BYTES",
    "KdfLimits",
    "RandomBytes",
    "decode_identity_file",
    "encode_identity_file",
    "passphrase_key",
    "read_kdf",
    "seal_identity",
    "unlock_identity_file",
]


IDENTITY_FILE_VERSION: Final = 1
# A v1 identity file is under 200 bytes; refuse to parse anything much larger.
MAX_IDENTITY_FILE_BYTES: Final = 4096
KDF_NAME: Final = "argon2id"
#: BLAKE2b personalisation of the store key, derived from the identity file's
#: argon2id key: the two keys differ, yet one argon2id run gives both.
STORE_KEY_PERSON: Final = b"p2pdm/store-key"
SALT_BYTES: Final = argon2id.SALTBYTES
SEALED_SEED_BYTES: Final = (
    nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES + SEED_BYTES
)


@dataclass(frozen=True, slots=True)
class KdfLimits:
    """argon2id cost: passes over memory and bytes of memory."""

    opslimit: int
    memlimit: int


#: libsodium's "moderate" argon2id cost (3 passes, 256 MiB, about 0.5 s).
#: The identity file is at rest on disk, so a thief can guess passphrases
#: offline for as long as they like: each guess should cost far more than an
#: online login would ("interactive", 64 MiB). The identity is unlocked only
#: when a command starts (init, id, run), so half a second is acceptable there.
DEFAULT_KDF_LIMITS: Final = KdfLimits(argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE)
#: Bounds on the cost read back from a file: below the minimum libsodium
#: refuses; above "sensitive" (1 GiB) a damaged or hostile file could make
#: every command allocate without limit.
KDF_OPS_RANGE: Final = (argon2id.OPSLIMIT_MIN, argon2id.OPSLIMIT_SENSITIVE)
KDF_MEM_RANGE: Final = (argon2id.MEMLIMIT_MIN, argon2id.MEMLIMIT_SENSITIVE)

RandomBytes = Callable[[int], bytes]


def read_kdf(f: cbor.Fields) -> tuple[str, KdfLimits, bytes]:
    """The key-derivation fields a sealed file carries: name, cost and salt.

    The cost is bounded so that a file cannot make opening it take forever;
    raises WireError (via ``f``) for a field out of range.
    """
    kdf = f.text("kdf", max_bytes=32)
    limits = KdfLimits(f.integer("opslimit", *KDF_OPS_RANGE), f.integer("memlimit", *KDF_MEM_RANGE))
    return kdf, limits, f.blob("salt", size=SALT_BYTES)


def passphrase_key(passphrase: str, salt: bytes, limits: KdfLimits) -> bytes:
    # NFC, so the same passphrase typed on systems that compose accents
    # differently derives the same key.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        secret,
        salt,
        opslimit=limits.opslimit,
        memlimit=limits.memlimit,
    )


def _store_key(passphrase_key: bytes) -> bytes:
    return nacl.hash.blake2b(
        b"",
        digest_size=KEY_BYTES,
        key=passphrase_key,
        person=STORE_KEY_PERSON,
        encoder=nacl.encoding.RawEncoder,
    )


def seal_identity(
    seed: bytes, passphrase: str | None, random_bytes: RandomBytes, limits: KdfLimits
) -> tuple[bytes, bytes | None]:
    """``(identity file bytes, store key or None without a passphrase)``."""
    if len(seed) != SEED_BYTES:
        raise IdentityError("an identity seed is 32 bytes")
    if not passphrase:
        return cbor.encode({"version": IDENTITY_FILE_VERSION, "seed": seed}), None
    salt = random_bytes(SALT_BYTES)
    nonce = random_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    key = passphrase_key(passphrase, salt, limits)
    box = nacl.secret.SecretBox(key)
    file_bytes = cbor.encode(
        {
            "version": IDENTITY_FILE_VERSION,
            "kdf": KDF_NAME,
            "opslimit": limits.opslimit,
            "memlimit": limits.memlimit,
            "salt": salt,
            "sealed_seed": bytes(box.encrypt(seed, nonce)),
        }
    )
    return file_bytes, _store_key(key)


def encode_identity_file(
    seed: bytes,
    passphrase: str | None,
    random_bytes: RandomBytes,
    limits: KdfLimits = DEFAULT_KDF_LIMITS,
) -> bytes:
    """The identity file for ``seed``: plain, or sealed with ``passphrase`` if given."""
    return seal_identity(seed, passphrase, random_bytes, limits)[0]


def decode_identity_file(data: bytes, passphrase: str | None, where: str) -> tuple[bytes, bool]:
    """``(seed, encrypted)`` of an identity file; see :func:`unlock_identity_file`."""
    seed, store_key = unlock_identity_file(data, passphrase, where)
    return seed, store_key is not None


def unlock_identity_file(
    data: bytes, passphrase: str | None, where: str
) -> tuple[bytes, bytes | None]:
    """Return ``(seed, store key)`` from an identity file's bytes.

    The store key is None for a plain file (the store is plain too).
    Raises :class:`PassphraseError` if the file is encrypted and the
    passphrase is missing or wrong, :class:`IdentityError` if it is damaged
    or of an unknown version. ``where`` names the file in messages.
    """
    try:
        f = cbor.decode_map(data, MAX_IDENTITY_FILE_BYTES, "identity file")
        version = f.integer("version", 0, 2**32)
        if version != IDENTITY_FILE_VERSION:
            raise UnsupportedVersion(str(version))
        if f.has("seed"):
            seed = f.blob("seed", size=SEED_BYTES)
            f.done()
            return seed, None
        kdf, limits, salt = read_kdf(f)
        sealed = f.blob("sealed_seed", size=SEALED_SEED_BYTES)
        f.done()
    except UnsupportedVersion as exc:
        raise IdentityError(
            f"{where} has format version {exc}, this p2pdm reads version "
            f"{IDENTITY_FILE_VERSION}; upgrade p2pdm"
        ) from None
    except WireError as exc:
        raise IdentityError(f"{where} is damaged ({exc})") from None
    if kdf != KDF_NAME:
        raise IdentityError(f"{where} uses an unknown key derivation {kdf!r}; upgrade p2pdm")
    if not passphrase:
        raise PassphraseError(f"{where} is encrypted; set {ENV_PASSPHRASE} to its passphrase")
    key = passphrase_key(passphrase, salt, limits)
    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(sealed)), _store_key(key)
    except nacl.exceptions.CryptoError:
        raise PassphraseError(f"wrong passphrase for {where} (check {ENV_PASSPHRASE})") from None
