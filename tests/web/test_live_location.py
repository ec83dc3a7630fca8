"""Live location from the web app: Alice starts a share in her page, which
follows the browser's position (overridden here); Bob's page shows it live,
and says when she stopped it; the same in a group's conversation; a page
the browser refuses the position gets a clear message and shares nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import Pair, all_css, by_css, click, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]


def cards(driver: Any) -> list[str]:
    return [e.text for e in all_css(driver, ".live-location:not(.live-ended)")]


def test_a_live_location_started_in_the_page_shows_on_the_other_and_stops(pair: Pair) -> None:
    alice_page, bob_page = pair.alice_page, pair.bob_page
    origin = pair.alice_base.rstrip("/")
    alice_page.execute_cdp_cmd(
        "Browser.grantPermissions", {"origin": origin, "permissions": ["geolocation"]}
    )
    alice_page.execute_cdp_cmd(
        "Emulation.setGeolocationOverride",
        {"latitude": 52.52, "longitude": 13.405, "accuracy": 20},
    )
    pair.open_chats()
    click(alice_page, "#live-share", "the live location button")
    click(alice_page, "#live-menu button[data-period='900']", "15 min")
    wait_for(alice_page, lambda d: all_css(d, ".live-location.mine .stop-live"), "her own share")
    wait_for(
        bob_page, lambda d: any("52.52000, 13.40500" in c for c in cards(d)), "her share on Bob's"
    )
    [card] = cards(bob_page)
    assert "Alice is sharing a live location" in card and "live until" in card
    assert [s["mine"] for s in pair.bob.client.live_locations("Alice")] == [False]

    click(alice_page, ".live-location.mine .stop-live", "Stop")
    wait_for(bob_page, lambda d: all_css(d, ".live-ended"), "Bob's page says she stopped")
    assert "Alice stopped sharing a live location" in by_css(bob_page, ".live-ended").text
    assert cards(bob_page) == []
    assert pair.alice.client.live_locations("Bob") == []

    # Stopped elsewhere (here the API; a restart of her node stops it too):
    # her page says so instead of only dropping her card.
    click(alice_page, "#live-share", "the live location button")
    click(alice_page, "#live-menu button[data-period='900']", "15 min")
    wait_for(alice_page, lambda d: all_css(d, ".live-location.mine"), "her share again")
    pair.alice.client.stop_live_location("Bob")
    wait_for(
        alice_page,
        lambda d: "stopped elsewhere, or the node restarted" in by_css(d, "#status-bar").text,
        "her page says her share stopped",
    )
    assert not all_css(alice_page, ".live-location.mine")
    click(alice_page, "#status-bar", "the message, to dismiss it")

    # In a group: the share goes to the members online and shows in the group.
    made = pair.alice.client.create_group("Walk", ["Bob"])
    conversation = made["conversation"]
    wait_for(bob_page, lambda d: pair.bob.client.groups(), "Bob in the group")
    alice_page.get(f"{pair.alice_base}#/c/{conversation}")
    bob_page.get(f"{pair.bob_base}#/c/{conversation}")
    wait_for(bob_page, lambda d: all_css(d, "#live-locations"), "the group on Bob's page")
    click(alice_page, "#live-share", "the live location button")
    click(alice_page, "#live-menu button[data-period='3600']", "1 hour")
    wait_for(
        bob_page, lambda d: any("Alice is sharing" in c for c in cards(d)), "her share in the group"
    )
    [share] = pair.bob.client.live_locations(conversation)
    assert (share["mine"], share["lat"]) == (False, 52.52)
    click(alice_page, ".live-location.mine .stop-live", "Stop")
    wait_for(bob_page, lambda d: all_css(d, ".live-ended"), "stopped, in the group")

    # The browser refuses the position: a clear message, nothing shared.
    alice_page.execute_cdp_cmd(
        "Browser.setPermission",
        {"origin": origin, "permission": {"name": "geolocation"}, "setting": "denied"},
    )
    click(alice_page, "#live-share", "the live location button")
    click(alice_page, "#live-menu button[data-period='3600']", "1 hour")
    wait_for(
        alice_page,
        lambda d: "may not know your location" in by_css(d, "#status-bar").text,
        "the refusal explained",
    )
    wait_for(
        alice_page,
        lambda d: (
            not pair.alice.client.live_locations(conversation)
            and not all_css(d, ".live-location.mine")
        ),
        "nothing shared",
    )
