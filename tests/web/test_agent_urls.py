"""Agents whose names hold URL characters (``ops/east``, ``what?``, ``#1``, ``50% done``, ``a&b``,
``über agent``, a name ending in ``/configure``, and the dot and reserved words): every link and
form the pages give for such an agent reaches that agent, never another one or a 404, and acts on
exactly it. Beside each awkward agent live the agents a pasted raw name would have reached
instead (``ops`` for ``ops/east`` and ``ops/configure``, ``what`` for ``what?``, ``a`` for ``a&b``),
each with a history of its own that must stay untouched.

The expected segment is written out here (``quote(safe="")``, plus ``%20`` for the few names a
browser cannot send as themselves) rather than taken from the app's helper, so the scheme itself
is under test."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from urllib.parse import quote

import httpx
import pytest

from ironspire.errors import Remedy
from ironspire.messages import Message
from ironspire.web.pages_agents import INHERIT
from ironspire.web.remedies import button
from ironspire.web.urls import agent_path, local_path, name_of, segment
from web.conftest import BASE, Browser
from workspace.loopback import Server, serving

AWKWARD = ["ops/east", "what?", "#1", "50% done", "a&b", "über agent", "ops/configure", "ops/delete",
           ".", "..", "new", "models", "%2F", "a+b c"]
DECOYS = ["ops", "what", "a", "east", "1", "50", "configure", "delete"]
UNPADDED = {".", "..", "new", "models"}
VOID = {"input", "link", "meta", "br", "img", "hr"}


def expected_segment(name: str) -> str:
    return quote(name, safe="") + ("%20" if name in UNPADDED else "")


class Elements(HTMLParser):
    """Every element of a page with its (unescaped) attributes, and the text of a few by id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.found.append((tag, values))
        if tag not in VOID:
            self._open.append((tag, values.get("id")))
            if values.get("id"):
                self.texts.setdefault(values["id"], "")

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, key in self._open:
            if key:
                self.texts[key] += data

    def one(self, tag: str, **attrs: str) -> dict[str, str]:
        hits = [a for t, a in self.found if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]
        assert len(hits) == 1, (tag, attrs, hits)
        return hits[0]


def _history(web: Browser, name: str, texts: list[str]) -> None:
    agent = web.ws.agent(name)
    web.ws.store.replace_history(agent.id, [("user" if i % 2 == 0 else "assistant",
                                             (Message.user if i % 2 == 0 else Message.assistant)(t).to_json())
                                            for i, t in enumerate(texts)])


def _texts(web: Browser, name: str) -> list[str]:
    return [e.message.text for e in web.ws.agent(name).transcript()]


def _decoys(web: Browser) -> None:
    for d in DECOYS:
        web.ws.create_agent(d)
        _history(web, d, [f"decoy {d}", f"decoy {d} reply"])


def _decoys_untouched(web: Browser) -> None:
    for d in DECOYS:
        assert _texts(web, d) == [f"decoy {d}", f"decoy {d} reply"], d
        assert web.ws.agent(d).inherits, d


async def _chat_page_of(web: Browser, url: str) -> Elements:
    page = await web.get(url)
    assert page.status_code == 200, (url, page.status_code, page.text[:300])
    return Elements(page.text)


def test_every_name_has_one_segment_that_reads_back_as_it() -> None:
    for name in [*AWKWARD, *DECOYS, "x/configure/", "a b", "ü/ö?#&=;"]:
        seg = segment(name)
        assert seg == expected_segment(name)
        assert "/" not in seg and "?" not in seg and "#" not in seg and seg not in (".", "..")
        assert name_of(seg) == name
        assert agent_path(name, "reset") == f"/agents/{seg}/reset"
        assert agent_path(name, api=True) == f"/api/agents/{seg}"


