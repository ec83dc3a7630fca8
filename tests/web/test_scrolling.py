"""Where a long conversation stays scrolled in a real browser: at the newest
message when what is sent there grows after it is drawn (a photo loading),
also when the conversation is opened again; not when the reader scrolled up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.web.conftest import Pair, all_css, by_css, wait_for
from tests.web.test_media import loaded_photo

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]

#: Enough messages that the conversation scrolls on a desktop window.
HISTORY = 30


def at_bottom(driver: Any) -> bool:
    return bool(
        driver.execute_script(
            "const s = document.getElementById('scroller');"
            " return s.scrollHeight - s.scrollTop - s.clientHeight < 2;"
        )
    )


def test_a_photo_sent_from_the_bottom_of_a_long_chat_is_shown_whole(
    pair: Pair, tmp_path: Path
) -> None:
    alice_page = pair.alice_page
    for n in range(HISTORY):
        pair.bob.client.send("Alice", f"line {n}")
    pair.open_chats()
    wait_for(
        alice_page,
        lambda d: any("line 29" in e.text for e in all_css(d, "li.message.in")),
        "the history",
    )
    wait_for(alice_page, at_bottom, "the chat opened at its newest message")
    # A tall photo: its bubble grows once the picture loads, after it is drawn.
    photo = tmp_path / "tall.jpg"
    Image.new("RGB", (600, 1200), (200, 80, 40)).save(photo)
    by_css(alice_page, "#file-picker").send_keys(str(photo))
    wait_for(alice_page, lambda d: loaded_photo(d, "out"), "the photo on Alice's page")
    wait_for(alice_page, at_bottom, "the photo shown whole, at the bottom")
    # Opened again: its photos load after the page put it at the bottom.
    for _ in range(3):
        alice_page.get(f"{pair.alice_base}#/")
        wait_for(alice_page, lambda d: not all_css(d, "#scroller"), "the inbox")
        alice_page.get(f"{pair.alice_base}#/c/{pair.bob_id}")
        wait_for(alice_page, lambda d: loaded_photo(d, "out"), "the photo again")
        wait_for(alice_page, at_bottom, "the chat opened again at its newest message")
    # A reader who scrolled up stays where they are when a message comes.
    alice_page.execute_script("document.getElementById('scroller').scrollTop = 100")
    pair.bob.client.send("Alice", "one more")
    wait_for(
        alice_page,
        lambda d: any("one more" in e.text for e in all_css(d, "li.message.in")),
        "the new message",
    )
    assert alice_page.execute_script("return document.getElementById('scroller').scrollTop") == 100
