"""Shared by the browser tests: real nodes as processes, headless chromium through
Selenium, sign-in links, and screenshots of the app."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_run_process import Proc, _env, init

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.net]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Longest the page may take to show something the node already did.
UI_WAIT_S = 30.0
#: Where the tests leave their screenshots (docs/screenshots/ keeps the latest).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = (1280, 800)
#: Set by .ci/run: a missing browser fails the tests instead of skipping them.
REQUIRE_BROWSER = "P2PDM_REQUIRE_BROWSER"
PHONE = (390, 844)


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.access(path, os.X_OK) or shutil.which(Path(path).name)):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser_ready() -> None:
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("CI") or os.environ.get(REQUIRE_BROWSER):
            pytest.fail(f"CI must run the browser tests: {missing}")
        pytest.skip(missing)


def start_node(home: Path, name: str, *args: str, api_port: int = 0) -> Proc:
    if not home.exists():
        init(home, name)
    return Proc(
        home,
        ["--listen", "/ip4/127.0.0.1/tcp/0", "--api", f"127.0.0.1:{api_port}", *args],
        home.with_suffix(".log"),
    )


def login_link(home: Path) -> str:
    shown = subprocess.run(
        [sys.executable, "-m", "p2pdm", "--home", str(home), "ui", "--no-open"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=True,
    )
    return shown.stdout.splitlines()[0].removeprefix("Open the web app: ")


@pytest.fixture
def nodes(tmp_path: Path, browser_ready: None) -> Iterator[Callable[..., Proc]]:
    """Start nodes by name (homes in ``tmp_path``); all are stopped after the test.
    (Only once the browser is known to be there: a skip costs no node start.)"""
    started: list[Proc] = []

    def start(name: str, *args: str, api_port: int = 0) -> Proc:
        proc = start_node(tmp_path / name, name, *args, api_port=api_port)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def _driver(width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
        "--force-prefers-reduced-motion",
        "--lang=en-GB",
        # A microphone that plays a beep, granted without asking: voice notes.
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture
def browsers(browser_ready: None) -> Iterator[Callable[..., Any]]:
    """Open headless browser windows (desktop size unless given); closed after the test."""
    opened: list[Any] = []

    def open_browser(size: tuple[int, int] = DESKTOP) -> Any:
        driver = _driver(*size)
        if size[0] < DESKTOP[0]:
            # A window cannot be narrower than the browser allows: emulate the phone.
            metrics = {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": True}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        driver.set_page_load_timeout(UI_WAIT_S)
        opened.append(driver)
        return driver

    yield open_browser
    for driver in opened:
        errors = [
            entry
            for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
        ]
        driver.quit()
        assert not [e for e in errors if "Uncaught" in e["message"]], errors


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The app redraws lists as events arrive: an element found a moment ago
    # may be gone; look again.
    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(driver, UI_WAIT_S, poll_frequency=0.1, ignored_exceptions=ignored).until(
        condition, message=what
    )


def click(driver: Any, selector: str, what: str) -> None:
    """Click the first element matching ``selector`` once it is there (and not redrawn away)."""
    from selenium.webdriver.common.by import By

    def clicked(d: Any) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait_for(driver, clicked, what)


def screenshot(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def sign_in(driver: Any, home: Path) -> str:
    """Open a fresh sign-in link; returns the app's address."""
    driver.get(login_link(home))
    wait_for(driver, lambda d: all_css(d, "#connection[data-state='live']"), "the app to go live")
    url = str(driver.current_url)
    assert "code=" not in url  # the code never stays in the address bar
    assert driver.execute_script("return window.localStorage.length") == 0
    assert driver.execute_script("return document.cookie") == ""  # HttpOnly
    return url.split("#")[0]


def make_contacts(alice: Proc, bob: Proc) -> None:
    """Contacts of each other (no stranger limits), by invite through the API,
    named "Bob" on Alice's node and "Alice" on Bob's."""
    alice.client.add_contact(bob.client.node()["invite"], "Bob")
    bob.client.add_contact(alice.client.node()["invite"], "Alice")


@dataclass
class Pair:
    """Alice and Bob, contacts of each other, each signed in to their own node's
    app: Alice's page desktop-sized, Bob's phone-sized."""

    alice: Proc
    bob: Proc
    alice_id: str
    bob_id: str
    alice_page: Any
    bob_page: Any
    alice_base: str
    bob_base: str

    def open_chats(self) -> None:
        """Each page on the conversation with the other, its composer shown."""
        self.alice_page.get(f"{self.alice_base}#/c/{self.bob_id}")
        wait_for(self.alice_page, lambda d: all_css(d, "#composer-text"), "Alice's chat")
        self.bob_page.get(f"{self.bob_base}#/c/{self.alice_id}")
        wait_for(self.bob_page, lambda d: all_css(d, "#composer-text"), "Bob's chat")


@pytest.fixture
def pair(nodes: Callable[..., Proc], browsers: Callable[..., Any]) -> Pair:
    """Two nodes, contacts of each other, and a signed-in browser for each."""
    alice = nodes("alice")
    bob = nodes("bob")
    make_contacts(alice, bob)
    alice_page = browsers()
    bob_page = browsers(PHONE)
    return Pair(
        alice=alice,
        bob=bob,
        alice_id=alice.client.node()["peer_id"],
        bob_id=bob.client.node()["peer_id"],
        alice_page=alice_page,
        bob_page=bob_page,
        alice_base=sign_in(alice_page, alice.home),
        bob_base=sign_in(bob_page, bob.home),
    )
