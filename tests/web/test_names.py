"""Issue 17 item 10 in the web app: the create form refuses a name that is not printable or too
long with the reason on the form (and in JSON), creating nothing; markup in an allowed name is
shown as text."""

from __future__ import annotations

import html

import pytest

from ironspire.web.pages_agents import INHERIT
from ironspire.workspace.validation import MAX_NAME
from web.conftest import Browser


@pytest.mark.parametrize(("name", "reason"), [
    ("evil\x1b]0;pwned\x07", "contains the control character U+001B"),
    ("tab\tname", "contains the control character U+0009"),
    ("x" * (MAX_NAME + 1), f"needs a name of 1 to {MAX_NAME} characters"),
    ("   ", f"needs a name of 1 to {MAX_NAME} characters"),
])
async def test_the_create_form_refuses_a_bad_name_saying_why(web: Browser, name: str, reason: str) -> None:
    page = await web.post("/agents", {"name": name, "route": INHERIT})
    assert page.status_code == 400
    assert reason in html.unescape(page.text)
    assert "\x1b" not in page.text  # the escape itself never reaches the browser raw
    answer = await web.post("/agents", {"name": name, "route": INHERIT}, json_answer=True)
    assert answer.status_code == 400 and reason in answer.json()["message"]
    assert web.ws.agents() == []


async def test_markup_in_an_allowed_name_is_shown_as_text(web: Browser) -> None:
    created = await web.post("/agents", {"name": "<b>[bold]x", "route": INHERIT}, json_answer=True)
    assert created.status_code == 201
    page = await web.get("/", follow_redirects=True)
    assert page.status_code == 200
    assert "&lt;b&gt;[bold]x" in page.text and "<b>[bold]x" not in page.text
