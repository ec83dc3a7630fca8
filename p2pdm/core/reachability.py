"""Whether others can dial us: the verdict drawn from several peers' dial-backs.

How this works: a node asks a few peers it is connected to (AutoNAT v1,
``/libp2p/autonat/1.0.0``) to dial it back on its own addresses. Each answer
is evidence: ``True`` (the peer reached us), ``False`` (it tried and could
not), or ``None`` (no evidence: it refused, timed out or spoke nonsense).
:func:`decide` never trusts one peer: ``public`` needs REACHABILITY_CONFIRMATIONS
peers that reached us and none more that could not; ``private`` needs as
many that could not and none that could; anything else is ``unknown``. One
lying peer can therefore neither make a node behind NAT believe it is public
nor a public node believe it is private.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["REACHABILITY_CONFIRMATIONS", "RELAY_SERVICE_KEY", "Reachability", "Status", "decide"]

Status = Literal["public", "private", "unknown"]

#: Peers that must agree before the node believes a verdict: two, so no
#: single peer (lying, or behind the same odd firewall) decides alone, and
#: few enough that a small network of three or four nodes can conclude.
REACHABILITY_CONFIRMATIONS: Final = 2


@dataclass(frozen=True, slots=True)
class Reachability:
    """A verdict and the answers it was drawn from."""

    status: Status = "unknown"
    #: Peers that dialed us back.
    reached: int = 0
    #: Peers that tried to dial us back and failed.
    failed: int = 0
    #: Peers asked that gave no evidence (refused, no answer).
    silent: int = 0


def decide(
    answers: Iterable[bool | None], confirmations: int = REACHABILITY_CONFIRMATIONS
) -> Reachability:
    """The verdict from the peers' answers (see the module's comment)."""
    reached = failed = silent = 0
    for answer in answers:
        if answer is None:
            silent += 1
        elif answer:
            reached += 1
        else:
            failed += 1
    status: Status = "unknown"
    if reached >= confirmations and failed == 0:
        status = "public"
    elif failed >= confirmations and reached == 0:
        status = "private"
    elif reached >= confirmations and reached > 2 * failed:
        status = "public"  # a lone dissenter among many does not decide
    elif failed >= confirmations and failed > 2 * reached:
        status = "private"
    return Reachability(status, reached, failed, silent)


#: The DHT key relays announce themselves under (provider records; on the
#: wire as its SHA-256 multihash, like every p2pdm provider key).
RELAY_SERVICE_KEY: Final = b"/p2pdm/relay/v1"
