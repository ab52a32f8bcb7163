"""The web app in Chromium, as a person uses it, against a real `ironspire serve`, loopback fake
providers (answering 200 / 401 / 429, or holding a stream open) and the real llama.cpp model.

The tests share one server and one browser and run in order, as one session would: keys and
dots, a custom endpoint on the real model, an agent with an effort level, a streamed reply,
a switch mid-conversation, disable / warning / reassign, Stop, and the context bar.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from browser.conftest import screenshot
from support.serve_process import Serving
from workspace.loopback import Server

pytestmark = pytest.mark.browser

WAIT = 30.0


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Server]]:
    servers = {
        "ok": Server("fake-ok"),  # mistral: 200 everywhere
        "refused": Server("fake-401", status=401, probe_status=401),  # deepseek: the key is rejected
        "throttled": Server("fake-429", status=429, probe_status=429),  # xai: rate-limited
        "slow": Server("fake-slow", hold_after=4),  # custom: a stream that stops mid-way
        "tiny": Server("fake-tiny"),  # custom: a 1,000-token window
    }
    for s in servers.values():
        s.start()
    try:
        yield servers
    finally:
        for s in servers.values():
            s.gate.set()
            s.stop()


@pytest.fixture(scope="module")
def page(driver: Any, server: Serving) -> Any:
    driver.get(server.url)  # the printed URL: the token becomes the session cookie
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1']"))
    assert "token=" not in driver.current_url
    return driver


def wait(driver: Any, condition: Any, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException

    try:  # a page being replaced (a form posted, a redirect) is not an answer yet
        ignored = (NoSuchElementException, StaleElementReferenceException)
        return WebDriverWait(driver, timeout, ignored_exceptions=ignored).until(condition)
    except TimeoutException:
        dots = {e.get_attribute("data-dot"): e.get_attribute("class")
                for e in driver.find_elements(By.CSS_SELECTOR, "[data-dot]")}
        details = {e.get_attribute("data-detail"): e.text
                   for e in driver.find_elements(By.CSS_SELECTOR, "[data-detail]")}
        shot = screenshot(driver, "failure")
        raise AssertionError(f"timed out on {driver.current_url}; dots {dots}; details {details}; see {shot}") from None


def dot(driver: Any, pid: str) -> str:
    element = driver.find_element(By.CSS_SELECTOR, f'[data-dot="{pid}"]')
    return str(element.get_attribute("class"))


def replaced(old: Any) -> Any:
    """Like ``staleness_of``, but Chromium also reports an element of a document already replaced
    as "does not belong to the document" (an inspector error rather than a stale reference):
    that too means the new page is there."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def gone(_: Any) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return gone


def click_through(driver: Any, selector: str) -> None:
    """Clicks something that loads a new page, and waits for that page (not the old one) to be ready."""
    old = driver.find_element(By.TAG_NAME, "body")
    driver.find_element(By.CSS_SELECTOR, selector).click()
    wait(driver, replaced(old))
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1']"))


def open_providers(driver: Any, server: Serving) -> None:
    driver.get(server.base + "/settings/providers")
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1'][data-page='providers']"))


