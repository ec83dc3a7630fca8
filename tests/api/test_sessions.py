"""Signing in to the web app: one-time links, the session cookie and what it may do."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from p2pdm.api.sessions import LOGIN_CODE_TTL_MS, MAX_WEB_SESSIONS
from p2pdm.api.web import API_CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY, web_dir
from tests.api.conftest import assert_error
from tests.conftest import WAIT_S, Api, make_node, serving


async def _link(api: Api) -> str:
    answer = await api.call("POST", "/v1/sessions/codes")
    assert answer.status_code == 201, answer.text
    url = str(answer.json()["url"])
    assert url.startswith(f"http://127.0.0.1:{api.port}/login?code=")
    return url


def _browser(api: Api) -> httpx.AsyncClient:
    """A client with no token: what a browser has."""
    return httpx.AsyncClient(base_url=api.base, timeout=WAIT_S)


async def _sign_in(api: Api, browser: httpx.AsyncClient) -> str:
    url = await _link(api)
    answer = await browser.get(url)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    return str(browser.cookies["p2pdm_session"])


async def test_a_sign_in_link_gives_a_session_cookie_that_reads_the_api(alice: Api) -> None:
    async with _browser(alice) as browser:
        assert (await browser.get("/v1/node")).status_code == 401
        secret = await _sign_in(alice, browser)
        node = await browser.get("/v1/node")
        assert node.status_code == 200, node.text
        assert node.json()["token"]["scope"] == "admin"
        assert node.json()["token"]["name"].startswith("web-session-")
        # The secret is not the owner's token and not in any URL.
        assert secret not in (await _link(alice))


async def test_a_reused_or_expired_link_is_refused(alice: Api) -> None:
    async with _browser(alice) as browser:
        url = await _link(alice)
        assert (await browser.get(url)).status_code == 303
        browser.cookies.clear()
        assert_error(await browser.get(url), 403, "login_refused")
        assert "p2pdm_session" not in browser.cookies

        late = await _link(alice)
        now = alice.node.now_ms
        alice.node.now_ms = lambda: now() + LOGIN_CODE_TTL_MS + 1
        assert_error(await browser.get(late), 403, "login_refused")
        alice.node.now_ms = now
        assert_error(await browser.get(late), 403, "login_refused")  # spent by the try
        assert_error(await browser.get("/login?code=x"), 403, "login_refused")
        assert_error(await browser.get("/login"), 403, "login_refused")


async def test_a_refused_link_says_why_and_the_command_for_this_home(tmp_path: Path) -> None:
    home = tmp_path / "my node"
    async with serving(make_node("alice"), home) as alice, _browser(alice) as browser:
        command = f"p2pdm --home '{home}' ui"
        page = await browser.get("/login?code=x", headers={"Accept": "text/html"})
        assert page.status_code == 403
        assert "already used, has expired (links work for 5 minutes) or is wrong" in page.text
        assert f"<code>{html.escape(command)}</code>" in page.text
        assert "login_refused" not in page.text  # a sentence, not a code
        assert 'rel="icon"' in page.text
        answer = await browser.get("/login?code=x")
        assert_error(answer, 403, "login_refused")
        assert command in answer.json()["error"]["message"]
        # The app's own page tells a signed-out browser the same command.
        index = await browser.get("/")
        assert f'content="{html.escape(command)}"' in index.text
        assert "{{" not in index.text


async def test_the_default_home_is_not_named_and_the_favicon_is_the_apps_icon(
    alice: Api,
) -> None:
    async with _browser(alice) as browser:
        page = await browser.get("/login?code=x", headers={"Accept": "text/html"})
        assert "<code>p2pdm ui</code>" in page.text
        assert 'content="p2pdm ui"' in (await browser.get("/")).text
        icon = await browser.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.content == (web_dir() / "icon.svg").read_bytes()


async def test_a_cookie_changes_nothing_without_the_apps_origin(alice: Api) -> None:
    own = f"http://127.0.0.1:{alice.port}"
    async with _browser(alice) as browser:
        await _sign_in(alice, browser)
        patch = {"read_receipts": False}
        # Another site's page: its Origin is refused whatever it carries.
        foreign = await browser.patch(
            "/v1/settings", json=patch, headers={"Origin": "http://evil.example"}
        )
        assert_error(foreign, 403, "forbidden_origin")
        # A request with the cookie alone (no Origin, no app header): not signed in.
        assert_error(await browser.patch("/v1/settings", json=patch), 401, "unauthorized")
        assert alice.node.settings()["read_receipts"] is True
        # The app itself: same Origin, or its header.
        ok = await browser.patch("/v1/settings", json=patch, headers={"Origin": own})
        assert ok.status_code == 200, ok.text
        ok = await browser.patch(
            "/v1/settings", json={"read_receipts": True}, headers={"X-P2PDM-CSRF": "1"}
        )
        assert ok.status_code == 200, ok.text
        # Reading needs neither.
        assert (await browser.get("/v1/settings")).status_code == 200


async def test_sessions_are_listed_and_revoked_apart_from_tokens(alice: Api) -> None:
    async with _browser(alice) as browser:
        await _sign_in(alice, browser)
        sessions = (await alice.call("GET", "/v1/sessions")).json()["sessions"]
        assert len(sessions) == 1
        assert (await alice.call("GET", "/v1/tokens")).json()["tokens"] == []
        made = await alice.call(
            "POST", "/v1/tokens", json={"scope": "read", "name": "web-session-1"}
        )
        assert made.status_code == 400, made.text
        gone = await alice.call("DELETE", f"/v1/sessions/{sessions[0]['id']}")
        assert gone.status_code == 204
        assert (await browser.get("/v1/node")).status_code == 401
        assert_error(await alice.call("DELETE", f"/v1/sessions/{sessions[0]['id']}"), 404)


async def test_signing_in_past_the_cap_ends_the_oldest_session(alice: Api) -> None:
    browsers = [_browser(alice) for _ in range(MAX_WEB_SESSIONS + 1)]
    try:
        for browser in browsers:
            await _sign_in(alice, browser)
        assert (await browsers[0].get("/v1/node")).status_code == 401
        assert (await browsers[-1].get("/v1/node")).status_code == 200
        sessions = (await alice.call("GET", "/v1/sessions")).json()["sessions"]
        assert len(sessions) == MAX_WEB_SESSIONS
    finally:
        for browser in browsers:
            await browser.aclose()


async def test_the_app_is_served_with_a_strict_policy(alice: Api) -> None:
    async with _browser(alice) as browser:
        page = await browser.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script" in page.text and "<script>" not in page.text  # no inline script
        script = await browser.get("/app/js/main.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert (await browser.get("/app/../pyproject.toml")).status_code == 404
        # The API's answers are never pages: a document from them runs nothing.
        api = await browser.get("/v1/node")
        assert api.headers["x-content-type-options"] == "nosniff"
        assert api.headers["content-security-policy"] == API_CONTENT_SECURITY_POLICY
        assert "sandbox" in API_CONTENT_SECURITY_POLICY
        # A page addressed by another name (DNS rebinding) is refused.
        rebound = await browser.get("/", headers={"Host": "evil.example"})
        assert rebound.status_code == 403
        assert urlsplit(str(page.url)).path == "/"


async def test_the_invite_comes_as_text_and_as_a_qr_code(alice: Api) -> None:
    """``GET /v1/invite``: a fresh invite and its QR code, an SVG drawn by segno
    (loaded on the first invite drawn, not with the node)."""
    answer = await alice.call("GET", "/v1/invite")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["invite"].startswith("p2pdm:")
    svg = body["svg"]
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert body["invite"] not in svg  # the drawing, not the text
