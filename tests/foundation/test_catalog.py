"""The catalogue and the registry are what users pick from: their contents are the product."""

from __future__ import annotations

from collections import Counter

import pytest

from ironspire.catalog.models import Registry
from ironspire.catalog.providers import BUILTIN_PROVIDERS, CustomEndpoint, builtin
from ironspire.errors import ConfigurationError, ModelNotFound
from ironspire.messages import Usage

SPEC_ORDER = [
    ("primary", ["claude-sdk", "claude-api", "openai", "ollama"]),
    ("cloud", ["google", "bedrock", "azure-openai"]),
    ("openai-compatible", ["mistral", "deepseek", "xai", "groq", "together", "fireworks"]),
]


def test_thirteen_builtins_in_spec_order_and_groups() -> None:
    expected = [(g, pid) for g, ids in SPEC_ORDER for pid in ids]
    assert [(p.group, p.id) for p in BUILTIN_PROVIDERS] == expected


def test_auth_fields_per_provider() -> None:
    def names(pid: str) -> list[str]:
        return [f.name for f in builtin(pid).auth]

    for pid in ("claude-api", "openai", "google", "mistral", "deepseek", "xai", "groq", "together", "fireworks"):
        assert names(pid) == ["api_key"]
    assert names("claude-sdk") == [] and "Claude CLI" in builtin("claude-sdk").auth_note
    assert names("ollama") == [] and builtin("ollama").base_url == "http://localhost:11434"
    assert names("bedrock") == ["access_key_id", "secret_access_key", "session_token", "region"]
    assert not builtin("bedrock").field("session_token").required
    assert names("azure-openai") == ["api_key", "base_url", "deployment", "api_version"]
    assert [f.name for f in builtin("azure-openai").secret_fields] == ["api_key"]


def test_openai_compatible_group_shares_one_adapter() -> None:
    assert {p.protocol for p in BUILTIN_PROVIDERS if p.group == "openai-compatible"} == {"openai_chat"}


def test_unknown_provider_suggests_close_ids() -> None:
    with pytest.raises(ConfigurationError, match="mistral"):
        builtin("mistrall")


def test_custom_endpoint_becomes_a_provider() -> None:
    ep = CustomEndpoint("My vLLM Box", "http://127.0.0.1:8000/v1/", "meta-llama/Llama-3.1-8B", "Llama box")
    spec = ep.spec()
    assert spec.id == "custom-my-vllm-box" and spec.group == "custom" and spec.protocol == "openai_chat"
    assert spec.base_url == "http://127.0.0.1:8000/v1"
    assert not spec.field("api_key").required
    with pytest.raises(ConfigurationError):
        CustomEndpoint("!!!", "http://x", "m").spec()


def test_registry_has_the_46_builtins_with_the_spec_distribution() -> None:
    reg = Registry()
    builtins = [m for m in reg if m.source == "builtin"]
    assert len(builtins) == 46
    assert Counter(m.provider for m in builtins) == {
        "claude-sdk": 6, "claude-api": 6, "openai": 8, "google": 6, "mistral": 5, "deepseek": 2, "xai": 2,
        "bedrock": 11,
    }
    assert {m.id for m in reg.list("claude-sdk")} == {m.id for m in reg.list("claude-api")}
    for m in builtins:
        assert m.display_name and m.context_window > 0 and m.max_output_tokens > 0
        assert m.price.input > 0 and m.price.output > 0
        assert m.price.cache_read >= 0 and m.price.cache_write >= 0
    assert all(m.context_window == 1_048_576 for m in reg.list("google"))


def test_lookup_filters_and_suggestions() -> None:
    reg = Registry()
    gpt41 = reg.get("openai", "gpt-4.1")
    assert gpt41.context_window == 1_047_576 and not gpt41.reasoning and gpt41.deprecation == "2027-01-14"
    assert all(m.vision for m in reg.list(capability="vision"))
    assert {m.provider for m in reg.list(capability="reasoning")} >= {"openai", "google", "deepseek"}
    with pytest.raises(ModelNotFound) as exc:
        reg.get("openai", "gpt-6-astr")
    assert "gpt-6-astra" in exc.value.suggestions


def test_runtime_models_for_dynamic_providers() -> None:
    from ironspire.catalog.models import dynamic_model

    reg = Registry()
    assert reg.list("ollama") == []
    assert reg.get("ollama", "llama3.2").source == "discovered"  # accepted, conservative facts
    reg.replace_runtime("ollama", [dynamic_model("ollama", "qwen3:8b", context_window=40_960)])
    assert [m.id for m in reg.list("ollama")] == ["qwen3:8b"]
    assert reg.get("ollama", "qwen3:8b").context_window == 40_960
    reg.clear_runtime("ollama")
    assert reg.list("ollama") == []


def test_cost_uses_per_million_prices() -> None:
    m = Registry().get("claude-api", "claude-sonnet-5-5")  # $2 in, $10 out, $0.2 read, $2.5 write
    cost = m.cost(Usage(input=1_000_000, output=100_000, cache_read=500_000, cache_write=40_000))
    assert cost == pytest.approx(2 + 1 + 0.1 + 0.1)


def test_bare_ollama_name_finds_the_latest_tag() -> None:
    from ironspire.catalog.models import dynamic_model

    reg = Registry()
    reg.replace_runtime("ollama", [dynamic_model("ollama", "llama3.2:latest", context_window=131_072)])
    assert reg.get("ollama", "llama3.2").context_window == 131_072


def test_custom_endpoint_output_never_exceeds_its_window() -> None:
    small = CustomEndpoint("tiny", "http://127.0.0.1:8080/v1", "smollm2", context_window=2048)
    assert small.max_output_tokens == 2048
    assert CustomEndpoint("big", "http://127.0.0.1:8080/v1", "m", context_window=131_072).max_output_tokens == 4096
