"""The Analytics panel in Chromium against a real `ironspire serve`: changing the period or the
agent changes the numbers shown, the CSV link holds exactly the filtered rows, a turn made in the
chat (another tab) appears in Overview and Turns without a reload, and a turn whose provider sent
no usage is shown as unknown.

The ledger is the hand-made one of ``tests/workspace/test_analytics_kpis.py`` (its hand-computed
KPIs per period), written into the server's home beside it, as a second process would.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from browser.test_browser import click_through, send, wait
from support.serve_process import Serving, serve_env
from workspace.loopback import Server
from workspace.test_analytics_kpis import EXPECTED, _fill

pytestmark = pytest.mark.browser


@contextmanager
def beside(server: Serving) -> Iterator[Any]:
    """The server's workspace opened by this process (its environment: the same key store)."""
    from ironspire.workspace import Workspace

    saved = dict(os.environ)
    os.environ.update(serve_env(server.home))
    try:
        ws = Workspace.open(server.home)
        try:
            yield ws
        finally:
            ws.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Server]]:
    servers = {"counted": Server("counted"), "quiet": Server("quiet", "no_usage")}
    for s in servers.values():
        s.start()
    try:
        yield servers
    finally:
        for s in servers.values():
            s.stop()


@pytest.fixture(scope="module")
def page(driver: Any, server: Serving, fakes: dict[str, Server]) -> Any:
    from ironspire.catalog.providers import CustomEndpoint

    with beside(server) as ws:
        ws.add_custom_endpoint(CustomEndpoint("Counted", fakes["counted"].url + "/v1", "m"))
        ws.add_custom_endpoint(CustomEndpoint("Quiet", fakes["quiet"].url + "/v1", "m"))
        for name in ("coder", "writer", "local", "sub"):
            ws.create_agent(name, provider="custom-counted", model="m")
        ws.create_agent("quiet", provider="custom-quiet", model="m")
        _fill(ws, time.time())
    driver.get(server.url)
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1']"))
    return driver


def kpi(page: Any, name: str) -> str:
    return str(page.find_element(By.CSS_SELECTOR, f'[data-kpi="{name}"] .value').text)


def open_overview(page: Any, server: Serving, query: str) -> None:
    page.get(f"{server.base}/analytics/overview?{query}")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1'][data-page='analytics']"))


def test_changing_the_period_or_the_agent_changes_the_numbers(page: Any, server: Serving) -> None:
    open_overview(page, server, "period=24h")
    assert kpi(page, "turns") == str(EXPECTED["24h"][7]) and kpi(page, "active_agents") == str(EXPECTED["24h"][3])
    old = page.find_element(By.TAG_NAME, "body")
    Select(page.find_element(By.ID, "filter-period")).select_by_value("90d")  # submits on change
    wait(page, lambda d: old != d.find_element(By.TAG_NAME, "body") and "period=90d" in d.current_url)
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1']"))
    assert kpi(page, "turns") == str(EXPECTED["90d"][7]) and kpi(page, "total_spend_usd") == "$4.17"
    old = page.find_element(By.TAG_NAME, "body")
    Select(page.find_element(By.ID, "filter-agent")).select_by_value("writer")
    wait(page, lambda d: "agent=writer" in d.current_url and d.find_element(By.CSS_SELECTOR, "body[data-ready='1']"))
    assert kpi(page, "turns") == "2" and kpi(page, "total_spend_usd") == "$3.05"  # r2 + r8; r3 failed
    assert page.find_elements(By.CSS_SELECTOR, "[data-chart='spend'] rect[data-series='writer']")


def test_the_csv_link_holds_exactly_the_filtered_rows(page: Any, server: Serving) -> None:
    open_overview(page, server, "period=90d&agent=writer")
    href = page.find_element(By.ID, "csv-turns").get_attribute("href")
    text = page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done);", href)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["agent"], r["outcome"]) for r in rows] == [("writer", "ok"), ("writer", "RateLimitError"),
                                                          ("writer", "ok")]


