"""Issue 17 item 7 in the web app: drop the last N messages, reset the conversation, delete the
agent. Each is a CSRF-checked POST that asks first: without confirm=yes nothing changes and the
page (or a JSON 409) says what would be deleted."""

from __future__ import annotations

import pytest

from ironspire.messages import Message
from web.conftest import Browser


def _agent_with(web: Browser, name: str, count: int) -> None:
    agent = web.ws.create_agent(name)
    web.ws.store.replace_history(agent.id, [("user" if i % 2 == 0 else "assistant",
                                             (Message.user if i % 2 == 0 else Message.assistant)(f"m{i}").to_json())
                                            for i in range(count)])


def _texts(web: Browser, name: str) -> list[str]:
    return [e.message.text for e in web.ws.agent(name).transcript()]


async def test_the_form_offers_drop_reset_and_delete(web: Browser) -> None:
    _agent_with(web, "keeper", 2)
    page = await web.get("/agents/keeper/configure")
    assert all(f'action="/agents/keeper/{a}"' in page.text for a in ("drop-last", "reset", "delete"))


@pytest.mark.parametrize(("path", "data", "question"), [
    ("drop-last", {"count": "2"}, "Delete the newest 2 of 4 messages of keeper?"),
    ("reset", {}, "Delete all 4 messages of keeper?"),
    ("delete", {}, "Delete the agent keeper and its 4 messages?"),
])
async def test_each_asks_first_and_changes_nothing_unconfirmed(web: Browser, path: str, data: dict[str, str],
                                                               question: str) -> None:
    _agent_with(web, "keeper", 4)
    page = await web.post(f"/agents/keeper/{path}", data)
    assert page.status_code == 200 and question in page.text
    assert 'name="confirm" value="yes"' in page.text and f'action="/agents/keeper/{path}"' in page.text
    answer = await web.post(f"/agents/keeper/{path}", data, json_answer=True)
    assert answer.status_code == 409 and question in answer.json()["message"]
    assert _texts(web, "keeper") == ["m0", "m1", "m2", "m3"]
    no_token = await web.client.post(f"/agents/keeper/{path}", data={**data, "confirm": "yes"})
    assert no_token.status_code == 403
    assert _texts(web, "keeper") == ["m0", "m1", "m2", "m3"]


async def test_drop_last_confirmed_removes_the_newest_messages(web: Browser) -> None:
    _agent_with(web, "keeper", 4)
    done = await web.post("/agents/keeper/drop-last", {"count": "2", "confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"] == "/agents/keeper"
    assert _texts(web, "keeper") == ["m0", "m1"]
    assert [m.text for m in web.ws.agent("keeper").history] == ["m0", "m1"]
    bad = await web.post("/agents/keeper/drop-last", {"count": "none", "confirm": "yes"}, json_answer=True)
    assert bad.status_code == 400 and "whole number" in bad.json()["message"]
    assert _texts(web, "keeper") == ["m0", "m1"]


async def test_reset_confirmed_forgets_the_conversation_and_keeps_the_agent(web: Browser) -> None:
    _agent_with(web, "keeper", 4)
    done = await web.post("/agents/keeper/reset", {"confirm": "yes"}, json_answer=True)
    assert done.status_code == 200 and done.json() == {"dropped": 4}
    assert _texts(web, "keeper") == [] and [a.name for a in web.ws.agents()] == ["keeper"]


async def test_delete_confirmed_removes_the_agent(web: Browser) -> None:
    _agent_with(web, "keeper", 4)
    _agent_with(web, "other", 2)
    done = await web.post("/agents/keeper/delete", {"confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert [a.name for a in web.ws.agents()] == ["other"]
    assert _texts(web, "other") == ["m0", "m1"]
    gone = await web.get("/agents/keeper/configure")
    assert gone.status_code == 400 and "no agent named" in gone.text
