"""An agent whose name holds a slash, in Chromium against a real `ironspire serve` and the real
llama.cpp model: clicking ``ops/east`` in the sidebar opens that agent (not ``ops``, whose
configure page a pasted ``/agents/ops/east``-style URL would reach), a message sent there is
answered there, and only its history grows."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By

from browser.test_analytics_browser import beside
from browser.test_browser import click_through, last_reply, send, wait
from support.serve_process import Serving

pytestmark = pytest.mark.browser

MODEL = ("custom-local-llama", "smollm2")


@pytest.fixture(scope="module")
def page(driver: Any, server: Serving, llamacpp_server: str) -> Any:
    from ironspire.catalog.providers import CustomEndpoint

    with beside(server) as ws:
        ws.add_custom_endpoint(CustomEndpoint("local llama", llamacpp_server, MODEL[1], context_window=2048,
                                              max_output_tokens=256))
        for name in ("ops", "ops/east", "east"):
            ws.create_agent(name, provider=MODEL[0], model=MODEL[1], system="You are brief.")
    driver.get(server.url)
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1']"))
    return driver


def fetch_json(page: Any, url: str) -> Any:
    return page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.json()).then(done);", url)


def test_clicking_ops_east_opens_it_and_its_reply_arrives_there(page: Any, server: Serving) -> None:
    page.get(server.base + "/agents/ops")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1'][data-page='chat']"))
    click_through(page, 'li[data-agent="ops/east"] a.agent-name')
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-page='chat']"))
    assert page.current_url == server.base + "/agents/ops%2Feast"
    assert page.find_element(By.CSS_SELECTOR, "section.chat").get_attribute("data-agent") == "ops/east"
    assert page.title.startswith("ops/east ")

    send(page, "Say hello in one word.")
    wait(page, lambda d: last_reply(d).get_attribute("data-done") == "1", timeout=90)
    assert last_reply(page).find_element(By.CSS_SELECTOR, ".text").text.strip()
    assert f"{MODEL[0]}/{MODEL[1]}" in last_reply(page).find_element(By.CSS_SELECTOR, "[data-by]").text

    twin = page.find_element(By.CSS_SELECTOR, 'link[rel="alternate"]').get_attribute("href")
    history = fetch_json(page, twin + "/history")
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["parts"][0]["text"] == "Say hello in one word."
    for other in ("ops", "east"):
        assert fetch_json(page, f"{server.base}/api/agents/{other}/history") == [], other

    # the page drawn again by the server shows the same conversation, and Configure is this agent's
    page.refresh()
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1'][data-page='chat']"))
    assert len(page.find_elements(By.CSS_SELECTOR, "#transcript .msg")) == 2
    click_through(page, "#configure")
    assert page.find_element(By.ID, "form-title").text == "Configure ops/east"
