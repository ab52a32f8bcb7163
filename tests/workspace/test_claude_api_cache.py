"""Prompt caching on claude-api as a user turns it on (the provider setting ``prompt_cache``), and
the cache read/write counts Anthropic reports landing in the ledger and its cost.

The responses are a real recording (realdata/anthropic/pydantic-ai ... cache_real_api.yaml: turn
one read 1111 cached tokens, turn two read 1111 and wrote 418), served through the workspace's
own Transport and the real adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ironspire.workspace import Workspace
from support.recordings import load
from support.replay import ReplayTransport, Server
from workspace.conftest import FakeHealth


async def test_prompt_cache_setting_and_cache_usage_in_the_ledger(
    realdata: Path, tmp_path: Path, memory_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")
    recorded = load(realdata / "anthropic" / "pydantic-ai__test_anthropic__test_anthropic_cache_real_api.yaml")
    server = Server(recorded, keep=(), content_type="application/json")
    ws = Workspace.open(tmp_path / "ws", health=FakeHealth, transport=ReplayTransport(server))
    try:
        ws.set_provider_setting("claude-api", "prompt_cache", "5m")  # ironspire providers set claude-api ...
        agent = ws.create_agent("cached", provider="claude-api", model="claude-sonnet-5",
                                system="You are a helpful assistant.")
        question = recorded[0].request_json["messages"][0]["content"][0]["text"]
        await agent.send(question)
        await agent.send("Can you summarize that in one sentence?")
        rows = sorted(ws.analytics.turns(), key=lambda r: r["at"])
    finally:
        await ws.aclose()

    mark = {"type": "ephemeral", "ttl": "5m"}
    for body in server.bodies():
        assert body["system"][0]["cache_control"] == mark
        assert body["messages"][-1]["content"][-1]["cache_control"] == mark
    assert [(r["input_tokens"], r["output_tokens"], r["cache_read_tokens"], r["cache_write_tokens"]) for r in rows] \
        == [(3, 406, 1111, 0), (3, 33, 1111, 418)]
    # claude-sonnet-5 per million tokens: input $2, output $10, cache read $0.20, cache write $2.50
    assert rows[1]["cost_usd"] == pytest.approx((3 * 2 + 33 * 10 + 1111 * 0.2 + 418 * 2.5) / 1e6)
    assert rows[1]["api_cost_usd"] == pytest.approx(rows[1]["cost_usd"])


def test_prompt_cache_is_a_provider_setting_only_where_the_adapter_reads_it(ws: Workspace) -> None:
    ws.set_provider_setting("claude-api", "prompt_cache", "1h")
    assert ws.target("claude-api", "claude-sonnet-5").settings["prompt_cache"] == "1h"
    with pytest.raises(Exception, match="no setting 'prompt_cache'"):
        ws.set_provider_setting("openai", "prompt_cache", "5m")


def test_caching_and_inline_think_settings_go_where_their_adapters_read_them(ws: Workspace) -> None:
    from ironspire.errors import ConfigurationError
    from ironspire.protocols import inline_think
    from ironspire.protocols._openai_wire import provider_quirks

    def splits(provider: str, model: str) -> bool:
        target = ws.target(provider, model)
        return inline_think.enabled(target, provider_quirks(target).inline_think)

    assert not splits("openai", "gpt-4.1") and splits("together", "deepseek-ai/DeepSeek-R1")

    ws.set_provider_setting("bedrock", "prompt_cache", "1h")
    ws.set_provider_setting("google", "cached_content", "cachedContents/brief")
    ws.set_provider_setting("openai", "inline_think", "on")
    assert splits("openai", "gpt-4.1")  # the setting turns it on where it is off by default
    ws.set_provider_setting("together", "inline_think", "off")
    assert not splits("together", "deepseek-ai/DeepSeek-R1")
    ws.set_setting("prompt_cache", "24h")
    assert ws.setting("prompt_cache") == "24h"
    with pytest.raises(ConfigurationError, match="prompt_cache must be one of"):
        ws.set_setting("prompt_cache", "forever")
