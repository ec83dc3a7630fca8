"""Voice notes: duration and a small waveform, read cheaply from the container.

How this works: a browser's MediaRecorder gives Opus in Ogg (Firefox) or in
WebM (Chrome). For Ogg, the pages are walked (no decoding): the duration is
the last page's granule position less the ``OpusHead`` pre-skip, at Opus'
fixed 48 kHz; the waveform is the bytes of audio per step of time, scaled
to 0..255 — Opus is variable-bitrate, so louder speech takes more bytes,
and this is a fair picture of loudness for a voice note, not a measurement.
For WebM (Chrome), with PyAV installed (the ``video`` extra) the audio is
decoded: the duration is its samples at 48 kHz and the waveform the RMS of
each step (node/video.py); without it, the ``Duration`` element of the
segment info is read when the recorder wrote one (Chrome often does not:
then there is no duration) and no waveform is made. Anything that does not parse gives nothing; this
never raises.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from p2pdm.limits import MAX_MEDIA_DURATION_MS, MAX_WAVEFORM_LEVELS
from p2pdm.node.video import webm_voice

__all__ = ["AUDIO_TYPES", "MAX_AUDIO_SCAN_BYTES", "VoiceNote", "analyse"]

#: Types read as voice notes.
AUDIO_TYPES: Final = frozenset({"audio/ogg", "audio/opus", "audio/webm"})
#: Bytes of a voice note kept in memory to read its duration: ten minutes of
#: speech at 128 kbit/s; past it the note is sent without them.
MAX_AUDIO_SCAN_BYTES: Final = 10 << 20
_OPUS_RATE: Final = 48_000
_OGG_HEADER: Final = struct.Struct("<4sBBqIIIB")


@dataclass(frozen=True, slots=True)
class VoiceNote:
    duration_ms: int | None
    waveform: bytes | None


def _ogg_pages(data: bytes) -> list[tuple[int, bytes]]:
    """(granule position, payload) of each page, until the data stops parsing."""
    pages = []
    at = 0
    while at + _OGG_HEADER.size <= len(data):
        magic, _, _, granule, _, _, _, count = _OGG_HEADER.unpack_from(data, at)
        if magic != b"OggS":
            break
        table = data[at + _OGG_HEADER.size : at + _OGG_HEADER.size + count]
        start = at + _OGG_HEADER.size + count
        end = start + sum(table)
        if len(table) < count or end > len(data):
            break
        pages.append((granule, data[start:end]))
        at = end
    return pages


def _levels(samples: list[tuple[int, int]], start: int, total: int) -> bytes | None:
    """``(granule, bytes)`` per page as MAX_WAVEFORM_LEVELS levels of 0..255:
    each page's bytes spread evenly over the time it covers."""
    span = total - start
    if span <= 0 or not samples:
        return None
    steps = [0.0] * MAX_WAVEFORM_LEVELS
    width = span / MAX_WAVEFORM_LEVELS
    previous = start
    for granule, size in samples:
        if granule <= previous:
            continue
        rate = size / (granule - previous)
        first = int((previous - start) / width)
        last = min(MAX_WAVEFORM_LEVELS - 1, int((granule - start - 1) / width))
        for step in range(first, last + 1):
            low = max(previous, start + step * width)
            high = min(granule, start + (step + 1) * width)
            steps[step] += rate * max(0.0, high - low)
        previous = granule
    peak = max(steps)
    return bytes(round(255 * s / peak) for s in steps) if peak else None


def _ogg(data: bytes) -> VoiceNote:
    pages = _ogg_pages(data)
    if not pages or not pages[0][1].startswith(b"OpusHead") or len(pages[0][1]) < 12:
        return VoiceNote(None, None)
    pre_skip = struct.unpack_from("<H", pages[0][1], 10)[0]
    audio = [(g, len(p)) for g, p in pages[2:] if g >= 0]  # after OpusHead and OpusTags
    if not audio:
        return VoiceNote(None, None)
    samples = max(0, audio[-1][0] - pre_skip)
    duration = samples * 1000 // _OPUS_RATE
    if duration > MAX_MEDIA_DURATION_MS:
        return VoiceNote(None, None)
    start = pages[1][0] if len(pages) > 1 else 0
    return VoiceNote(duration, _levels(audio, start, audio[-1][0]))


def _webm_duration(data: bytes) -> int | None:
    """Segment Info's Duration (element 0x4489, a float in TimecodeScale units,
    1 ms unless 0x2AD7B1 says otherwise) if the recorder wrote one."""
    at = data.find(b"\x44\x89")
    if at < 0 or at + 3 > len(data):
        return None
    size_byte = data[at + 2]
    if size_byte == 0x84:
        (value,) = struct.unpack_from(">f", data, at + 3) if at + 7 <= len(data) else (None,)
    elif size_byte == 0x88:
        (value,) = struct.unpack_from(">d", data, at + 3) if at + 11 <= len(data) else (None,)
    else:
        return None
    if value is None or not 0 <= value <= MAX_MEDIA_DURATION_MS:
        return None
    scale = 1_000_000
    mark = data.find(b"\x2a\xd7\xb1")
    if 0 <= mark < at and mark + 4 <= len(data):
        length = data[mark + 3] & 0x0F if data[mark + 3] & 0x80 else 0
        if 1 <= length <= 8 and mark + 4 + length <= len(data):
            scale = int.from_bytes(data[mark + 4 : mark + 4 + length], "big") or scale
    duration = int(value * scale / 1_000_000)
    return duration if 0 <= duration <= MAX_MEDIA_DURATION_MS else None


def analyse(data: bytes, mime: str) -> VoiceNote:
    """Duration and waveform of a voice note of type ``mime`` (either may be None)."""
    try:
        if mime in ("audio/ogg", "audio/opus"):
            return _ogg(data)
        if mime == "audio/webm":
            decoded = webm_voice(data)  # with PyAV: decoded, with a waveform
            if decoded is not None:
                return VoiceNote(*decoded)
            return VoiceNote(_webm_duration(data), None)
    except (struct.error, ValueError, OverflowError):
        pass
    return VoiceNote(None, None)
