"""Profiles and handles in real browsers against real nodes: Bob publishes his
name, handle, bio and avatar from the app's Node page; Alice, on the same DHT,
finds @bob.k on her New chat page, sees the claimant as a stranger with its
fingerprint and how long her node has seen the claim, and starts a chat."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.daemon.test_run_process import Proc
from tests.web.conftest import PHONE, all_css, by_css, click, screenshot, sign_in, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]


def looked_up(driver: Any) -> Any:
    """The claimants once some are shown; asks again while the DHT settles."""
    claimants = all_css(driver, "li.claimant")
    if claimants:
        return claimants
    if all_css(driver, "#find-none") or all_css(driver, "#find-results .error"):
        by_css(driver, "#find-button").click()
    return None


def test_a_profile_set_in_the_app_is_found_by_handle_on_another_node(
    nodes: Callable[..., Proc], browsers: Callable[..., Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    bob = nodes("bob")
    alice = nodes("alice", "--bootstrap", bob.client.node()["addrs"][0])
    photo = tmp_path / "me.png"
    Image.new("RGB", (900, 700), (200, 60, 40)).save(photo)

    # Bob publishes his profile from the Node page, avatar from the file picker.
    bob_page = browsers()
    bob_base = sign_in(bob_page, bob.home)
    bob_page.get(bob_base + "#/node")
    wait_for(bob_page, lambda d: all_css(d, "#profile-name"), "the profile form")
    reach = bob.client.node()["reachability"]
    shown = by_css(bob_page, "#reachability").text
    assert (f"DHT {reach['dht_mode']}" in shown) if reach else shown == "not on the network"
    assert "Not published" in by_css(bob_page, "#profile-state").text
    fingerprint = bob.client.profile()["fingerprint"]
    assert by_css(bob_page, "#profile-fingerprint").text == fingerprint
    by_css(bob_page, "#profile-name").send_keys("Bob K")
    by_css(bob_page, "#profile-handle").send_keys("@Bob.K")
    by_css(bob_page, "#profile-bio").send_keys("bikes and bread")
    by_css(bob_page, "#profile-avatar-file").send_keys(str(photo))
    wait_for(bob_page, lambda d: all_css(d, "#profile-avatar img[src^='blob:']"), "the preview")
    by_css(bob_page, "#profile-save").click()
    wait_for(bob_page, lambda d: "Published" in by_css(d, "#profile-state").text, "published")
    wait_for(
        bob_page, lambda d: all_css(d, "#profile-avatar img[src^='data:image/webp']"), "avatar"
    )
    screenshot(bob_page, "profile-desktop")
    profile = bob.client.profile()
    assert (profile["name"], profile["handle"], profile["bio"]) == (
        "Bob K",
        "bob.k",
        "bikes and bread",
    )
    assert profile["avatar_type"] == "image/webp" and profile["avatar"]

    # Alice looks the handle up: one claimant, a stranger, never marked as proven.
    alice_page = browsers(PHONE)
    alice_base = sign_in(alice_page, alice.home)
    alice_page.get(alice_base + "#/new")
    wait_for(alice_page, lambda d: all_css(d, "#find-handle"), "the find box")
    by_css(alice_page, "#find-handle").send_keys("BOB.K", Keys.ENTER)
    [claimant] = wait_for(alice_page, looked_up, "Bob among the claimants of @bob.k")
    assert claimant.get_attribute("data-peer") == bob.client.node()["peer_id"]
    assert claimant.get_attribute("data-relation") == "stranger"
    shown = claimant.text
    for part in ("Bob K", "bikes and bread", fingerprint, "not a contact", "claim seen"):
        assert part in shown, (part, shown)
    assert claimant.find_elements("css selector", "img.avatar[src^='data:image/webp']")
    assert "proves nothing" in by_css(alice_page, "#find-warning").text
    alice_page.execute_script("document.getElementById('find-results').scrollIntoView()")
    screenshot(alice_page, "find-handle-phone")

    # A chat with the claimant: a contact named on Alice's device, a request on Bob's.
    click(alice_page, "li.claimant .actions button", "Chat")
    alice_page.switch_to.alert.accept()  # the name offered: the one the claimant gave
    wait_for(alice_page, lambda d: all_css(d, "#composer-text"), "the conversation")
    by_css(alice_page, "#composer-text").send_keys("Is it you, Bob?", Keys.ENTER)
    assert [c["name"] for c in alice.client.contacts()] == ["Bob K"]
    wait_for(bob_page, lambda d: bob.client.conversations(), "the request at Bob's node")
    assert bob.client.conversations()[0]["request"] is True
