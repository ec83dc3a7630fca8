"""New messages while the person looks elsewhere, in a real browser against
real nodes: the unread count in the tab's title, and desktop notifications
offered on the welcome pane until chosen ("Not now" remembered), and turned
on and off on the Node page (through the page's ``Notification``, recorded
by a stand-in installed before the app loads), their text hidden on request,
none for the conversation being read or a muted one, a click opening the
conversation."""

from __future__ import annotations

import time
from typing import Any, Final

import pytest

from tests.web.conftest import Pair, all_css, by_css, click, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]

#: How long a message of a conversation left must stay unread (the page marks
#: an open conversation's messages read 0.3 s after they arrive).
STAYS_UNREAD_S: Final = 2.0

#: Stands in for the browser's notifications: asks nothing, shows nothing,
#: records each one in ``window.shown``.
FAKE_NOTIFICATION = """
window.shown = [];
class Recorded {
  constructor(title, options) {
    Object.assign(this, { title, body: options.body, tag: options.tag, closed: false });
    window.shown.push(this);
  }
  close() { this.closed = true; }
}
Recorded.permission = "default";
Recorded.requestPermission = async () => { Recorded.permission = "granted"; return "granted"; };
window.Notification = Recorded;
"""


def shown(driver: Any) -> list[dict[str, Any]]:
    return list(
        driver.execute_script(
            "return window.shown.map((n) => ({title: n.title, body: n.body, tag: n.tag}))"
        )
    )


def test_new_messages_show_in_the_title_and_as_notifications(pair: Pair) -> None:
    alice, bob, page = pair.alice, pair.bob, pair.alice_page
    page.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FAKE_NOTIFICATION})
    # A headless window has no focus of its own: give it the focus a window
    # the person looks at has.
    page.execute_cdp_cmd("Emulation.setFocusEmulationEnabled", {"enabled": True})
    page.get(f"{pair.alice_base}#/")
    page.refresh()  # (only the hash changed: load the page again, with the stand-in)

    # The welcome pane offers notifications until this browser chooses.
    wait_for(page, lambda d: all_css(d, "#notification-offer"), "the offer")
    click(page, "#notification-offer-later", "Not now")
    wait_for(page, lambda d: not all_css(d, "#notification-offer"), "the offer gone")
    assert page.execute_script("return localStorage.getItem('p2pdm.notifications')") == "off"
    page.refresh()
    wait_for(page, lambda d: all_css(d, "section.welcome h1"), "the welcome pane")
    assert not all_css(page, "#notification-offer")  # not offered again
    page.execute_script("localStorage.clear()")
    page.refresh()
    click(page, "#notification-offer-on", "Turn on notifications")
    wait_for(page, lambda d: not all_css(d, "#notification-offer"), "the offer taken")
    assert page.execute_script("return Notification.permission") == "granted"

    # The Node page says it is on, with the choice of the text.
    page.execute_script("location.hash = '#/node'")
    wait_for(page, lambda d: all_css(d, "#notification-text"), "on, with the text choice")
    assert by_css(page, "#notifications-on").is_selected()
    assert page.title == "p2pdm"

    # Bob writes while Alice is on the Node page: a notification and the title.
    bob.client.send("Alice", "Are you there?")
    wait_for(page, lambda d: len(shown(d)) == 1, "a notification")
    [first] = shown(page)
    conversation = alice.client.conversations()[0]["id"]
    assert first == {"title": "Bob", "body": "Are you there?", "tag": conversation}
    wait_for(page, lambda d: d.title == "(1) p2pdm", "the unread count in the title")

    # Without the text: only who wrote.
    click(page, "#notification-text", "hide the text")
    bob.client.send("Alice", "It's about lunch")
    wait_for(page, lambda d: len(shown(d)) == 2, "a second notification")
    assert shown(page)[1] == {"title": "Bob", "body": "New message", "tag": conversation}
    wait_for(page, lambda d: d.title == "(2) p2pdm", "two unread")

    # A click on it opens the conversation, which reads it.
    page.execute_script("window.shown[1].onclick()")
    wait_for(page, lambda d: all_css(d, "#composer-text"), "the conversation")
    assert page.execute_script("return window.shown[1].closed") is True
    wait_for(page, lambda d: d.title == "p2pdm", "nothing unread")

    # Nothing for the conversation being read.
    bob.client.send("Alice", "Great")
    wait_for(page, lambda d: any("Great" in e.text for e in all_css(d, "li.message.in")), "")
    wait_for(page, lambda d: alice.client.conversations()[0]["unread"] == 0, "read as it came")
    assert len(shown(page)) == 2

    # Nothing for a muted conversation, and its messages leave the title alone.
    alice.client.update_conversation("Bob", muted=True)
    page.execute_script("location.hash = '#/node'")
    wait_for(page, lambda d: all_css(d, "#notifications-on"), "the Node page")
    bob.client.send("Alice", "Muted?")
    wait_for(
        page,
        lambda d: alice.client.conversations()[0]["unread"] == 1,
        "the muted message unread",
    )
    # The conversation was left: its new message stays unread (an open one
    # marks it read within 0.3 s), and Bob gets no read receipt.
    deadline = time.monotonic() + STAYS_UNREAD_S
    while time.monotonic() < deadline:
        assert alice.client.conversations()[0]["unread"] == 1, "marked read on another page"
        time.sleep(0.1)
    page.execute_script("location.hash = '#/'")
    wait_for(page, lambda d: any("Muted?" in e.text for e in all_css(d, "a.conversation")), "")
    assert len(shown(page)) == 2
    assert page.title == "p2pdm"

    # Turned off in this browser: no more, even unmuted.
    alice.client.update_conversation("Bob", muted=False)
    page.execute_script("location.hash = '#/node'")
    click(page, "#notifications-on", "turn notifications off")
    wait_for(page, lambda d: not all_css(d, "#notification-text"), "off")
    bob.client.send("Alice", "Still there?")
    wait_for(page, lambda d: d.title == "(2) p2pdm", "unread in the title, unmuted")
    assert len(shown(page)) == 2
    assert alice.client.conversations()[0]["unread"] == 2
    assert [m["status"] for m in bob.client.messages("Alice")["messages"][:2]] == [
        "delivered",
        "delivered",
    ]  # no read receipt for what Alice has not seen
