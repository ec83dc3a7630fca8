"""p2pdm: a peer-to-peer direct-messaging node."""

import sys

if "httpx" not in sys.modules:
    # httpx's package import loads its own command line (click, rich and
    # pygments: about half of its import time and 3 MiB) whenever those are
    # installed, and falls back to a stub when they are not. p2pdm never runs
    # httpx's command line: take the fallback in every p2pdm process, so the
    # SDK's AsyncClient starts at once and a node, whose py-libp2p imports
    # httpx for its ACME client, does not hold it.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__version__ = "0.1.0"

__all__ = ["__version__"]
