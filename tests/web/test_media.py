"""Media in real browsers against real nodes: a photo Alice picks in her page
shows inline on Bob's page, live; an HTML file Bob sends, opened from Alice's
page, runs nothing; a location shows its coordinates and a map link; a voice
note recorded in a page plays on the other with its waveform."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.web.conftest import UI_WAIT_S, Pair, all_css, by_css, click, screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]

#: What a hostile HTML file would do if it ran in the app's origin.
HOSTILE_HTML = (
    "<!doctype html><title>file</title><script>"
    "document.title = 'ran'; localStorage.setItem('ran', '1');"
    "fetch('/v1/settings', {method: 'PATCH', headers: {'X-P2PDM-CSRF': '1',"
    " 'Content-Type': 'application/json'}, body: JSON.stringify({read_receipts: false})});"
    "</script><p>hello</p>"
)


def loaded_photo(driver: Any, direction: str) -> bool:
    """A photo in a bubble of that direction whose full image is loaded."""
    return any(
        driver.execute_script(
            "const i = arguments[0]; return i.complete && i.naturalWidth > 0"
            " && !i.src.endsWith('/thumbnail');",
            img,
        )
        for img in all_css(driver, f"li.message.{direction} img.photo")
    )


def test_a_photo_shows_inline_on_the_other_page_and_a_peer_file_runs_nothing(
    pair: Pair, tmp_path: Path
) -> None:
    alice, bob, alice_page, bob_page = pair.alice, pair.bob, pair.alice_page, pair.bob_page
    alice_base = pair.alice_base
    photo = tmp_path / "view.jpg"
    Image.new("RGB", (640, 480), (30, 120, 200)).save(photo)
    pair.open_chats()
    wait_for(alice_page, lambda d: all_css(d, "#file-picker"), "the attach control")

    # Alice picks a photo: it shows on her page and, live, on Bob's.
    by_css(alice_page, "#file-picker").send_keys(str(photo))
    wait_for(alice_page, lambda d: loaded_photo(d, "out"), "the photo on Alice's page")
    wait_for(bob_page, lambda d: loaded_photo(d, "in"), "the photo on Bob's page, live")
    [files] = [m["media"] for m in bob.client.messages("Alice")["messages"] if m.get("media")]
    assert files is not None and files[0]["state"] == "ready"

    # Bob sends an HTML file and a place; Alice's page offers the file as a
    # download and shows the place.
    page = tmp_path / "page.html"
    page.write_text(HOSTILE_HTML)
    bob.client.send_file("Alice", page)
    bob.client.send_location("Alice", 52.52, 13.405, label="Berlin")
    wait_for(alice_page, lambda d: all_css(d, "li.message.in a.media.file[href]"), "the file")
    wait_for(alice_page, lambda d: all_css(d, "li.message.in .location"), "the place")
    assert "52.52000, 13.40500" in by_css(alice_page, "li.message.in .location").text
    wait_for(alice_page, lambda d: not all_css(d, "a.conversation .unread"), "read on opening")

    # Bob shares his live location: it shows on Alice's page with its end.
    # Alice shares hers too, and stops it from her page.
    # (An update goes only over an open connection: Bob's node may not have
    # seen Alice's yet, so he shares until it goes.)
    deadline = time.monotonic() + UI_WAIT_S
    while not bob.client.share_live_location("Alice", 52.52, 13.405, duration_s=900)["sent"]:
        assert time.monotonic() < deadline, "Bob's node never saw Alice connected"
        time.sleep(0.2)
    wait_for(alice_page, lambda d: all_css(d, ".live-location"), "Bob's live location")
    assert "live until" in by_css(alice_page, ".live-location").text
    alice.client.share_live_location("Bob", 48.85, 2.35, duration_s=3600)
    wait_for(alice_page, lambda d: all_css(d, ".live-location.mine .stop-live"), "her own share")
    click(alice_page, ".live-location.mine .stop-live", "Stop")
    wait_for(alice_page, lambda d: not all_css(d, ".live-location.mine"), "her share stopped")
    assert all_css(alice_page, ".live-location")  # Bob's still runs
    assert [s["mine"] for s in bob.client.live_locations("Alice")] == [True]
    for page in (alice_page, bob_page):
        page.execute_script(
            "const s = document.getElementById('scroller'); s.scrollTop = s.scrollHeight"
        )
    screenshot(alice_page, "media-desktop")
    screenshot(bob_page, "media-phone")
    href = by_css(alice_page, "li.message.in a.media.file").get_attribute("href")
    assert alice.client.settings()["read_receipts"] is True
    alice_page.get(href)  # opened as a page, not through the download link
    assert alice_page.title != "ran"
    alice_page.get(alice_base)
    wait_for(alice_page, lambda d: all_css(d, "#connection[data-state='live']"), "the app")
    assert alice_page.execute_script("return localStorage.getItem('ran')") is None
    assert alice_page.title != "ran"
    assert alice.client.settings()["read_receipts"] is True  # the script's change never ran


def voice_notes(driver: Any, direction: str) -> list[Any]:
    return all_css(driver, f"li.message.{direction} .media.voice")


def test_a_voice_note_recorded_in_one_page_plays_in_the_other_through_a_redraw(
    pair: Pair,
) -> None:
    alice, bob, alice_page, bob_page = pair.alice, pair.bob, pair.alice_page, pair.bob_page
    pair.open_chats()

    # Alice records two seconds or so from the (fake) microphone and stops.
    record = "#record-voice"
    wait_for(alice_page, lambda d: all_css(d, record), "the record button")
    assert by_css(alice_page, record).get_attribute("aria-label") == "Record a voice note"
    click(alice_page, record, "record")
    wait_for(alice_page, lambda d: by_css(d, record).get_attribute("aria-pressed") == "true", "on")
    # The button that stops it counts the time.
    wait_for(alice_page, lambda d: by_css(d, record).text == "⏹ 0:02", "two seconds recorded")
    assert by_css(alice_page, record).get_attribute("aria-label").startswith("Stop recording (0:0")
    click(alice_page, record, "stop")
    wait_for(alice_page, lambda d: by_css(d, record).text == "🎤", "recording stopped")
    wait_for(alice_page, lambda d: voice_notes(d, "out"), "the voice note on Alice's page")

    # Bob's page shows it live, with the length and the waveform the node
    # measured, and plays it.
    play = "li.message.in .media.voice button.play:not([disabled])"
    wait_for(bob_page, lambda d: all_css(d, play), "the voice note on Bob's page, live")
    [files] = [m["media"] for m in bob.client.messages("Alice")["messages"] if m.get("media")]
    assert files is not None
    item = files[0]
    assert item["mime"] in ("audio/webm", "audio/ogg") and item["state"] == "ready"
    assert 1500 <= item["duration_ms"] <= 6000, item
    assert item["waveform"] and max(item["waveform"]) > 0  # the beep is heard
    seconds = round(item["duration_ms"] / 1000)
    label = f"Play voice note, 0:{seconds:02d}"
    wait_for(bob_page, lambda d: by_css(d, play).get_attribute("aria-label") == label, label)
    # (Each read in one go, again if a redraw took the element away.)
    heights = wait_for(
        bob_page,
        lambda d: [
            bar.value_of_css_property("height")
            for bar in all_css(d, "li.message.in .waveform .bar")
        ],
        "the waveform's bars",
    )
    assert len(heights) == 32
    assert len(set(heights)) > 1  # drawn from the levels
    click(bob_page, play, "play")
    note = "li.message.in .media.voice[data-playing='true']"
    wait_for(bob_page, lambda d: all_css(d, note), "playing")

    # A message arriving redraws the conversation: the voice note plays on.
    alice.client.send("Bob", "while you listen")
    wait_for(
        bob_page,
        lambda d: any("while you listen" in e.text for e in all_css(d, "li.message.in")),
        "the next message, live",
    )
    assert all_css(bob_page, note), "the redraw stopped the voice note"
    wait_for(
        bob_page,
        lambda d: all_css(d, "li.message.in .waveform .bar.played"),
        "the played part of the waveform",
    )
    screenshot(bob_page, "voice-phone")
    # It plays to its end, and the button offers to play it again.
    wait_for(bob_page, lambda d: not all_css(d, note), "the end of the voice note")
    wait_for(
        bob_page,
        lambda d: by_css(d, play).get_attribute("aria-label").startswith("Play voice note"),
        "Play again",
    )

    # A voice note that waits to be fetched says so and offers to fetch it.
    bob.client.update_settings({"media_auto_download_bytes": 0})
    click(alice_page, record, "record again")
    time.sleep(1.5)
    click(alice_page, record, "stop again")
    waiting = "li.message.in .media.voice[data-state='pending']"
    wait_for(bob_page, lambda d: all_css(d, waiting), "a voice note waiting to be fetched")
    assert all_css(bob_page, f"{waiting} button.play[disabled]")
    wait_for(
        bob_page,
        lambda d: "not downloaded" in by_css(d, f"{waiting} .file-state").text,
        "not downloaded",
    )
    click(bob_page, f"{waiting} .file-state button", "Download")
    wait_for(bob_page, lambda d: len(all_css(d, play)) == 2, "the second voice note, fetched")
