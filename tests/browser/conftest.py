"""A real browser (Debian's Chromium, driven by Selenium through the system chromedriver) against
a real `ironspire serve` process. Every test module here is marked ``browser``: `scripts/test.sh --fast`
deselects them, the full command (which installs chromium and chromium-driver when missing) runs
them. Screenshots, when a test takes one, go to the temporary directory, never into the repo."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.serve_process import Serving, serving

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"{path} is missing: run `bash scripts/test.sh` (it installs chromium and chromium-driver "
                        "with apt-get), or `apt-get install chromium chromium-driver`")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="module")
def driver(chromium_paths: tuple[str, str]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ironspire-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_paths[0]
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(service=Service(chromium_paths[1]), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    with serving(tmp_path_factory.mktemp("serve") / "home") as s:
        yield s


def screenshot(browser: Any, name: str) -> Path:
    """For a person checking the page by eye; kept outside the repository."""
    path = Path(tempfile.gettempdir()) / f"ironspire-{name}.png"
    browser.save_screenshot(str(path))
    return path
