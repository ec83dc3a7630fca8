"""Message actions in real browsers against real nodes: Alice replies to Bob's
message, reacts, edits and unsends from her page; Bob's page shows the quote,
the reaction, "edited" and "unsent a message" live. Then delete for me and
delete conversation, which stay on the device that did them; and a photo
forwarded to a third node from the "Forward to…" dialog; web addresses as links;
a chat pinned on top."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.daemon.test_run_process import Proc
from tests.web.conftest import Pair, all_css, by_css, click, screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]


def message_item(driver: Any, text: str, direction: str) -> Any:
    """The bubble (``li.message.in``/``.out``) that shows ``text``."""
    for item in all_css(driver, f"li.message.{direction}"):
        if text in item.find_element("css selector", ".bubble").text:
            return item
    return None


def act(driver: Any, text: str, direction: str, label: str) -> None:
    """Open the "⋯" menu of the bubble showing ``text`` and pick ``label``."""

    def picked(d: Any) -> bool:
        item = message_item(d, text, direction)
        if item is None:
            return False
        item.find_element("css selector", "button.more").click()
        for button in item.find_elements("css selector", ".menu button[role='menuitem']"):
            if button.get_attribute("aria-label") == label:
                button.click()
                return True
        return False

    wait_for(driver, picked, f"{label!r} on {text!r}")


def shows(driver: Any, text: str, direction: str, selector: str, wanted: str) -> bool:
    item = message_item(driver, text, direction)
    return item is not None and any(
        wanted in e.text for e in item.find_elements("css selector", selector)
    )


def test_reply_react_edit_unsend_live_on_the_other_page(pair: Pair) -> None:
    from selenium.webdriver.common.keys import Keys

    alice, bob, alice_page, bob_page = pair.alice, pair.bob, pair.alice_page, pair.bob_page
    alice_id = pair.alice_id
    bob.client.send("Alice", "Lunch at noon tomorrow?")
    pair.open_chats()
    wait_for(alice_page, lambda d: message_item(d, "Lunch at noon", "in"), "Bob's message")
    wait_for(bob_page, lambda d: message_item(d, "Lunch at noon", "out"), "Bob's own message")

    # A reply: the quote of Bob's message is above Alice's text on Bob's page.
    act(alice_page, "Lunch at noon", "in", "Reply")
    assert "Lunch at noon" in by_css(alice_page, "#replying").text
    by_css(alice_page, "#composer-text").send_keys("Yes, see you at noon", Keys.ENTER)
    wait_for(
        bob_page,
        lambda d: shows(d, "see you at noon", "in", "a.quote", "Lunch at noon tomorrow?"),
        "the quote on Bob's page",
    )
    # A reaction to Bob's message shows under it on his page.
    act(alice_page, "Lunch at noon", "in", "React 👍")
    wait_for(
        bob_page, lambda d: shows(d, "Lunch at noon", "out", ".reaction", "👍"), "the reaction"
    )
    wait_for(
        alice_page,
        lambda d: shows(d, "Lunch at noon", "in", ".reaction[aria-pressed='true']", "👍"),
        "Alice's own reaction, marked hers",
    )
    # An edit: the new text and "edited", live.
    act(alice_page, "see you at noon", "out", "Edit")
    prompt = alice_page.switch_to.alert
    prompt.send_keys("Yes, see you at one")
    prompt.accept()
    wait_for(bob_page, lambda d: shows(d, "see you at one", "in", ".edited", "edited"), "the edit")
    assert message_item(bob_page, "see you at noon", "in") is None
    # An unsend: the text is gone on Bob's page, "Alice unsent a message" instead
    # (and no "edited" left from an edit before it).
    by_css(alice_page, "#composer-text").send_keys("Oops, wrong chat", Keys.ENTER)
    wait_for(bob_page, lambda d: message_item(d, "wrong chat", "in"), "the message to unsend")
    [oops] = [
        m for m in alice.client.messages("Bob")["messages"] if m["text"] == "Oops, wrong chat"
    ]
    alice.client.edit(oops["id"], "Oops, wrong chat!")
    wait_for(bob_page, lambda d: shows(d, "wrong chat!", "in", ".edited", "edited"), "its edit")
    act(alice_page, "wrong chat", "out", "Unsend")
    alice_page.switch_to.alert.accept()
    wait_for(
        bob_page,
        lambda d: any("Alice unsent a message" in e.text for e in all_css(d, "li.message.in")),
        "'unsent a message' on Bob's page",
    )
    assert message_item(bob_page, "wrong chat", "in") is None
    wait_for(
        alice_page,
        lambda d: any("You unsent a message" in e.text for e in all_css(d, "li.message.out")),
        "'You unsent a message' on Alice's page",
    )
    for page in (alice_page, bob_page):
        unsent = [e for e in all_css(page, "li.message") if "unsent a message" in e.text]
        assert unsent and all("edited" not in e.text for e in unsent)
    wait_for(
        alice_page,
        lambda d: "Message unsent" in by_css(d, "a.conversation").text,
        "the preview in Alice's list following her unsend",
    )
    screenshot(alice_page, "actions-desktop")
    screenshot(bob_page, "actions-phone")
    bob_view = {m["text"]: m for m in bob.client.messages("Alice")["messages"]}
    assert bob_view["Yes, see you at one"]["edited"] is True
    reply = bob_view["Yes, see you at one"]["reply_to"]
    assert reply is not None and reply["text"] == "Lunch at noon tomorrow?"
    assert bob_view["Lunch at noon tomorrow?"]["reactions"] == {"👍": [alice_id]}

    # Delete for me: gone from Bob's page and node, still on Alice's.
    act(bob_page, "see you at one", "in", "Delete for me")
    bob_page.switch_to.alert.accept()
    wait_for(bob_page, lambda d: message_item(d, "see you at one", "in") is None, "deleted")
    texts = [m["text"] for m in bob.client.messages("Alice")["messages"]]
    assert "Yes, see you at one" not in texts
    assert message_item(alice_page, "see you at one", "out") is not None
    # Delete conversation: Alice's list is empty, Bob keeps his.
    by_css(alice_page, "#delete-conversation").click()
    alice_page.switch_to.alert.accept()
    wait_for(alice_page, lambda d: not all_css(d, "a.conversation"), "no conversation left")
    assert alice.client.conversations() == []
    assert bob.client.conversations()


def test_a_photo_is_forwarded_to_another_contact_from_the_dialog(
    pair: Pair, nodes: Callable[..., Proc], tmp_path: Path
) -> None:
    alice, bob, page = pair.alice, pair.bob, pair.alice_page
    carol = nodes("carol")
    alice.client.add_contact(carol.client.node()["invite"], "Carol")
    carol.client.add_contact(alice.client.node()["invite"], "Alice")
    photo = tmp_path / "cake.jpg"
    Image.new("RGB", (320, 240), (200, 120, 30)).save(photo)
    sent = bob.client.send_file("Alice", photo, "for the party")
    pair.open_chats()
    wait_for(page, lambda d: message_item(d, "for the party", "in") is not None, "the photo")
    # Its file must be here whole before it can go on (the bubble is redrawn,
    # with Forward in its menu, when the file is).
    wait_for(
        page,
        lambda d: alice.client.message(sent["id"])["media"][0]["state"] == "ready",
        "the photo fetched",
    )
    act(page, "for the party", "in", "Forward")
    dialog = wait_for(page, lambda d: by_css(d, "dialog.forward[open]"), "the dialog")
    names = [e.text for e in dialog.find_elements("css selector", ".forward-list .name")]
    assert names == ["Bob", "Carol"]
    dialog.find_element("css selector", "input[type='search']").send_keys("car")
    wait_for(
        page,
        lambda d: [e.text for e in all_css(d, "dialog.forward .forward-list .name")] == ["Carol"],
        "the list filtered",
    )
    screenshot(page, "forward-desktop")
    click(page, "dialog.forward button[aria-label='Send to Carol']", "Send to Carol")
    wait_for(
        page,
        lambda d: by_css(d, "dialog.forward button[aria-label='Send to Carol']").text == "Sent",
        "Sent",
    )
    click(page, "dialog.forward .row button", "Done")
    wait_for(page, lambda d: not all_css(d, "dialog.forward"), "the dialog closed")

    # Carol gets it from Alice, with its caption and its photo.
    def carol_has_it(_: Any) -> bool:
        got = [
            (m["text"], [item["state"] for item in m["media"] or ()])
            for m in carol.client.messages("Alice")["messages"]
        ]
        return got == [("for the party", ["ready"])]

    wait_for(page, carol_has_it, "the photo on Carol's node")
    # Web addresses in a text are links (http and https only, without the
    # sentence's full stop); anything else stays text.
    bob.client.send("Alice", "Menu: https://example.org/menu_(2026). Not javascript:alert(1)")

    def menu_message(d: Any) -> tuple[str, list[tuple[str, str, str]]] | None:
        # (Read in one go: the list is redrawn as events arrive.)
        item = message_item(d, "Menu:", "in")
        if item is None:
            return None
        links = item.find_elements("css selector", ".bubble a")
        return item.text, [(a.get_attribute("href"), a.text, a.get_attribute("rel")) for a in links]

    text, links = wait_for(page, menu_message, "the menu message")
    url = "https://example.org/menu_(2026)"
    assert links == [(url, url, "noopener noreferrer nofollow")]
    assert "(2026). Not javascript:alert(1)" in text

    # Nothing was sent to Bob, and Alice's list has the chat with Carol.
    assert len(bob.client.messages("Alice")["messages"]) == 2  # the photo, the menu
    wait_for(
        page,
        lambda d: any("Carol" in e.text for e in all_css(d, "a.conversation")),
        "the chat with Carol in Alice's list",
    )

    # Bob's chat is the newest; Carol's, pinned from its header, leads the list.
    def listed(d: Any) -> list[str]:
        return [e.text for e in all_css(d, "a.conversation .name")]

    wait_for(page, lambda d: listed(d) == ["Bob", "Carol"], "Bob's chat first")
    page.get(f"{pair.alice_base}#/c/{carol.client.node()['peer_id']}")
    click(page, "#pin-toggle", "Pin")
    wait_for(page, lambda d: listed(d) == ["Carol", "Bob"], "Carol's chat pinned on top")
    assert all_css(page, "a.conversation .flag.pinned")
    assert by_css(page, "#pin-toggle").get_attribute("aria-pressed") == "true"
    assert [c["pinned"] for c in alice.client.conversations()] == [True, False]
    # Unpinned elsewhere (the command line, a bot): the page follows, live.
    alice.client.update_conversation("Carol", pinned=False)
    wait_for(page, lambda d: listed(d) == ["Bob", "Carol"], "Carol's chat back in its place")
    wait_for(
        page,
        lambda d: by_css(d, "#pin-toggle").get_attribute("aria-pressed") == "false",
        "the header's Pin following",
    )
