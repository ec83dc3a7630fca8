"""The first run: a newcomer tries p2pdm with the local demo bot, in a real browser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from p2pdm.daemon.demo import DEMO_DIR, DEMO_NAME
from tests.daemon.test_run_process import Proc
from tests.web.conftest import PHONE, all_css, click, screenshot, sign_in, wait_for
from tests.web.test_browser import bubble_status

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]


def test_a_newcomer_chats_with_the_demo_bot_and_removes_it(
    nodes: Callable[..., Proc], browsers: Callable[..., Any]
) -> None:
    from selenium.webdriver.common.keys import Keys

    alice = nodes("alice")
    page = browsers()
    base = sign_in(page, alice.home)
    wait_for(page, lambda d: all_css(d, "#demo-start"), "the demo offer")
    screenshot(page, "welcome-desktop")
    click(page, "#demo-start", "the demo button")
    wait_for(page, lambda d: all_css(d, "#composer-text"), "the demo conversation")
    assert DEMO_NAME in page.find_element("css selector", ".conv-head h1").text
    page.find_element("css selector", "#composer-text").send_keys("hi demo", Keys.ENTER)
    # Every state shows on the way: delivered first (the bot waits before reading).
    wait_for(page, lambda d: bubble_status(d, "hi demo") == "delivered", "'delivered'")
    wait_for(page, lambda d: bubble_status(d, "hi demo") == "read", "'read'")
    wait_for(
        page,
        lambda d: any("you said: hi demo" in e.text for e in all_css(d, "li.message.in")),
        "the bot's answer",
    )
    # Seen while open: it is read at once, the inbox has nothing unread.
    wait_for(page, lambda d: not all_css(d, "a.conversation .unread"), "no unread count")
    screenshot(page, "demo-desktop")
    dark = {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", dark)  # the system's choice
    assert page.execute_script("return matchMedia('(prefers-color-scheme: dark)').matches")
    screenshot(page, "demo-dark-desktop")
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert (alice.home / DEMO_DIR).is_dir()

    # Removed from the welcome page: the bot stops, its contact and home go.
    page.get(base + "#/")
    # Someone with a conversation is sent to it rather than welcomed again.
    wait_for(
        page,
        lambda d: any(e.text == "Pick a conversation" for e in all_css(d, "section.welcome h1")),
        "the returning user's page",
    )
    click(page, "#demo-remove", "the remove button")
    page.switch_to.alert.accept()
    wait_for(page, lambda d: all_css(d, "#demo-start") or None, "the offer again")
    assert not (alice.home / DEMO_DIR).exists()
    assert alice.client.contacts() == []


def test_no_demo_turns_the_offer_off(
    nodes: Callable[..., Proc], browsers: Callable[..., Any]
) -> None:
    carol = nodes("carol", "--no-demo")
    page = browsers(PHONE)
    sign_in(page, carol.home)
    wait_for(page, lambda d: all_css(d, "section.welcome .card"), "the welcome page")
    assert not all_css(page, "#demo-start")
    screenshot(page, "welcome-phone")