def typed(driver: Any, selector: str, text: str) -> None:
    """Types into a field of a page that live updates may re-render: a field replaced while
    Chromium held it is found again and typed into afresh (not an answer of the app's)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    for attempt in range(3):
        try:
            box = driver.find_element(By.CSS_SELECTOR, selector)
            box.clear()
            box.send_keys(text)
            return
        except (StaleElementReferenceException, WebDriverException) as exc:
            replaced = isinstance(exc, StaleElementReferenceException) or "does not belong to the document" in str(exc)
            if attempt == 2 or not replaced:
                raise
            time.sleep(0.2)


def set_url_and_key(driver: Any, server: Serving, pid: str, url: str, key: str) -> None:
    open_providers(driver, server)
    typed(driver, f'[data-base-url="{pid}"]', url)
    click_through(driver, f'[data-save-url="{pid}"]')
    typed(driver, f'[data-secret-input="{pid}:api_key"]', key)
    click_through(driver, f'[data-save="{pid}:api_key"]')


def test_keys_are_added_and_dots_turn_green_red_yellow(page: Any, server: Serving, fakes: dict[str, Server]) -> None:
    for pid, fake, key in (("mistral", fakes["ok"], "ms-browser-key-0001"),
                           ("deepseek", fakes["refused"], "ds-browser-key-0002"),
                           ("xai", fakes["throttled"], "xai-browser-key-0003")):
        set_url_and_key(page, server, pid, fake.url + "/v1", key)
        assert key not in page.page_source  # write-only: never shown again
    open_providers(page, server)
    wait(page, lambda d: "green" in dot(d, "mistral") and "red" in dot(d, "deepseek") and "yellow" in dot(d, "xai"))
    assert "invalid key" in page.find_element(By.CSS_SELECTOR, '[data-state-label="deepseek"]').text
    assert "until" in page.find_element(By.CSS_SELECTOR, '[data-until="xai"]').text
    assert page.find_element(By.CSS_SELECTOR, '[data-source="mistral:api_key"]').text == "encrypted file"
    screenshot(page, "providers")


def test_dots_follow_live_traffic_without_a_reload(page: Any, server: Serving, fakes: dict[str, Server]) -> None:
    open_providers(page, server)
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-health='live']"))
    assert "green" in dot(page, "mistral")
    marker = page.execute_script("window.__same_page = 1; return 1;")
    csrf = page.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]').get_attribute("content")
    fakes["ok"].status = 429  # the provider starts throttling real requests...
    fakes["ok"].retry_after = "4"  # ...briefly: the turn retries twice, then fails, and the dot stays yellow 4 s
    try:
        with server.client() as script:
            script.post("/agents", data={"name": "traffic", "route": "mistral|mistral-large-2512"},
                        headers={"x-csrf-token": csrf})
            started = script.post("/agents/traffic/turns", data={"message": "hi"},
                                  headers={"x-csrf-token": csrf, "accept": "application/json"})
            assert started.status_code == 202, started.text
        wait(page, lambda d: "yellow" in dot(d, "mistral"), timeout=40)
        assert page.execute_script("return window.__same_page") == marker  # pushed, not reloaded
    finally:
        fakes["ok"].status = 200
        fakes["ok"].retry_after = "30"
    page.find_element(By.CSS_SELECTOR, '[data-refresh="mistral"]').click()  # the refresh icon checks it now
    wait(page, lambda d: "green" in dot(d, "mistral"))
    page.find_element(By.ID, "check-all").click()
    wait(page, lambda d: "red" in dot(d, "deepseek") and "yellow" in dot(d, "xai"))


def test_a_custom_endpoint_is_added_and_checked_at_once(page: Any, server: Serving, llamacpp_server: str) -> None:
    open_providers(page, server)
    typed(page, '#custom-form [name="name"]', "local llama")
    typed(page, '#custom-form [name="base_url"]', "not a url")
    typed(page, '#custom-form [name="model_id"]', "smollm2")
    click_through(page, "#custom-save")
    error = wait(page, ec.presence_of_element_located((By.ID, "custom-error")))
    assert "not a valid URL" in error.text
    assert not page.find_elements(By.ID, "card-custom-local-llama")  # nothing saved
    typed(page, '#custom-form [name="base_url"]', llamacpp_server)
    typed(page, '#custom-form [name="context_window"]', "2048")
    typed(page, '#custom-form [name="display_name"]', "SmolLM2 (local)")
    click_through(page, "#custom-save")
    wait(page, lambda d: d.find_elements(By.ID, "card-custom-local-llama"))
    wait(page, lambda d: "green" in dot(d, "custom-local-llama"))  # checked as it was saved


def test_an_agent_is_created_with_an_effort_level(page: Any, server: Serving) -> None:
    page.get(server.base + "/agents/new")
    page.find_element(By.ID, "agent-name").send_keys("helper")
    page.find_element(By.ID, "agent-system").send_keys("You are brief.")
    page.find_element(By.CSS_SELECTOR, '[data-effort="low"]').click()
    page.find_element(By.CSS_SELECTOR, 'input[name="route"][value="custom-local-llama|smollm2"]').click()
    click_through(page, "#agent-save")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-page='chat'][data-ready='1']"))
    assert page.current_url.endswith("/agents/helper")
    # the local model does not reason, so the level is kept for the agent but not sent: the chip says so
    chip = page.find_element(By.CSS_SELECTOR, '[data-hud="effort"]')
    assert chip.text == "effort low · unused" and "unused" in chip.get_attribute("class")
    assert page.find_element(By.CSS_SELECTOR, '[data-hud="route"]').text == "custom-local-llama/smollm2"


def send(page: Any, text: str) -> None:
    box = page.find_element(By.ID, "message")
    box.clear()
    box.send_keys(text)
    page.find_element(By.ID, "send").click()


def last_reply(page: Any) -> Any:
    """The newest reply; none yet is "not found", which a wait keeps waiting through."""
    from selenium.common.exceptions import NoSuchElementException

    replies = page.find_elements(By.CSS_SELECTOR, "#transcript .msg.assistant")
    if not replies:
        raise NoSuchElementException("no reply in the transcript yet")
    return replies[-1]


def test_a_streamed_reply_arrives_in_the_page(page: Any, server: Serving) -> None:
    # the page records what it shows while the reply streams (polling from here could miss a fast
    # local model's whole stream between two looks)
    page.execute_script("""
        window.__seen = [];
        new MutationObserver(() => {
            const live = document.querySelector('#transcript .msg.assistant.streaming .text');
            if (live) window.__seen.push(live.textContent.length);
        }).observe(document.getElementById('transcript'), {subtree: true, childList: true, characterData: true});
    """)
    send(page, "Name three colours.")
    wait(page, lambda d: last_reply(d).get_attribute("data-done") == "1", timeout=60)
    seen = page.execute_script("return window.__seen")
    growing = sorted(set(n for n in seen if n > 0))
    assert len(growing) >= 2, f"the reply never grew in the page while streaming: {seen}"
    assert last_reply(page).find_element(By.CSS_SELECTOR, ".text").text.strip()
    assert "custom-local-llama/smollm2" in last_reply(page).find_element(By.CSS_SELECTOR, "[data-by]").text


def test_switching_mid_conversation_keeps_the_history(page: Any, server: Serving) -> None:
    Select(page.find_element(By.ID, "switch-route")).select_by_value("mistral|mistral-large-2512")
    click_through(page, "#switch-button")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, '[data-hud="route"]').text == "mistral/mistral-large-2512")
    assert len(page.find_elements(By.CSS_SELECTOR, "#transcript .msg")) == 2  # the history is still there
    send(page, "and again")
    wait(page, lambda d: last_reply(d).get_attribute("data-done") == "1")
    answer = last_reply(page).find_element(By.CSS_SELECTOR, ".text").text
    assert answer == "fake-ok: 4 messages, last: and again"  # the system prompt, the two earlier turns, this one
    bys = [e.text for e in page.find_elements(By.CSS_SELECTOR, "#transcript [data-by]")]
    assert bys == ["custom-local-llama/smollm2", "mistral/mistral-large-2512"]


def test_disabling_a_provider_warns_in_the_sidebar_and_reassign_clears_it(page: Any, server: Serving) -> None:
    open_providers(page, server)
    click_through(page, '[data-toggle="mistral"]')
    warning = wait(page, ec.presence_of_element_located((By.CSS_SELECTOR, '[data-warning-for="helper"]')))
    assert "mistral is disabled" in warning.text
    click_through(page, '[data-reassign="helper"]')
    assert not page.find_elements(By.CSS_SELECTOR, '[data-warning-for="helper"]')
    page.get(server.base + "/agents/helper")
    assert len(page.find_elements(By.CSS_SELECTOR, "#transcript .msg")) == 4  # nothing lost
    assert page.find_element(By.CSS_SELECTOR, '[data-hud="route"]').text != "mistral/mistral-large-2512"


def test_a_reply_is_stopped_mid_stream(page: Any, server: Serving, fakes: dict[str, Server]) -> None:
    with server.client() as script:
        csrf = page.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]').get_attribute("content")
        script.post("/settings/providers/custom", data={"name": "slow box", "base_url": fakes["slow"].url + "/v1",
                                                        "model_id": "slow-1"}, headers={"x-csrf-token": csrf})
    page.get(server.base + "/agents/new")
    page.find_element(By.ID, "agent-name").send_keys("talker")
    page.find_element(By.CSS_SELECTOR, 'input[name="route"][value="custom-slow-box|slow-1"]').click()
    click_through(page, "#agent-save")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-page='chat'][data-ready='1']"))
    send(page, "tell me a very long story please")
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#transcript .msg.assistant .text"))
    stop = page.find_element(By.ID, "stop")
    assert stop.is_enabled()
    stop.click()
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#transcript .msg.assistant.stopped"))
    assert page.find_element(By.ID, "send").is_enabled()
    with server.client() as script:
        history = script.get("/api/agents/talker/history?all=1").json()
    assert [(m["role"], m["status"]) for m in history] == [("user", "unanswered")]


def test_the_context_bar_changes_colour(page: Any, server: Serving, fakes: dict[str, Server]) -> None:
    with server.client() as script:
        csrf = page.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]').get_attribute("content")
        script.post("/settings/providers/custom", data={"name": "tiny", "base_url": fakes["tiny"].url + "/v1",
                                                        "model_id": "t1", "context_window": "1000", "tools": "1"},
                    headers={"x-csrf-token": csrf})
        script.post("/agents", data={"name": "filler", "route": "custom-tiny|t1"}, headers={"x-csrf-token": csrf})
    page.get(server.base + "/agents/filler")
    bar = page.find_element(By.ID, "context-bar")
    assert bar.get_attribute("data-level") == "ok"
    calm = bar.value_of_css_property("animation-name")
    send(page, "lorem ipsum " * 125)
    wait(page, lambda d: d.find_element(By.ID, "context-bar").get_attribute("data-level") == "warn")
    send(page, "dolor sit amet " * 20)
    wait(page, lambda d: d.find_element(By.ID, "context-bar").get_attribute("data-level") == "alarm")
    bar = page.find_element(By.ID, "context-bar")
    assert "ctx-alarm" in str(bar.get_attribute("class"))
    assert bar.value_of_css_property("animation-name") == "pulse" != calm
    screenshot(page, "chat")


def test_a_failed_turn_shows_its_error_and_the_remedy_button(page: Any, server: Serving) -> None:
    with server.client() as script:
        csrf = page.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]').get_attribute("content")
        script.post("/agents", data={"name": "refused", "route": "deepseek|deepseek-flash"},
                    headers={"x-csrf-token": csrf})
    page.get(server.base + "/agents/refused")
    send(page, "hello?")
    panel = wait(page, ec.presence_of_element_located((By.CSS_SELECTOR, ".turn-error")))
    assert panel.get_attribute("data-error-type") == "AuthenticationError"
    assert "deepseek" in panel.text and "Incorrect API key" in panel.text
    fix = panel.find_element(By.CSS_SELECTOR, '[data-remedy="link"]')
    assert fix.text == "Set the key" and fix.get_attribute("href").endswith("/settings/providers#card-deepseek")
    fix.click()
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-page='providers'][data-ready='1']"))


def test_a_fallback_answer_is_named_under_the_reply_and_in_the_hud(page: Any, server: Serving) -> None:
    # xAI is throttled (the fake answers 429); the tiny custom endpoint is the fallback, set in the form
    page.get(server.base + "/agents/new")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-page='agent-form'][data-ready='1']"))
    page.find_element(By.ID, "agent-name").send_keys("rescued")
    page.find_element(By.CSS_SELECTOR, 'input[name="route"][value="xai|grok-4.3"]').click()
    page.find_element(By.ID, "agent-fallback").send_keys("custom-tiny/t1")
    click_through(page, "#agent-save")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-page='chat'][data-ready='1']"))
    assert page.find_element(By.CSS_SELECTOR, '[data-hud="fallback"]').text == "custom-tiny/t1"
    send(page, "hello?")
    wait(page, lambda d: last_reply(d).get_attribute("data-done") == "1")
    notice = last_reply(page).find_element(By.CSS_SELECTOR, "[data-fallback]").text
    assert notice.startswith("answered by custom-tiny/t1 (fallback; xai/grok-4.3: ")
    hud = page.find_element(By.CSS_SELECTOR, '[data-hud="last-fallback"]')
    assert hud.is_displayed() and hud.text == notice
    assert page.find_element(By.CSS_SELECTOR, '[data-hud="route"]').text == "xai/grok-4.3"  # its own route kept
    old = page.find_element(By.TAG_NAME, "body")
    page.refresh()  # the notice is part of the stored reply, not only of the live page
    wait(page, replaced(old))
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1']"))
    assert last_reply(page).find_element(By.CSS_SELECTOR, "[data-fallback]").text == notice
