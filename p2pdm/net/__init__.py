"""The network layer: libp2p hosts, framed streams, DHT routing and records.

Only :mod:`p2pdm.net.libp2p_host` imports libp2p; nothing outside this
package sees a libp2p type. Start with :func:`open_host`.
"""

from p2pdm.net.frames import FrameDecoder, encode_frame
from p2pdm.net.libp2p_host import (
    DEFAULT_LISTEN,
    Host,
    RecordSelector,
    RecordValidator,
    StreamHandler,
    configure_libp2p_logging,
    open_host,
)
from p2pdm.net.stream import RawStream, Stream

__all__ = [
    "DEFAULT_LISTEN",
    "FrameDecoder",
    "Host",
    "RawStream",
    "RecordSelector",
    "RecordValidator",
    "Stream",
    "StreamHandler",
    "configure_libp2p_logging",
    "encode_frame",
    "open_host",
]
