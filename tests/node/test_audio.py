"""Voice notes: duration and waveform from the Ogg pages; nothing from junk."""

from __future__ import annotations

import os
import struct

from hypothesis import given
from hypothesis import strategies as st

from p2pdm.node.audio import VoiceNote, analyse
from p2pdm.node.media import MediaLibrary
from p2pdm.store.memory import MemoryStore
from tests.media_files import opus_voice_note


def test_an_ogg_opus_note_has_a_duration_and_a_waveform() -> None:
    note = analyse(opus_voice_note(8, loud_from=4), "audio/ogg")
    assert note.duration_ms == 8000
    assert note.waveform is not None and len(note.waveform) == 64
    assert max(note.waveform) == 255
    quiet, loud = note.waveform[:28], note.waveform[36:]
    assert max(quiet) < min(loud)


def test_a_webm_duration_element_is_read() -> None:
    # Segment Info's Duration as an 8-byte float, TimecodeScale left at 1 ms.
    data = b"\x1a\x45\xdf\xa3" + b"\x00" * 10 + b"\x44\x89\x88" + struct.pack(">d", 4321.0)
    assert analyse(data, "audio/webm").duration_ms == 4321


@given(st.binary(max_size=2000), st.sampled_from(["audio/ogg", "audio/webm", "audio/opus"]))
def test_junk_gives_nothing_and_never_raises(data: bytes, mime: str) -> None:
    note = analyse(data, mime)
    assert isinstance(note, VoiceNote)
    assert note.duration_ms is None or 0 <= note.duration_ms <= 24 * 3600 * 1000


def test_an_uploaded_voice_note_carries_its_duration_and_waveform() -> None:
    media = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    record = media.add_file(opus_voice_note(3, loud_from=1), "audio/ogg", "note.ogg")
    assert record.duration_ms == 3000
    assert record.waveform is not None and len(record.waveform) == 64
    [item] = media.body_for([record.blob_id], None).items
    assert (item.duration_ms, item.waveform) == (3000, record.waveform)
