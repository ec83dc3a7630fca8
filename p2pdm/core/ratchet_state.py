"""A Double Ratchet's state in compact form, and a cheap copy of it.

How this works: a session's state is saved after every message it encrypts
or decrypts, so saving it must cost little next to the cryptography. The
``doubleratchet`` package's own form (``ratchet.json``) builds pydantic
models, dumps them to JSON with every byte string spelt as text, and parses
that JSON back: per message that cost more than the ratchet step itself,
and a byte above 0x7f takes six bytes of JSON. :func:`dump` instead reads
the few values that make up the state (two keys, three chains, a counter and
the skipped message keys) into a flat CBOR-ready list of raw byte strings
and integers; :func:`load` gives them back to the package through its public
``from_model`` API. Version 1 of the session state (the package's JSON) is
still read (:mod:`p2pdm.core.session`), so stores written before keep
working; they are rewritten in this form on their next use.

The package copies the whole Diffie-Hellman ratchet with ``copy.deepcopy``
before each decryption (to drop the changes of one that fails);
:func:`clone` is that copy for its few plain objects, without deepcopy's
generic walk.

:func:`dump` reads the package's private attributes when they are there
(the fast path) and its public ``model`` otherwise; both give the same list
(``tests/core/test_ratchet_state.py`` checks them against the package's own
JSON), so a package release that renames them costs speed, not correctness.
"""

from __future__ import annotations

import copy
from typing import Any, Final, TypeVar

from doubleratchet import DoubleRatchet
from doubleratchet.kdf_chain import KDFChain
from doubleratchet.models import (
    DiffieHellmanRatchetModel,
    DoubleRatchetModel,
    KDFChainModel,
    SkippedMessageKeyModel,
    SymmetricKeyRatchetModel,
)
from doubleratchet.symmetric_key_ratchet import SymmetricKeyRatchet

from p2pdm.errors import SessionError

__all__ = ["KEY_BYTES", "clone", "dump", "load"]

#: Size of every ratchet key and chain key (X25519, HKDF-SHA-256 outputs).
KEY_BYTES: Final = 32
#: Largest chain length or skipped-key index read back (the package counts
#: messages in Python ints; a chain this long would take centuries).
_MAX_COUNTER: Final = (1 << 63) - 1

R = TypeVar("R", bound=DoubleRatchet)

# Positions in the dumped list.
_OWN_PRIV, _OTHER_PUB, _ROOT, _SEND, _RECV, _PREVIOUS, _SKIPPED = range(7)
_FIELDS: Final = 7


def _chain(chain: KDFChain | None) -> list[Any] | None:
    if chain is None:
        return None
    return [chain._KDFChain__length, chain._KDFChain__key]  # type: ignore[attr-defined]


def _chain_model(model: KDFChainModel | None) -> list[Any] | None:
    return None if model is None else [model.length, model.key]


def _skipped(pairs: Any) -> list[Any]:
    """Skipped message keys in the package's order, as runs of one ratchet key:
    ``[ratchet_pub, [index, key, index, key, ...], ratchet_pub, [...], ...]``."""
    out: list[Any] = []
    run: list[Any] = []
    last = None
    for (pub, index), key in pairs:
        if pub != last:
            run = []
            out += [pub, run]
            last = pub
        run += [index, key]
    return out


def dump(ratchet: DoubleRatchet) -> list[Any]:
    """The state of ``ratchet`` as a list of byte strings, integers and lists."""
    try:
        dh = ratchet._DoubleRatchet__diffie_hellman_ratchet  # type: ignore[attr-defined]
        symmetric = dh._DiffieHellmanRatchet__symmetric_key_ratchet
        skipped = ratchet._DoubleRatchet__skipped_message_keys  # type: ignore[attr-defined]
        return [
            dh._DiffieHellmanRatchet__own_ratchet_priv,
            dh._DiffieHellmanRatchet__other_ratchet_pub,
            _chain(dh._DiffieHellmanRatchet__root_chain),
            _chain(symmetric._SymmetricKeyRatchet__sending_chain),
            _chain(symmetric._SymmetricKeyRatchet__receiving_chain),
            symmetric._SymmetricKeyRatchet__previous_sending_chain_length,
            _skipped(skipped.items()),
        ]
    except AttributeError:
        return _dump_model(ratchet.model)


