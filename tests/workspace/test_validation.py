"""Issue 17 items 5, 10, 11: a name, a URL or a number that would break later commands or leak
a credential is refused when it is set, with a clear error, and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import ConfigurationError
from ironspire.workspace import Workspace

BAD_URLS = {
    "http://api.example\r\nX-Injected: 1": "control character",
    "http://api.example/v1\n": "control character",
    "http://[::1": "not a valid URL",
    "http://[zz::1]:8080/v1": "IPv6",
    "http://user:secret@api.example/v1": "credentials",
    "https://token@api.example/v1": "credentials",
    "http://api.example:99999/": "not a valid URL|out of range",
    "http:///v1": "no host",
}


@pytest.mark.parametrize("url", list(BAD_URLS))
def test_a_bad_base_url_is_refused_when_set(ws: Workspace, url: str) -> None:
    with pytest.raises(ConfigurationError, match=BAD_URLS[url]):
        ws.set_provider_setting("openai", "base_url", url)
    with pytest.raises(ConfigurationError, match=BAD_URLS[url]):
        ws.add_custom_endpoint(CustomEndpoint("gw", url, "m"))
    assert "base_url" not in ws.provider_settings("openai") and ws.custom_endpoints() == []


def test_good_urls_still_pass(ws: Workspace) -> None:
    for url in ("http://127.0.0.1:11434", "https://api.example/v1", "http://[::1]:8080/v1", "http://[fe80::1%25eth0]/"):
        ws.set_provider_setting("openai", "base_url", url)
        assert ws.provider_settings("openai")["base_url"] == url


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "-1", "0", "soon"])
def test_a_timeout_must_be_finite_positive_and_bounded(ws: Workspace, value: str) -> None:
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        ws.set_provider_setting("openai", "timeout", value)
    with pytest.raises(ConfigurationError, match="health_interval"):
        ws.set_setting("health_interval", value)
    assert "timeout" not in ws.provider_settings("openai")
    ws.set_provider_setting("openai", "timeout", "30")
    assert ws.target("openai").timeout == 30.0


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e300, -5, 0, "lots"])
def test_max_tokens_must_be_a_sensible_whole_number(ws: Workspace, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_tokens"):
        ws.set_setting("max_tokens", value)
    assert ws.setting("max_tokens") is None


def test_a_header_setting_refuses_control_characters(ws: Workspace) -> None:
    with pytest.raises(ConfigurationError, match="control character"):
        ws.set_provider_setting("azure-openai", "deployment", "dep\r\nX-Evil: 1")


@pytest.mark.parametrize("name", ["bad\x1b]0;pwned\x07", "a\x1b[31mred", "line\nbreak", "nul\x00", "zero\u200bwidth",
                                  "bidi\u202eflip", "x" * 101, "   "])
def test_agent_names_are_printable_and_bounded(ws: Workspace, name: str) -> None:
    with pytest.raises(ConfigurationError, match="name"):
        ws.create_agent(name)
    with pytest.raises(ConfigurationError, match="name"):
        ws.add_custom_endpoint(CustomEndpoint(name, "http://127.0.0.1:9/v1", "m"))
    assert ws.agents() == []


def test_an_import_refuses_bad_names_and_urls(ws: Workspace, tmp_path: Path) -> None:
    base = {"format": "ironspire-export", "version": 1, "settings": {}, "providers": {}, "custom_endpoints": []}
    for extra in ({"agents": [{"name": "evil\x1b[2J"}]},
                  {"agents": [], "providers": {"openai": {"settings": {"base_url": "http://u:p@h.example"}}}}):
        path = tmp_path / "x.json"
        path.write_text(json.dumps({**base, **extra}))
        with pytest.raises(ConfigurationError):
            ws.import_(path)
    assert ws.agents() == [] and "base_url" not in ws.provider_settings("openai")


def test_names_with_markup_are_allowed_and_kept_verbatim(ws: Workspace) -> None:
    for name in ("[/]", "[bold]x", "café ☕"):
        assert ws.create_agent(name).name == name