@pytest.mark.parametrize("name", AWKWARD)
async def test_the_agent_is_created_and_every_link_of_its_page_leads_back_to_it(web: Browser, name: str) -> None:
    _decoys(web)
    made = await web.post("/agents", {"name": name, "route": INHERIT})
    own = f"/agents/{expected_segment(name)}"
    assert made.status_code == 303 and made.headers["location"] == own
    _history(web, name, ["mine", "mine reply"])

    sidebar = Elements((await web.get("/agents/new")).text)
    assert sidebar.texts["form-title"].strip() == "New agent"  # /agents/new is still the form
    link = next(a for t, a in sidebar.found if t == "a" and a.get("class") == "agent-name"
                and a["href"] == own)
    chat = await _chat_page_of(web, link["href"])
    assert chat.one("section", **{"class": "chat"})["data-agent"] == name
    page_text = (await web.get(own)).text
    assert "mine reply" in page_text and "decoy" not in page_text.split('id="transcript"')[1]

    # the JSON twin and its history and HUD: this agent
    twin = chat.one("link", rel="alternate")["href"]
    assert twin == f"/api/agents/{expected_segment(name)}"
    assert (await web.api(twin))["name"] == name
    assert [m["parts"][0]["text"] for m in await web.api(twin + "/history")] == ["mine", "mine reply"]
    assert (await web.api(twin + "/hud"))["agent"] == name

    # configure: the link opens this agent's form, whose form and refresh come back to it
    configure = chat.one("a", id="configure")["href"]
    form = await _chat_page_of(web, configure)
    assert form.texts["form-title"].strip() == f"Configure {name}"
    assert form.one("form", id="agent-form")["action"] == configure
    assert form.one("input", name="return_to")["value"] == configure
    saved = await web.post(configure, {"system": "be brief", "effort": "low", "route": INHERIT})
    assert saved.status_code == 303 and saved.headers["location"] == own
    assert (web.ws.agent(name).system, web.ws.agent(name).effort) == ("be brief", "low")

    # switching in place, from the page's own form
    switch = chat.one("form", id="switch-form")["action"]
    switched = await web.post(switch, {"route": "openai|gpt-4.1"})
    assert switched.status_code == 303 and switched.headers["location"] == own
    assert (web.ws.agent(name).own_provider, web.ws.agent(name).own_model) == ("openai", "gpt-4.1")
    assert chat.one("form", id="composer")["action"] == f"{own}/turns"
    _decoys_untouched(web)


@pytest.mark.parametrize("name", AWKWARD)
async def test_drop_reset_and_delete_act_on_exactly_that_agent(web: Browser, name: str) -> None:
    _decoys(web)
    web.ws.create_agent(name)
    _history(web, name, ["m0", "m1", "m2", "m3"])
    own = f"/agents/{expected_segment(name)}"
    form = Elements((await web.get(f"{own}/configure")).text)
    actions = {f.get("id") or f["action"].rsplit("/", 1)[-1]: f["action"] for t, f in form.found
               if t == "form" and f.get("action", "").startswith(own + "/")}
    assert {actions["drop-last-form"], actions["reset"], actions["delete"]} == {
        f"{own}/drop-last", f"{own}/reset", f"{own}/delete"}

    for action, data, left in ((actions["drop-last-form"], {"count": "1"}, ["m0", "m1", "m2"]),
                               (actions["reset"], {}, [])):
        asked = await web.post(action, data)
        assert asked.status_code == 200
        confirm = Elements(asked.text)
        assert f"of {name}?" in confirm.texts["confirm-question"]
        assert confirm.one("a", id="confirm-no")["href"] == f"{own}/configure"
        yes = next(f for t, f in confirm.found if t == "form" and f.get("action") == action)
        done = await web.post(yes["action"], {**data, "confirm": "yes"})
        assert done.status_code == 303 and done.headers["location"] == own
        back = await _chat_page_of(web, done.headers["location"])
        assert back.one("section", **{"class": "chat"})["data-agent"] == name
        assert _texts(web, name) == left
        _decoys_untouched(web)

    question = Elements((await web.post(actions["delete"])).text)
    assert f"Delete the agent {name} and" in question.texts["confirm-question"]
    gone = await web.post(actions["delete"], {"confirm": "yes"})
    assert gone.status_code == 303 and gone.headers["location"] == "/"
    assert sorted(a.name for a in web.ws.agents()) == sorted(DECOYS)
    _decoys_untouched(web)
    missing = await web.get(own)
    assert missing.status_code == 400 and "no agent named" in missing.text


@pytest.mark.parametrize("name", ["ops/east", "what?", "#1", "50% done", "a&b", "über agent", "ops/configure", ".."])
async def test_a_turn_sent_from_the_composer_reaches_that_agent_and_its_fleet_link(web: Browser, name: str) -> None:
    with serving(Server("oa")) as (oa,):
        web.ws.set_provider_setting("openai", "base_url", oa.url + "/v1")
        web.ws.credentials.set("openai", "api_key", "openai-test-key-000000")
        _decoys(web)
        web.ws.create_agent(name, provider="openai", model="gpt-4.1")
        own = f"/agents/{expected_segment(name)}"
        composer = (await _chat_page_of(web, own)).one("form", id="composer")
        started = await web.post(composer["action"], {"message": "hello"}, json_answer=True)
        assert started.status_code == 202, started.text
        stream = (await web.get(started.json()["events"])).text
        done = [json.loads(block.split("data: ", 1)[1]) for block in stream.split("\n\n") if "event: done" in block]
        assert done and done[0]["hud"]["agent"] == name
        assert _texts(web, name) == ["hello", "oa: 1 messages, last: hello"]
        _decoys_untouched(web)

        fleet = Elements((await web.get("/analytics/fleet")).text)
        links = [a["href"] for t, a in fleet.found if t == "a" and a.get("href") == own]
        assert links, "the Fleet table links the agent by its own URL"
        back = await _chat_page_of(web, links[0])
        assert back.one("section", **{"class": "chat"})["data-agent"] == name


