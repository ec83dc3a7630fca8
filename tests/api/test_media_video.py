"""Videos and WebM voice notes through PyAV (the ``video`` extra, which the
dev install and CI include): a first-frame thumbnail, size and duration; a
decoded duration and waveform for a Chromium-style WebM Opus voice note;
and plain files without PyAV."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

import p2pdm.node.video as video_module
from p2pdm.node.audio import analyse
from tests.conftest import make_node, serving

av = pytest.importorskip("av")  # installed with the `video` extra (CI has it)
np = pytest.importorskip("numpy")


def tiny_mp4(frames: int = 10, rate: int = 10) -> bytes:
    """A 64x48 MPEG-4 video of ``frames`` frames, made here with PyAV."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.zeros((48, 64, 3), dtype=np.uint8)
            image[:, :, 0] = 200
            image[:, : i * 6, 1] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def webm_voice_note(seconds: int = 1) -> bytes:
    """Opus in WebM, as Chromium's MediaRecorder writes it (no Duration in the
    header): a tone that grows from a whisper to loud."""
    out = io.BytesIO()
    rate = 48_000
    total = rate * seconds
    at = np.arange(total) / rate
    wave = (np.linspace(0.01, 0.9, total) * np.sin(2 * np.pi * 440 * at)).astype(np.float32)
    with av.open(out, mode="w", format="webm") as container:
        stream = container.add_stream("libopus", rate=rate)
        stream.layout = "mono"
        for start in range(0, total, 960):
            frame = av.AudioFrame.from_ndarray(
                wave[start : start + 960].reshape(1, -1), format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


async def upload(api: Any, data: bytes, mime: str, name: str) -> dict[str, Any]:
    response = await api.call(
        "POST", "/v1/media", params={"name": name}, content=data, headers={"Content-Type": mime}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_video_gets_its_size_duration_and_a_first_frame_thumbnail() -> None:
    alice, bob = make_node("alice"), make_node("bob")
    alice.add_contact_from_invite(bob.invite(), "bob")
    async with serving(alice) as api:
        uploaded = await upload(api, tiny_mp4(), "video/mp4", "clip.mp4")
        assert (uploaded["width"], uploaded["height"], uploaded["duration_ms"]) == (64, 48, 1000)
        thumb = await api.call("GET", f"/v1/media/{uploaded['id']}/thumbnail")
        assert thumb.status_code == 200
        assert Image.open(io.BytesIO(thumb.content)).size == (64, 48)
        sent = await api.call("POST", "/v1/messages", json={"to": "bob", "media": [uploaded["id"]]})
        [item] = sent.json()["media"]
        assert (item["width"], item["duration_ms"], item["thumbnail"]) == (64, 1000, True)


async def test_without_pyav_a_video_goes_as_a_plain_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video_module, "_av", lambda: None)
    async with serving(make_node("alice")) as api:
        uploaded = await upload(api, tiny_mp4(), "video/mp4", "clip.mp4")
        assert "width" not in uploaded and "duration_ms" not in uploaded
        thumb = await api.call("GET", f"/v1/media/{uploaded['id']}/thumbnail")
        assert thumb.status_code == 404
        # A WebM voice note falls back to the Duration its container states
        # (FFmpeg's muxer writes one), with no waveform.
        note = analyse(webm_voice_note(), "audio/webm")
        assert note.waveform is None and note.duration_ms is not None
        assert abs(note.duration_ms - 1000) <= 20


async def test_a_webm_voice_note_is_decoded_for_its_duration_and_waveform() -> None:
    data = webm_voice_note()
    note = analyse(data, "audio/webm")
    assert note.duration_ms == 1000
    assert note.waveform is not None and len(note.waveform) == 64
    assert note.waveform[0] < note.waveform[32] < note.waveform[-1]  # it grows louder
    async with serving(make_node("alice")) as api:
        uploaded = await upload(api, data, "audio/webm", "note.webm")
        assert uploaded["duration_ms"] == 1000


def test_a_video_that_is_not_one_is_a_plain_file() -> None:
    assert video_module.probe_video(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500) is None
    assert video_module.webm_voice(b"\x1aE\xdf\xa3 not really") is None
