"""The web app in a real browser against real nodes: sign-in, adding a contact by
invite, a message live on the other side with its delivery states, resuming
after a node restart, refused links and cross-site requests; screenshots."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.daemon.test_run_process import Proc
from tests.web.conftest import (
    PHONE,
    all_css,
    by_css,
    click,
    login_link,
    make_contacts,
    screenshot,
    sign_in,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]


def my_invite(driver: Any, base: str) -> str:
    driver.get(base + "#/new")
    invite = wait_for(
        driver,
        lambda d: (
            (d.find_element("id", "my-invite").get_attribute("value") or None)
            if all_css(d, "#my-invite")
            else None
        ),
        "the invite",
    )
    assert all_css(driver, "img.qr")
    return str(invite)


def add_contact(driver: Any, base: str, invite: str, name: str) -> None:
    driver.get(base + "#/new")
    wait_for(driver, lambda d: all_css(d, "#add-invite"), "the add form")
    by_css(driver, "#add-invite").send_keys(invite)
    by_css(driver, "#add-name").send_keys(name)
    by_css(driver, "#add-button").click()
    wait_for(driver, lambda d: all_css(d, "#composer-text"), "the new conversation")


def bubble_status(driver: Any, text: str) -> str | None:
    for item in all_css(driver, "li.message.out"):
        if text in item.text:
            return str(item.get_attribute("data-status"))
    return None


def test_alice_and_bob_chat_in_their_browsers(
    nodes: Callable[..., Proc], browsers: Callable[..., Any]
) -> None:
    from selenium.webdriver.common.keys import Keys

    alice = nodes("alice")
    bob_port = free_port()
    bob = nodes("bob", api_port=bob_port)
    alice_page = browsers()
    bob_page = browsers(PHONE)
    alice_base = sign_in(alice_page, alice.home)
    bob_base = sign_in(bob_page, bob.home)

    # They exchange invites (as text, from each other's "New chat" page).
    alice_invite = my_invite(alice_page, alice_base)
    screenshot(alice_page, "new-chat-desktop")
    bob_invite = my_invite(bob_page, bob_base)
    screenshot(bob_page, "new-chat-phone")
    add_contact(bob_page, bob_base, alice_invite, "Alice")
    bob_page.get(bob_base + "#/")
    add_contact(alice_page, alice_base, bob_invite, "Bob")

    composer = by_css(alice_page, "#composer-text")
    composer.send_keys("Hello Bob, from a browser!", Keys.ENTER)
    # Bob's inbox shows it live, without a reload.
    wait_for(
        bob_page,
        lambda d: any("Hello Bob" in e.text for e in all_css(d, "a.conversation")),
        "the message in Bob's inbox",
    )
    screenshot(bob_page, "inbox-phone")
    wait_for(
        alice_page,
        lambda d: bubble_status(d, "Hello Bob") == "delivered",
        "Alice to see 'delivered'",
    )
    wait_for(
        alice_page,
        lambda d: "Delivered" in by_css(d, "li.message.out .status").text,
        "the word 'Delivered'",
    )
    # Bob opens the conversation: it is read, and Alice sees it.
    click(bob_page, "a.conversation", "Bob's conversation in the list")
    wait_for(
        bob_page,
        lambda d: any("Hello Bob" in e.text for e in all_css(d, "li.message.in")),
        "the message in Bob's conversation",
    )
    wait_for(alice_page, lambda d: bubble_status(d, "Hello Bob") == "read", "Alice to see 'read'")
    wait_for(alice_page, lambda d: "Read" in by_css(d, "li.message.out .status").text, "'Read'")
    by_css(bob_page, "#composer-text").send_keys("Hi Alice! Got it.", Keys.ENTER)
    wait_for(
        alice_page,
        lambda d: any("Got it" in e.text for e in all_css(d, "li.message.in")),
        "Bob's answer on Alice's page",
    )
    wait_for(bob_page, lambda d: bubble_status(d, "Got it") in ("delivered", "read"), "delivered")
    wait_for(alice_page, lambda d: not all_css(d, "a.conversation .unread"), "no unread count")
    screenshot(alice_page, "conversation-desktop")
    screenshot(bob_page, "conversation-phone")
    alice_page.get(alice_base + "#/node")
    wait_for(alice_page, lambda d: all_css(d, "#peer-id"), "the node page")
    assert by_css(alice_page, "#peer-id").text == alice.client.node()["peer_id"]
    wait_for(alice_page, lambda d: all_css(d, "#mailbox-offered"), "the mailboxes")
    offered = by_css(alice_page, "#mailbox-offered").text
    assert offered.startswith("none (run the node with --mailbox"), offered
    withdrawn = by_css(alice_page, "#mailbox-withdrawals").text
    assert withdrawn == "0 given back by mailboxes since the node started", withdrawn
    screenshot(alice_page, "node-desktop")

    # Bob's node restarts on the same address: his open page resumes its event
    # stream (Last-Event-ID) and shows Alice's next message without a reload.
    bob.stop()
    restarted = nodes("bob", api_port=bob_port)
    wait_for(bob_page, lambda d: all_css(d, "#connection[data-state='live']"), "live again")
    alice_page.get(alice_base + "#/")
    wait_for(alice_page, lambda d: all_css(d, "a.conversation"), "Alice's inbox")
    screenshot(alice_page, "inbox-desktop")
    click(alice_page, "a.conversation", "Alice's conversation in the list")
    wait_for(alice_page, lambda d: all_css(d, "#composer-text"), "the conversation")
    by_css(alice_page, "#composer-text").send_keys("Are you back?", Keys.ENTER)
    wait_for(
        bob_page,
        lambda d: any("Are you back?" in e.text for e in all_css(d, "li.message.in")),
        "the message after the restart, live",
    )
    assert restarted.client.node()["counts"]["contacts"] == 1


def test_a_spent_or_wrong_sign_in_link_is_refused(
    nodes: Callable[..., Proc], browsers: Callable[..., Any]
) -> None:
    alice = nodes("alice")
    page = browsers()
    link = login_link(alice.home)
    page.get(link)
    wait_for(page, lambda d: all_css(d, "#connection[data-state='live']"), "signed in")
    other = browsers()
    other.get(link)  # the same link again, in another browser
    refused = by_css(other, "body").text
    assert "Sign-in link refused" in refused and "already used" in refused
    assert f"p2pdm --home {alice.home} ui" in refused and "login_refused" not in refused
    screenshot(other, "link-refused-desktop")
    other.get(link.split("/login")[0] + "/")
    wait_for(other, lambda d: "not signed in" in by_css(d, "body").text, "the sign-in hint")
    assert f"p2pdm --home {alice.home} ui" in by_css(other, "body").text
    screenshot(other, "signed-out-desktop")


@contextmanager
def foreign_site(root: Path) -> Iterator[str]:
    """Another origin on this machine (another port: same site, so the cookie goes along)."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_cross_site_request_with_the_cookie_is_refused(
    nodes: Callable[..., Proc], browsers: Callable[..., Any], tmp_path: Path
) -> None:
    alice = nodes("alice")
    page = browsers()
    base = sign_in(page, alice.home)
    site = tmp_path / "site"
    site.mkdir()
    # A plain form post: no pre-flight, the browser attaches the session cookie
    # and its own Origin.
    (site / "attack.html").write_text(
        f'<form method="post" action="{base}v1/sessions/codes">'
        '<button id="go" type="submit">go</button></form>'
    )
    with foreign_site(site) as origin:
        page.get(f"{origin}/attack.html")
        by_css(page, "#go").click()
        wait_for(page, lambda d: "forbidden_origin" in by_css(d, "body").text, "the refusal")
        # And a script of that page cannot read the API either.
        page.get(f"{origin}/attack.html")
        answer = page.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"fetch('{base}v1/node', {{credentials: 'include'}})"
            ".then(r => done('read ' + r.status)).catch(e => done('refused'));"
        )
        assert answer == "refused"
    page.get(base)
    wait_for(page, lambda d: all_css(d, "#connection[data-state='live']"), "still signed in")


