"""A group chat in real browsers against real nodes: Alice makes a group with New
group, writes to it; Bob's page shows the group with its member count and her
message with her name on it, live; his typing shows on her page in the group;
Alice's bubble says who it was delivered to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.daemon.test_run_process import Proc
from tests.web.conftest import PHONE, Pair, all_css, by_css, click, screenshot, sign_in, wait_for
from tests.web.test_actions import message_item

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]


def group_item(driver: Any, name: str) -> Any:
    """The list entry of the group called ``name``, or None."""
    for item in all_css(driver, "a.conversation[data-group]"):
        if name in item.find_element("css selector", ".who").text:
            return item
    return None


def members_in_sight(driver: Any, name: str) -> bool:
    """Whether the list row of the group called ``name`` shows its whole member count
    (inside the row's title, not cut), with the name beside it."""
    item = group_item(driver, name)
    return item is not None and driver.execute_script(
        """const who = arguments[0].querySelector('.who');
        const count = who.querySelector('.members'), title = who.querySelector('.name');
        const box = who.getBoundingClientRect(), shown = count.getBoundingClientRect();
        return shown.width > 0 && shown.left >= box.left && shown.right <= box.right + 0.5
          && count.scrollWidth <= count.getBoundingClientRect().width + 0.5
          && title.getBoundingClientRect().width > 40;""",
        item,
    )


def test_create_send_and_the_other_member_sees_it_with_the_author(pair: Pair) -> None:
    from selenium.webdriver.common.keys import Keys

    bob_id = pair.bob_id
    alice_page, bob_page = pair.alice_page, pair.bob_page
    alice_base, bob_base = pair.alice_base, pair.bob_base

    # New group: a name and Bob picked; the app opens the group's conversation.
    click(alice_page, "#nav-new-group", "the New group tab")
    wait_for(alice_page, lambda d: by_css(d, "#group-name"), "the New group form")
    by_css(alice_page, "#group-name").send_keys("Bakers")
    click(alice_page, f"input[id='pick-{bob_id}']", "Bob's box")
    click(alice_page, "#create-group", "Create group")
    wait_for(alice_page, lambda d: by_css(d, ".conv-head h1").text == "Bakers", "the group open")
    assert by_css(alice_page, "#status-bar").get_attribute("hidden") is not None  # no error
    wait_for(alice_page, lambda d: group_item(d, "Bakers"), "the new group in Alice's list")
    wait_for(alice_page, lambda d: by_css(d, ".conv-head .sub").text == "2 members", "2 members")
    by_css(alice_page, "#composer-text").send_keys("Ovens on at five", Keys.ENTER)

    # Bob's page: the group in his list with its member count, Alice's message named hers.
    bob_page.get(f"{bob_base}#/")
    # (The list is redrawn as events come: each look is retried on a stale element.)
    wait_for(
        bob_page,
        lambda d: (item := group_item(d, "Bakers")) is not None and "2 members" in item.text,
        "the group with its member count in Bob's list",
    )
    wait_for(
        bob_page,
        lambda d: (item := group_item(d, "Bakers")) is not None and item.click() is None,
        "Bob opens the group",
    )
    wait_for(bob_page, lambda d: message_item(d, "Ovens on", "in"), "Alice's message")
    wait_for(
        bob_page,
        lambda d: (
            message_item(d, "Ovens on", "in").find_element("css selector", ".author").text
            == "Alice"
        ),
        "her name on it",
    )

    # Bob types in the group: "Bob is typing…" on Alice's page, in the group.
    def keeps_typing(d: Any) -> bool:
        by_css(bob_page, "#composer-text").send_keys("e")
        return bool(by_css(d, "#typing").text == "Bob is typing…")

    wait_for(alice_page, keeps_typing, "Bob typing in the group on Alice's page")
    by_css(bob_page, "#composer-text").clear()

    # Alice's bubble: delivered to Bob, then read by him (his page marked it read).
    wait_for(
        alice_page,
        lambda d: "read by 1" in message_item(d, "Ovens on", "out").text,
        "'delivered to 1 of 1, read by 1' on Alice's bubble",
    )
    wait_for(
        alice_page,
        lambda d: "delivered to 1 of 1" in message_item(d, "Ovens on", "out").text,
        "'delivered to 1 of 1'",
    )
    # The group info panel lists both members, Alice as admin.
    click(alice_page, "#group-info-button", "Group info")
    wait_for(
        alice_page,
        lambda d: (
            sorted(
                m.find_element("css selector", "span").text for m in all_css(d, "#group-members li")
            )
            == ["Bob", "You"]
        ),
        "both members listed",
    )
    screenshot(alice_page, "group-desktop")
    screenshot(bob_page, "group-phone")
    # Every tab is in sight on the phone: none hidden past the right edge.
    width = bob_page.execute_script("return window.innerWidth")
    assert all(tab.rect["x"] + tab.rect["width"] <= width for tab in all_css(bob_page, ".tab"))
    alice_page.get(f"{alice_base}#/")
    wait_for(alice_page, lambda d: group_item(d, "Bakers"), "the group in Alice's list")
    # Bob's PeerID (the Chat button of a contact) opens the chat with Bob, not
    # the group, whose conversation also names Bob as its peer.
    alice_page.get(f"{alice_base}#/c/{bob_id}")
    wait_for(alice_page, lambda d: by_css(d, ".conv-head h1").text == "Bob", "the chat with Bob")
    assert all_css(alice_page, "#group-info-button") == []


def test_an_invitation_joined_from_requests_and_a_rename_seen_live(
    nodes: Callable[..., Proc], browsers: Callable[..., Any], tmp_path: Path
) -> None:
    """Bob is not Alice's contact: her group is an invitation in his Requests; he joins,
    and her rename and photo from the group info panel reach his list live."""
    alice = nodes("alice")
    bob = nodes("bob")
    alice.client.add_contact(bob.client.node()["invite"], "Bob")
    made = alice.client.create_group("Bakers", ["Bob"])
    alice.client.send("Bakers", "Welcome to the bakery")
    bob_page = browsers()
    bob_base = sign_in(bob_page, bob.home)
    bob_page.get(f"{bob_base}#/requests")
    invite = wait_for(bob_page, lambda d: by_css(d, "li.group-invite"), "the invitation")
    assert "Bakers" in invite.text and "2 members" in invite.text
    assert group_item(bob_page, "Bakers") is None  # not among the chats before joining
    click(bob_page, "li.group-invite button.primary", "Join")
    wait_for(bob_page, lambda d: group_item(d, "Bakers"), "the group among Bob's chats")
    assert bob.client.group(made["id"])["state"] == "active"

    alice_page = browsers(PHONE)
    alice_base = sign_in(alice_page, alice.home)
    alice_page.get(f"{alice_base}#/c/{made['conversation']}")
    click(alice_page, "#group-info-button", "Group info")
    field = wait_for(alice_page, lambda d: by_css(d, "#group-rename"), "the rename field")
    field.clear()
    field.send_keys("Night bakers")
    click(alice_page, "#group-rename-button", "Rename")
    wait_for(bob_page, lambda d: group_item(d, "Night bakers"), "the new name on Bob's page")
    wait_for(
        alice_page, lambda d: by_css(d, "#group-info h2").text == "Night bakers", "Alice's panel"
    )
    wait_for(
        alice_page, lambda d: by_css(d, ".conv-head h1").text == "Night bakers", "Alice's header"
    )

    # A photo picked in the panel: shown there, and as the group's avatar in Bob's list.
    picture = tmp_path / "bakery.png"
    Image.new("RGB", (500, 300), (230, 160, 40)).save(picture)
    by_css(alice_page, "#group-photo-file").send_keys(str(picture))
    wait_for(alice_page, lambda d: by_css(d, "#group-photo"), "the photo in Alice's panel")

    def photo_shown(driver: Any) -> bool:
        item = group_item(driver, "Night bakers")
        if item is None:
            return False
        found = item.find_elements("css selector", "img.group-photo")
        return bool(found) and driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", found[0]
        )

    wait_for(bob_page, photo_shown, "the group's photo in Bob's list")
    # On the desktop the row shows the whole member count: a long name gives way (…).
    wait_for(bob_page, lambda d: members_in_sight(d, "Night bakers"), "the whole count")
    alice.client.update_group(made["id"], name="Night bakers of the old town square")
    wait_for(bob_page, lambda d: members_in_sight(d, "old town"), "the count past a long name")
