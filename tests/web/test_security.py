"""The app holds every provider key: a per-launch token (cookie after the first visit), a Host
check against DNS rebinding, CSRF on every state change, a CSP without inline script."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from ironspire.web.security import CSP, allowed_hosts
from web.conftest import BASE, Browser


def anonymous(web: Browser, host: str = "127.0.0.1:8780") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web.app), base_url=f"http://{host}")


@pytest.mark.parametrize("path", ["/", "/settings/providers", "/api/providers", "/api/agents", "/events/health",
                                  "/static/app.js"])
async def test_nothing_is_served_without_the_token(web: Browser, path: str) -> None:
    async with anonymous(web) as client:
        response = await client.get(path)
        assert response.status_code == 401
        assert "token" in response.text and "claude" not in response.text.lower()
        wrong = await client.get(path, headers={"cookie": "ironspire-token-8780=guess"})
        assert wrong.status_code == 401


async def test_the_token_in_the_url_becomes_an_http_only_strict_cookie(web: Browser) -> None:
    async with anonymous(web) as client:
        bad = await client.get("/settings/providers?token=nope")
        assert bad.status_code == 401 and "set-cookie" not in bad.headers
        first = await client.get(f"/settings/providers?token={web.secrets.token}&x=1")
        assert first.status_code == 303
        assert first.headers["location"] == "/settings/providers?x=1"  # the token leaves the address bar
        cookie = first.headers["set-cookie"]
        assert cookie.startswith(f"ironspire-token-8780={web.secrets.token};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert (await client.get("/settings/providers")).status_code == 200  # the cookie is enough now


async def test_scripts_may_send_the_token_as_a_bearer_header(web: Browser) -> None:
    async with anonymous(web) as client:
        ok = await client.get("/api/providers", headers={"authorization": f"Bearer {web.secrets.token}"})
        assert ok.status_code == 200 and isinstance(ok.json(), list)


@pytest.mark.parametrize("host", ["evil.example:8780", "127.0.0.1:9999", "attacker.test", ""])
async def test_a_foreign_host_header_is_refused_even_with_the_cookie(web: Browser, host: str) -> None:
    response = await web.client.get("/api/providers", headers={"host": host})
    assert response.status_code == 403 and "DNS-rebinding" in response.text


async def test_loopback_names_are_all_accepted() -> None:
    assert {"127.0.0.1:8780", "localhost:8780", "[::1]:8780"} <= allowed_hosts("127.0.0.1", 8780)
    assert allowed_hosts("192.168.1.5", 8780) == frozenset({"192.168.1.5:8780"})


async def test_state_changes_need_the_csrf_token_and_change_nothing_without_it(web: Browser) -> None:
    no_token = await web.client.post("/settings/providers/mistral/disable", data={})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    wrong = await web.client.post("/settings/providers/mistral/disable", data={"csrf_token": "x" * 64})
    assert wrong.status_code == 403
    as_json = await web.client.post("/settings/providers/mistral/disable", json={"a": 1})
    assert as_json.status_code == 403
    multipart = await web.client.post("/settings/providers/mistral/disable", files={"f": b"x"},
                                      headers={"x-csrf-token": web.secrets.csrf})
    assert multipart.status_code == 415
    assert web.ws.is_enabled("mistral")
    by_header = await web.client.post("/settings/providers/mistral/disable", headers={"x-csrf-token": web.secrets.csrf})
    assert by_header.status_code == 303 and not web.ws.is_enabled("mistral")
    by_field = await web.post("/settings/providers/mistral/enable")
    assert by_field.status_code == 303 and web.ws.is_enabled("mistral")


@pytest.mark.parametrize("headers", [{"origin": "https://evil.example"}, {"origin": "null"},
                                     {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"}])
async def test_cross_site_requests_are_refused_even_with_the_tokens(web: Browser, headers: dict[str, str]) -> None:
    response = await web.client.post("/settings/providers/mistral/disable",
                                     data={"csrf_token": web.secrets.csrf}, headers=headers)
    assert response.status_code == 403 and web.ws.is_enabled("mistral")
    same = await web.client.post("/settings/providers/mistral/disable", data={"csrf_token": web.secrets.csrf},
                                 headers={"origin": BASE, "sec-fetch-site": "same-origin"})
    assert same.status_code == 303 and not web.ws.is_enabled("mistral")


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            if not names.get("src"):
                self.problems.append("inline <script>")
            self.scripts.append(names.get("src") or "")
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems += [f"{k} handler on <{tag}>" for k in names if k.startswith("on")]
        self.problems += [f"javascript: URL on <{tag}>" for v in names.values() if v and v.startswith("javascript:")]
        if tag == "style":
            self.problems.append("<style> element")


async def test_pages_carry_the_csp_and_no_inline_script(web: Browser) -> None:
    web.ws.create_agent("scout")
    for path in ("/settings/providers", "/agents/scout", "/agents/new", "/agents/scout/configure", "/agents/nope"):
        response = await web.get(path)
        assert response.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        parser = _Inline()
        parser.feed(response.text)
        assert parser.problems == [], (path, parser.problems)
        assert parser.scripts == ["/static/app.js"]
        assert re.search(r'<meta name="csrf-token" content="[0-9a-f]{64}">', response.text)
    api = await web.get("/api/providers")
    assert api.headers["content-security-policy"] == CSP
