"""Videos and WebM voice notes through PyAV (FFmpeg), an optional dependency
(the ``video`` extra): without it a video goes as a plain file and a WebM
voice note gets only the duration its container states (node/audio.py).

How this works: the sender keeps the first MAX_VIDEO_SCAN_BYTES of a video
in memory (a phone's or a browser's recording has its index at the start);
:func:`probe_video` opens them with PyAV, reads the width, height and
duration the container states, refuses a frame over MAX_IMAGE_PIXELS before
decoding it, and decodes the first frame (within MAX_PROBE_PACKETS packets)
into the usual small JPEG thumbnail. :func:`webm_voice` decodes a WebM Opus
voice note (what Chromium's MediaRecorder writes, with no duration in its
header) to count its samples and take a 64-step waveform of its loudness
(RMS per step). Anything that does not decode gives None; these never raise.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from typing import Any, Final

from p2pdm.limits import MAX_MEDIA_DURATION_MS, MAX_MEDIA_SIDE, MAX_WAVEFORM_LEVELS
from p2pdm.node.images import MAX_IMAGE_PIXELS, thumbnail_of

__all__ = [
    "MAX_PROBE_PACKETS",
    "MAX_VIDEO_SCAN_BYTES",
    "VIDEO_TYPES",
    "VideoInfo",
    "have_pyav",
    "probe_video",
    "webm_voice",
]

log = logging.getLogger("p2pdm.node.video")

#: Types read as videos (when PyAV is installed).
VIDEO_TYPES: Final = frozenset(
    {"video/mp4", "video/webm", "video/quicktime", "video/ogg", "video/x-matroska"}
)
#: Bytes of a video kept in memory to probe it: its header and first frames
#: are at the start; the rest streams to disk as it comes.
MAX_VIDEO_SCAN_BYTES: Final = 16 << 20
#: Packets read looking for the first frame of a video: a few seconds.
MAX_PROBE_PACKETS: Final = 600
#: A WebM voice note's duration in samples per second (Opus decodes at 48 kHz).
_OPUS_RATE: Final = 48_000


@dataclass(frozen=True, slots=True)
class VideoInfo:
    width: int
    height: int
    duration_ms: int | None
    thumbnail: bytes | None


def _av() -> Any | None:
    """PyAV, or None where it is not installed."""
    try:
        import av
    except ImportError:
        return None
    return av


def have_pyav() -> bool:
    return _av() is not None


def _duration_ms(container: Any, stream: Any) -> int | None:
    if container.duration is not None:
        ms = container.duration * 1000 // 1_000_000  # AV_TIME_BASE is microseconds
    elif stream.duration is not None and stream.time_base is not None:
        ms = int(stream.duration * stream.time_base * 1000)
    else:
        return None
    return ms if 0 <= ms <= MAX_MEDIA_DURATION_MS else None


def probe_video(head: bytes) -> VideoInfo | None:
    """Size, duration and first-frame thumbnail of a video from its first
    bytes; None without PyAV or when it does not decode."""
    av = _av()
    if av is None:
        return None
    try:
        with av.open(io.BytesIO(head), mode="r") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if not (0 < width <= MAX_MEDIA_SIDE and 0 < height <= MAX_MEDIA_SIDE):
                return None
            if width * height > MAX_IMAGE_PIXELS:
                return None  # a bomb, or too large to show: a plain file
            duration = _duration_ms(container, stream)
            thumbnail = None
            for count, packet in enumerate(container.demux(stream)):
                if count >= MAX_PROBE_PACKETS:
                    break
                frames = packet.decode()
                if frames:
                    thumbnail = thumbnail_of(frames[0].to_image())
                    break
            return VideoInfo(width, height, duration, thumbnail)
    except (av.error.FFmpegError, ValueError, IndexError, OSError, MemoryError) as exc:
        log.info("video not probed: %s", exc)
        return None


def webm_voice(data: bytes) -> tuple[int, bytes | None] | None:
    """Duration (ms) and waveform of an Opus voice note in WebM, decoded; None
    without PyAV or when it does not decode."""
    av = _av()
    if av is None:
        return None
    energies: list[tuple[int, float]] = []  # (samples, sum of squares) per frame
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                samples = frame.to_ndarray()
                rate = frame.sample_rate or _OPUS_RATE
                count = frame.samples * _OPUS_RATE // rate
                energies.append((count, float((samples.astype("float64") ** 2).sum())))
                if sum(c for c, _ in energies) > MAX_MEDIA_DURATION_MS * 48:
                    return None
    except (av.error.FFmpegError, ValueError, IndexError, OSError, MemoryError) as exc:
        log.info("voice note not decoded: %s", exc)
        return None
    total = sum(count for count, _ in energies)
    if total == 0:
        return None
    return total * 1000 // _OPUS_RATE, _waveform(energies, total)


def _waveform(energies: list[tuple[int, float]], total: int) -> bytes | None:
    """Frames' energy as MAX_WAVEFORM_LEVELS levels of 0..255 (RMS per step)."""
    steps = [0.0] * MAX_WAVEFORM_LEVELS
    counts = [0] * MAX_WAVEFORM_LEVELS
    width = total / MAX_WAVEFORM_LEVELS
    at = 0
    for count, energy in energies:  # a frame's energy spread over the steps it spans
        end = at + count
        for step in range(int(at / width), min(MAX_WAVEFORM_LEVELS, math.ceil(end / width))):
            overlap = min(end, (step + 1) * width) - max(at, step * width)
            if overlap > 0 and count:
                steps[step] += energy * overlap / count
                counts[step] += round(overlap)
        at = end
    levels = [math.sqrt(s / c) if c else 0.0 for s, c in zip(steps, counts, strict=True)]
    peak = max(levels)
    return bytes(round(255 * level / peak) for level in levels) if peak else None