def _dump_model(model: DoubleRatchetModel) -> list[Any]:
    """:func:`dump` through the package's public (slower) model."""
    dh = model.diffie_hellman_ratchet
    symmetric = dh.symmetric_key_ratchet
    return [
        dh.own_ratchet_priv,
        dh.other_ratchet_pub,
        _chain_model(dh.root_chain),
        _chain_model(symmetric.sending_chain),
        _chain_model(symmetric.receiving_chain),
        symmetric.previous_sending_chain_length,
        _skipped(((k.ratchet_pub, k.index), k.message_key) for k in model.skipped_message_keys),
    ]


def _damaged(why: str) -> SessionError:
    return SessionError(f"session state is damaged: {why}")


def _key(value: Any) -> bytes:
    if type(value) is not bytes or len(value) != KEY_BYTES:
        raise _damaged(f"expected a {KEY_BYTES}-byte key")
    return value


def _counter(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_COUNTER:
        raise _damaged("expected a counter")
    return value


def _load_chain(value: Any) -> KDFChainModel | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != 2:
        raise _damaged("expected a chain")
    return KDFChainModel.model_construct(length=_counter(value[0]), key=_key(value[1]))


def _load_skipped(value: Any, max_keys: int) -> list[SkippedMessageKeyModel]:
    if type(value) is not list or len(value) % 2:
        raise _damaged("expected skipped message keys")
    keys: list[SkippedMessageKeyModel] = []
    for at in range(0, len(value), 2):
        pub, run = _key(value[at]), value[at + 1]
        if type(run) is not list or not run or len(run) % 2:
            raise _damaged("expected skipped message keys")
        if len(keys) + len(run) // 2 > max_keys:
            raise _damaged(f"more than {max_keys} skipped message keys")
        for i in range(0, len(run), 2):
            keys.append(
                SkippedMessageKeyModel.model_construct(
                    ratchet_pub=pub, index=_counter(run[i]), message_key=_key(run[i + 1])
                )
            )
    return keys


def load(cls: type[R], state: Any, config: dict[str, Any]) -> R:
    """A ratchet of class ``cls`` with the state :func:`dump` gave, configured by
    ``config`` (the keyword arguments of the package's ``from_model``).

    Raises SessionError for a list that is not such a state.
    """
    if type(state) is not list or len(state) != _FIELDS:
        raise _damaged("expected a ratchet state")
    send = _load_chain(state[_SEND])
    if send is None:
        raise _damaged("no sending chain")
    root = _load_chain(state[_ROOT])
    if root is None:
        raise _damaged("no root chain")
    previous = state[_PREVIOUS]
    model = DoubleRatchetModel.model_construct(
        diffie_hellman_ratchet=DiffieHellmanRatchetModel.model_construct(
            own_ratchet_priv=_key(state[_OWN_PRIV]),
            other_ratchet_pub=_key(state[_OTHER_PUB]),
            root_chain=root,
            symmetric_key_ratchet=SymmetricKeyRatchetModel.model_construct(
                receiving_chain=_load_chain(state[_RECV]),
                sending_chain=send,
                previous_sending_chain_length=None if previous is None else _counter(previous),
            ),
        ),
        skipped_message_keys=_load_skipped(state[_SKIPPED], config["max_num_skipped_message_keys"]),
    )
    return cls.from_model(model, **config)


#: Values a clone may share with the original: nothing in them can change
#: (classes too: the package keeps its KDF classes in its objects).
_IMMUTABLE: Final = frozenset({bytes, int, str, bool, type(None)})
#: The package's objects a clone copies in turn, by exact type (a subclass
#: goes through the slower ``isinstance`` check below, with the same result).
_CLONED: Final = frozenset({KDFChain, SymmetricKeyRatchet})


def clone(obj: Any) -> Any:
    """A copy of one of the package's ratchet objects that shares nothing
    mutable with it: what ``copy.deepcopy`` gives, for a fraction of its cost.

    Its chains and symmetric-key ratchet are copied in turn; anything else
    that is not immutable goes through ``copy.deepcopy``.
    """
    new = object.__new__(type(obj))
    attrs = new.__dict__
    for name, value in obj.__dict__.items():
        kind = type(value)
        if kind in _IMMUTABLE or isinstance(value, type):
            attrs[name] = value
        elif kind in _CLONED or isinstance(value, KDFChain | SymmetricKeyRatchet):
            attrs[name] = clone(value)
        else:
            attrs[name] = copy.deepcopy(value)
    return new