async def test_remedy_buttons_name_the_agent_by_its_own_url(web: Browser) -> None:
    _decoys(web)
    web.ws.create_agent("ops/east")
    move = button(Remedy("switch_agent", {"agent": "ops/east"}))
    assert move is not None and move["url"] == "/agents/ops%2Feast/reassign"
    moved = await web.post(move["url"], {"route": "openai|gpt-4.1"})
    assert moved.status_code == 303 and moved.headers["location"] == "/agents/ops%2Feast"
    assert web.ws.agent("ops/east").own_provider == "openai"
    choose = button(Remedy("choose_model", {}), "ops/east")
    assert choose is not None
    form = Elements((await web.get(choose["url"])).text)
    assert form.texts["form-title"].strip() == "Configure ops/east"
    _decoys_untouched(web)


async def test_a_name_nobody_has_is_refused_by_its_decoded_name(web: Browser) -> None:
    web.ws.create_agent("ops")
    for url in ("/agents/ops%2Feast", "/api/agents/ops%2Feast", "/api/agents/ops%2Feast/hud"):
        answer = await web.get(url)
        assert answer.status_code == 400 and "ops/east" in answer.text, url
    assert (await web.get("/agents/ops/east")).status_code == 404  # two segments: no such page


@pytest.mark.parametrize(("target", "followed"), [
    ("/settings/providers", True),
    ("/agents/a%26b?x=1", True),
    ("https://evil.example/", False),
    ("//evil.example/path", False),
    ("/\\evil.example", False),
    ("/\t/evil.example", False),
    ("javascript:alert(1)", False),
    ("evil.example", False),
])
async def test_reassign_follows_x_return_to_only_to_a_path_here(web: Browser, target: str, followed: bool) -> None:
    web.ws.create_agent("ops/east")
    answer = await web.post("/agents/ops%2Feast/reassign", {"route": "openai|gpt-4.1"},
                            headers={"x-return-to": target})
    assert answer.status_code == 303
    assert answer.headers["location"] == (target if followed else "/agents/ops%2Feast")
    assert web.ws.agent("ops/east").own_provider == "openai"


@pytest.mark.parametrize(("target", "expected"), [
    ("/agents", "/agents"), ("/agents/a%2Fb/configure?x=1", "/agents/a%2Fb/configure?x=1"),
    ("//evil.example", "/home"), ("/\\evil.example", "/home"), ("/\n/evil.example", "/home"),
    ("http://127.0.0.1:8780/agents", "/home"), ("", "/home"), (None, "/home"),
])
def test_local_path_keeps_only_paths_on_this_server(target: str | None, expected: str) -> None:
    assert local_path(target, "/home") == expected


async def test_the_token_redirect_keeps_the_path_as_sent_and_only_local(web: Browser) -> None:
    transport = httpx.ASGITransport(app=web.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as fresh:
        token = web.secrets.token
        kept = await fresh.get(f"/agents/ops%2Feast?token={token}&x=%3F")
        assert kept.status_code == 303 and kept.headers["location"] == "/agents/ops%2Feast?x=%3F"
        url = httpx.URL(BASE).copy_with(raw_path=f"//evil.example/?token={token}".encode())
        away = await fresh.send(fresh.build_request("GET", url))
        assert away.status_code == 303 and away.headers["location"] == "/"


def test_the_pages_build_no_agent_url_by_hand() -> None:
    """Every agent URL in the templates and the script comes from the one helper (the filter
    ``agent_url``, or a URL the server sent): a raw ``/agents/{{ name }}`` would break again."""
    from ironspire.web.state import HERE

    for path in [*sorted((HERE / "templates").glob("*.html")), HERE / "static" / "app.js"]:
        text = path.read_text(encoding="utf-8")
        assert "/agents/{{" not in text and "'/agents/' ~" not in text and "/agents/${" not in text, path.name