def test_history_scrolls_back_and_a_waiting_message_says_queued(
    nodes: Callable[..., Proc], browsers: Callable[..., Any], tmp_path: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    from p2pdm.core.identity import Identity
    from tests.daemon.test_run_process import _env, init

    # Bob exists but is not running: whatever Alice sends him waits, queued.
    init(tmp_path / "bob", "bob")
    shown = subprocess.run(
        [sys.executable, "-m", "p2pdm", "--home", str(tmp_path / "bob"), "id", "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=True,
    )
    alice = nodes("alice")
    alice.client.add_contact(json.loads(shown.stdout)["invite"], "Bob")
    total = 60  # more than the app's first page (50)
    for n in range(total):
        alice.client.send("Bob", f"note {n:02d}")
    page = browsers()
    base = sign_in(page, alice.home)
    page.get(base + "#/")
    click(page, "a.conversation", "the conversation")
    wait_for(page, lambda d: any("note 59" in e.text for e in all_css(d, "li.message")), "newest")
    assert not any("note 00" in e.text for e in all_css(page, "li.message"))
    assert bubble_status(page, "note 59") == "queued"
    assert "Queued" in by_css(page, f"#m-{_last_id(page)} .status").text
    # Scrolling to the top fetches the older page, keeping the place.
    page.execute_script("document.getElementById('scroller').scrollTop = 0")
    wait_for(page, lambda d: any("note 00" in e.text for e in all_css(d, "li.message")), "oldest")
    wait_for(page, lambda d: "start of the conversation" in by_css(d, "#older").text, "the start")
    assert len(all_css(page, "li.message")) == total

    # Carol, added by PeerID alone, was never found: her message waits for her keys.
    carol = str(Identity(os.urandom(32)).peer_id)
    alice.client.add_contact(carol, "Carol")
    alice.client.send("Carol", "are you there?")
    page.get(f"{base}#/c/{carol}")
    note = "Queued · waiting for Carol's keys: Carol is not found in the network yet"
    wait_for(
        page,
        lambda d: note in by_css(d, f"#m-{_last_id(d)} .status").text,
        "the waiting message's note",
    )


def _last_id(driver: Any) -> str:
    return str(all_css(driver, "li.message")[-1].get_attribute("data-id"))


def test_contacts_are_renamed_and_removed_with_safety_numbers_side_by_side(
    nodes: Callable[..., Proc], browsers: Callable[..., Any]
) -> None:
    alice = nodes("alice")
    bob = nodes("bob")
    make_contacts(alice, bob)
    page = browsers()
    base = sign_in(page, alice.home)
    page.get(base + "#/new")
    wait_for(page, lambda d: all_css(d, "li.contact"), "the contact")
    safety = by_css(page, "li.contact .safety").text
    assert bob.client.node()["peer_id"][-8:] in safety
    assert alice.client.node()["peer_id"][-8:] in safety
    click(page, "li.contact button:nth-of-type(1)", "Rename")
    prompt = page.switch_to.alert
    prompt.send_keys("Robert")
    prompt.accept()
    wait_for(page, lambda d: "Robert" in by_css(d, "li.contact strong").text, "the new name")
    assert [c["name"] for c in alice.client.contacts()] == ["Robert"]
    click(page, "li.contact button.danger", "Remove")
    page.switch_to.alert.accept()
    wait_for(page, lambda d: all_css(d, "#contact-list li.empty"), "no contact left")
    assert alice.client.contacts() == []