def chat_in_new_tab(page: Any, server: Serving, agent: str, text: str) -> None:
    analytics_tab = page.current_window_handle
    page.switch_to.new_window("tab")
    page.get(f"{server.base}/agents/{agent}")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1'][data-page='chat']"))
    before = len(page.find_elements(By.CSS_SELECTOR, "#transcript .msg.assistant[data-done='1']"))
    send(page, text)
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#transcript .msg.assistant[data-done='1']")) > before)
    page.close()
    page.switch_to.window(analytics_tab)


def test_a_chat_turn_appears_in_overview_and_turns_without_a_reload(page: Any, server: Serving) -> None:
    open_overview(page, server, "period=1h")
    turns = int(kpi(page, "turns"))
    page.execute_script("window.notReloaded = true;")
    chat_in_new_tab(page, server, "coder", "hello from the chat")
    wait(page, lambda d: int(kpi(d, "turns")) == turns + 1)
    assert page.execute_script("return window.notReloaded === true;")

    page.get(f"{server.base}/analytics/turns?period=1h")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1'][data-page='analytics']"))
    rows = len(page.find_elements(By.CSS_SELECTOR, "#turns tbody tr"))
    page.execute_script("window.notReloaded = true;")
    chat_in_new_tab(page, server, "coder", "and another")
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#turns tbody tr")) == rows + 1)
    first = page.find_element(By.CSS_SELECTOR, "#turns tbody tr")
    assert "coder" in first.text and "custom-counted / m" in first.text
    assert page.execute_script("return window.notReloaded === true;")


def test_a_turn_without_usage_is_shown_as_unknown(page: Any, server: Serving) -> None:
    chat_in_new_tab(page, server, "quiet", "say something")
    page.get(f"{server.base}/analytics/turns?period=1h&agent=quiet")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1'][data-page='analytics']"))
    row = page.find_element(By.CSS_SELECTOR, "#turns tbody tr")
    assert row.get_attribute("data-usage-state") == "unknown"
    assert "unknown" in row.find_elements(By.TAG_NAME, "td")[3].text  # tokens
    assert row.find_elements(By.TAG_NAME, "td")[4].text == "unknown"  # cost: not $0
    click_through(page, "[data-subtab='overview']")
    flag = page.find_element(By.CSS_SELECTOR, "[data-unknown-usage]")
    assert flag.get_attribute("data-unknown-usage") == "1" and "unknown usage" in flag.text


@pytest.mark.parametrize("size", [(1280, 800), (420, 800)])
def test_the_panel_fits_the_window_at_1280x800_and_narrow(page: Any, server: Serving, size: tuple[int, int]) -> None:
    page.set_window_size(*size)
    try:
        for tab in ("overview", "fleet", "models", "turns", "reliability"):
            page.get(f"{server.base}/analytics/{tab}?period=90d")
            wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='1'][data-page='analytics']"))
            # wide tables scroll inside their own box; the page itself never scrolls sideways
            overflow = page.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
            assert overflow <= 1, (tab, size, overflow)
            for chart in page.find_elements(By.CSS_SELECTOR, "figure.chart > svg"):
                assert 0 < chart.size["width"] <= size[0], (tab, size, chart.size)
                labels = chart.find_elements(By.CSS_SELECTOR, "text.label")
                assert all(label.text for label in labels)  # axes keep their titles
            # a legend's colour swatch stays a small square beside its name, never a block that
            # pushes the next chart down the page
            for swatch in page.find_elements(By.CSS_SELECTOR, "figure.chart .legend .swatch"):
                assert 4 <= swatch.size["width"] <= 20 and 4 <= swatch.size["height"] <= 20, (tab, size, swatch.size)
            for figure in page.find_elements(By.CSS_SELECTOR, "figure.chart"):
                drawn = figure.find_element(By.CSS_SELECTOR, ":scope > svg").size["height"]
                assert figure.size["height"] <= drawn + 160, (tab, size, figure.size, drawn)
    finally:
        page.set_window_size(1400, 1000)
