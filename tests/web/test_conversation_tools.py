"""Conversation tools in real browsers against real nodes: typing shows on the
other page, a disappearing timer set in one page shows its notice on both,
mute and archive move the conversation, search finds a message by its words;
a draft stays with its conversation; any emoji as a reaction; a stranger's
message waits in Requests until accepted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.daemon.test_run_process import Proc
from tests.web.conftest import Pair, all_css, by_css, click, screenshot, sign_in, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]


def test_typing_timer_mute_archive_and_search(pair: Pair) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    alice, bob, alice_page, bob_page = pair.alice, pair.bob, pair.alice_page, pair.bob_page
    bob.client.send("Alice", "Lunch at the station tomorrow?")
    pair.open_chats()
    wait_for(alice_page, lambda d: all_css(d, "li.message.in"), "Bob's message")
    wait_for(bob_page, lambda d: all_css(d, "li.message.out"), "Bob's own message")

    # Bob types: "Bob is typing…" on Alice's page. He keeps typing: his node sends
    # typing only once it has seen the connection his message opened (a poll).
    def keeps_typing(d: Any) -> bool:
        by_css(bob_page, "#composer-text").send_keys("e")
        return "typing" in by_css(d, "#typing").text

    wait_for(alice_page, keeps_typing, "typing on Alice's page")

    # Alice sets a one-hour timer: the notice on both pages.
    Select(by_css(alice_page, "#timer-select")).select_by_value("3600")
    for page in (alice_page, bob_page):
        wait_for(
            page,
            lambda d: any("disappearing" in e.text for e in all_css(d, "li.notice-line")),
            "the timer notice",
        )
        wait_for(page, lambda d: by_css(d, "#timer-notice").is_displayed(), "the timer banner")
    # The inbox preview says who set it once ("You set…", not "You: You set…"),
    # once Bob's "typing…" there has lapsed.
    wait_for(
        alice_page,
        lambda d: by_css(d, "a.conversation .preview").text.startswith("You set disappearing"),
        "the notice as the inbox preview",
    )
    wait_for(
        bob_page,
        lambda d: by_css(d, "#timer-select").get_attribute("value") == "3600",
        "Bob's timer control following Alice's setting",
    )
    by_css(alice_page, "#composer-text").send_keys("Yes, at noon", Keys.ENTER)
    wait_for(bob_page, lambda d: any("at noon" in e.text for e in all_css(d, "li.message.in")), "")
    screenshot(bob_page, "timer-phone")
    # On the phone the header's controls fold behind "⋯".
    assert not by_css(bob_page, "#timer-select").is_displayed()
    click(bob_page, ".conv-more", "⋯")
    wait_for(bob_page, lambda d: by_css(d, "#timer-select").is_displayed(), "the controls shown")
    assert by_css(bob_page, ".conv-more").get_attribute("aria-expanded") == "true"
    assert by_css(bob_page, "#delete-conversation").is_displayed()
    assert not by_css(alice_page, ".conv-more").is_displayed()  # a desktop shows them all

    # Search by words, matches marked.
    box = by_css(alice_page, "#search-box")
    box.send_keys("station", Keys.ENTER)
    wait_for(
        alice_page,
        lambda d: by_css(d, "a.result mark").text.lower() == "station",  # (redrawn: look again)
        "a search hit, the match marked",
    )
    screenshot(alice_page, "search-desktop")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)  # an emptied box shows the conversations again
    wait_for(alice_page, lambda d: all_css(d, "a.conversation:not(.result)"), "the list")

    # Mute, then archive: the conversation leaves the list until archived ones show.
    click(alice_page, "#mute-toggle", "Mute")
    wait_for(alice_page, lambda d: all_css(d, "a.conversation .flag.muted"), "muted")
    assert alice.client.conversations()[0]["muted"] is True
    click(alice_page, "#archive-toggle", "Archive")
    wait_for(alice_page, lambda d: not all_css(d, "a.conversation"), "archived away")
    click(alice_page, ".archived-toggle input", "Show archived")
    wait_for(alice_page, lambda d: all_css(d, "a.conversation .flag.archived"), "archived shown")


def test_a_strangers_message_waits_in_requests_until_accepted(
    nodes: Callable[..., Proc], browsers: Callable[..., Any]
) -> None:
    alice = nodes("alice")
    carol = nodes("carol")
    # A long name it gives itself: the fingerprint after it stays in sight.
    name = "carol who runs the bakery by the station, open every day but Sunday"
    carol.client.update_settings({"name": name})
    carol.client.add_contact(alice.client.node()["invite"], "Alice")
    carol.client.send("Alice", "Hi, we met at the station")
    page = browsers()
    base = sign_in(page, alice.home)
    page.get(base + "#/requests")
    wait_for(page, lambda d: all_css(d, "li.request"), "the request")
    request = by_css(page, "li.request")
    assert "we met at the station" in request.text
    assert "fingerprint" in request.text
    assert request.text.startswith(f"{name} · ")  # the name it gives, then its fingerprint
    assert not all_css(page, "a.conversation")  # not among the chats
    screenshot(page, "requests-desktop")
    size = page.get_window_size()
    page.set_window_size(390, 844)  # a phone's width: the name wraps, nothing is cut off
    who = by_css(page, "li.request .who")
    assert page.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", who)
    page.set_window_size(size["width"], size["height"])
    # Blocked from here, a stranger is listed below with Unblock (not a contact:
    # the Contacts page does not show it).
    click(page, "li.request button.danger", "Block")
    wait_for(page, lambda d: all_css(d, ".blocked li.request"), "her among the blocked")
    assert alice.client.requests() == [] and len(alice.client.blocked()) == 1
    assert carol.client.node()["peer_id"][-8:] in by_css(page, ".blocked li.request").text
    click(page, ".blocked li.request button", "Unblock")
    wait_for(page, lambda d: not all_css(d, ".blocked"), "no one blocked")
    assert alice.client.blocked() == []
    carol.client.send("Alice", "Hi again")
    wait_for(page, lambda d: alice.client.requests(), "her new request")
    page.refresh()
    wait_for(page, lambda d: "Hi again" in by_css(d, "li.request").text, "it shown")
    click(page, "li.request button.primary", "Accept")
    wait_for(page, lambda d: all_css(d, "a.conversation"), "a chat now")
    assert [c["peer_id"] for c in alice.client.contacts()] == [carol.client.node()["peer_id"]]


def test_a_draft_stays_with_its_chat_and_any_emoji_reacts(pair: Pair) -> None:
    from selenium.webdriver.common.keys import Keys

    alice, bob, page = pair.alice, pair.bob, pair.alice_page
    bob.client.send("Alice", "How was the concert?")
    pair.open_chats()
    wait_for(page, lambda d: any("concert" in e.text for e in all_css(d, "li.message.in")), "")

    # Alice starts an answer, leaves for the Node page: the list says "Draft:".
    by_css(page, "#composer-text").send_keys("It was loud but")
    page.execute_script("location.hash = '#/node'")
    wait_for(
        page,
        lambda d: by_css(d, "a.conversation .preview").text == "Draft: It was loud but",
        "the draft in the list",
    )
    click(page, "a.conversation", "back to the chat")
    wait_for(
        page,
        lambda d: by_css(d, "#composer-text").get_attribute("value") == "It was loud but",
        "the draft in the composer again",
    )
    by_css(page, "#composer-text").send_keys(" great", Keys.ENTER)
    wait_for(
        page,
        lambda d: any("loud but great" in e.text for e in all_css(d, "li.message.out")),
        "the message sent",
    )
    assert by_css(page, "#composer-text").get_attribute("value") == ""
    page.execute_script("location.hash = '#/node'")
    wait_for(
        page,
        lambda d: by_css(d, "a.conversation .preview").text == "You: It was loud but great",
        "no draft left once sent",
    )
    # Nothing of a draft is kept in the browser's storage.
    assert page.execute_script("return window.localStorage.length") == 0

    # A reaction with an emoji of her own, through the menu's plus.
    click(page, "a.conversation", "the chat")
    wait_for(page, lambda d: all_css(d, "li.message.in button.more"), "the message menu")
    click(page, "li.message.in button.more", "⋯")
    click(page, "li.message.in button[aria-label='React with another emoji']", "plus")
    prompt = page.switch_to.alert
    prompt.send_keys("🎸")
    prompt.accept()
    wait_for(
        page,
        lambda d: any("🎸" in e.text for e in all_css(d, "li.message.in .reaction")),
        "the guitar under Bob's message",
    )
    wait_for(
        page,
        lambda d: "🎸" in bob.client.messages("Alice")["messages"][-1]["reactions"],
        "the reaction at Bob's node",
    )
    assert alice.client.messages("Bob")["messages"][-1]["reactions"] == {"🎸": [pair.alice_id]}
