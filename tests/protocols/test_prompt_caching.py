"""Asking for prompt caching, in each provider's own form, from one neutral request.

``ChatRequest.cache`` (a ``PromptCache``: lifetime and key) and the ``cache_here`` mark on a
message are the neutral way; each adapter turns them into what its API takes: Anthropic
cache_control breakpoints, Bedrock cachePoint blocks (only on models whose registry entry has
prompt_caching), OpenAI prompt_cache_key / prompt_cache_retention, a Gemini cachedContent
reference. The encoded bodies are checked here; tests/workspace/test_prompt_cache_ledger.py
sends them to loopback servers and reads the cache counts back from the ledger.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ironspire.catalog.models import ModelSpec, Registry
from ironspire.catalog.providers import builtin
from ironspire.messages import Message, cache_here
from ironspire.protocols.anthropic_messages import AnthropicMessages
from ironspire.protocols.base import ChatRequest, HttpProtocol, PromptCache, Secrets, Target, Tool
from ironspire.protocols.bedrock_converse import BedrockConverse
from ironspire.protocols.gemini import Gemini
from ironspire.protocols.openai_chat import OpenAIChat
from ironspire.transport import Transport

SECRETS = Secrets({"api_key": "k-test", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret-example"})
TOOL = Tool("lookup", "Looks a word up.", {"type": "object", "properties": {"word": {"type": "string"}}})
BRIEF = Message.user("Here is the 40-page brief: ...")
HISTORY = (cache_here(BRIEF), Message.assistant("Read it."), Message.user("What is on page 3?"))


def target(provider: str, model: str | ModelSpec, settings: dict[str, str] | None = None) -> Target:
    spec = model if isinstance(model, ModelSpec) else Registry().get(provider, model)
    prov = builtin(provider)
    values = {"region": "us-east-1", **(settings or {})}
    return Target(prov, spec, prov.base_url or "http://127.0.0.1:9", SECRETS, values)


def body(adapter: type[HttpProtocol], tgt: Target, **fields: Any) -> Any:
    request = ChatRequest(fields.pop("messages", HISTORY), system="You answer from the brief.", tools=(TOOL,),
                          **fields)
    wire = adapter(Transport()).encode(request, tgt, stream=False)
    return wire.json if wire.json is not None else json.loads(wire.content or b"null")


# --- Bedrock -----------------------------------------------------------------------------------


def test_bedrock_cache_points_after_system_tools_the_marked_message_and_the_end() -> None:
    nova = target("bedrock", "us.amazon.nova-pro-v1:0")
    assert nova.model.prompt_caching
    sent = body(BedrockConverse, nova, cache=PromptCache("1h"))
    point = {"cachePoint": {"type": "default", "ttl": "1h"}}
    assert sent["system"] == [{"text": "You answer from the brief."}, point]
    assert sent["toolConfig"]["tools"][-1] == point and "toolSpec" in sent["toolConfig"]["tools"][0]
    first, answer, last = sent["messages"]
    assert first["content"] == [{"text": "Here is the 40-page brief: ..."}, point]
    assert point not in answer["content"]
    assert last["content"] == [{"text": "What is on page 3?"}, point]
    assert json.dumps(sent).count('"cachePoint"') == 4  # Converse allows at most 4


def test_bedrock_default_ttl_sends_no_ttl_and_24h_asks_for_the_longest() -> None:
    nova = target("bedrock", "us.amazon.nova-pro-v1:0")
    assert body(BedrockConverse, nova, cache=PromptCache())["system"][-1] == {"cachePoint": {"type": "default"}}
    assert body(BedrockConverse, nova, cache=PromptCache("24h"))["system"][-1] == {
        "cachePoint": {"type": "default", "ttl": "1h"}}


def test_bedrock_sends_no_cache_point_to_a_model_without_prompt_caching() -> None:
    llama = target("bedrock", "us.meta.llama4-maverick-17b-instruct-v1:0")
    assert not llama.model.prompt_caching
    assert "cachePoint" not in json.dumps(body(BedrockConverse, llama, cache=PromptCache("5m")))


def test_bedrock_provider_setting_and_per_request_off() -> None:
    nova = target("bedrock", "us.amazon.nova-pro-v1:0", {"prompt_cache": "5m"})
    assert body(BedrockConverse, nova)["system"][-1] == {"cachePoint": {"type": "default", "ttl": "5m"}}
    assert "cachePoint" not in json.dumps(body(BedrockConverse, nova, options={"cache": False}))
    assert "cachePoint" not in json.dumps(body(BedrockConverse, target("bedrock", "us.amazon.nova-pro-v1:0")))


# --- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_neutral_cache_puts_breakpoints_on_the_mark_and_the_end() -> None:
    sent = body(AnthropicMessages, target("claude-api", "claude-sonnet-5"), cache=PromptCache("24h"))
    mark = {"type": "ephemeral", "ttl": "1h"}  # Anthropic's longest
    assert sent["system"][0]["cache_control"] == mark and sent["tools"][-1]["cache_control"] == mark
    first, answer, last = sent["messages"]
    assert first["content"][-1]["cache_control"] == mark
    assert "cache_control" not in answer["content"][-1]
    assert last["content"][-1]["cache_control"] == mark
    assert json.dumps(sent).count('"cache_control"') <= 4


def test_anthropic_provider_setting_still_wins_over_the_neutral_request() -> None:
    sent = body(AnthropicMessages, target("claude-api", "claude-sonnet-5", {"prompt_cache": "5m"}),
                cache=PromptCache("1h"))
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    plain = body(AnthropicMessages, target("claude-api", "claude-sonnet-5"))
    assert "cache_control" not in json.dumps(plain)


# --- OpenAI-compatible -------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "model", "fields"), [
    ("openai", "gpt-4.1", {"prompt_cache_key": "agent-7", "prompt_cache_retention": "24h"}),
    ("mistral", "mistral-large-2512", {"prompt_cache_key": "agent-7"}),
    ("deepseek", "deepseek-flash", {}),  # DeepSeek caches by itself and takes neither field
    ("groq", "llama-3.3-70b-versatile", {}),
])
def test_openai_cache_fields_only_where_the_provider_takes_them(provider: str, model: str,
                                                                fields: dict[str, str]) -> None:
    sent = body(OpenAIChat, target(provider, model), cache=PromptCache("24h", "agent-7"))
    assert {k: v for k, v in sent.items() if k.startswith("prompt_cache")} == fields


def test_openai_explicit_options_win_over_the_neutral_cache() -> None:
    sent = body(OpenAIChat, target("openai", "gpt-4.1"), cache=PromptCache("5m", "agent-7"),
                options={"prompt_cache_key": "mine", "prompt_cache_retention": "in_memory"})
    assert (sent["prompt_cache_key"], sent["prompt_cache_retention"]) == ("mine", "in_memory")


# --- Gemini ------------------------------------------------------------------------------------


def test_gemini_cached_content_reference_replaces_system_and_tools() -> None:
    gem = target("google", "gemini-3.8-flash")
    sent = body(Gemini, gem, options={"cached_content": "cachedContents/brief-123"})
    assert sent["cachedContent"] == "cachedContents/brief-123"
    assert "systemInstruction" not in sent and "tools" not in sent and "toolConfig" not in sent
    by_setting = body(Gemini, target("google", "gemini-3.8-flash", {"cached_content": "cachedContents/x"}))
    assert by_setting["cachedContent"] == "cachedContents/x"
    assert "cachedContent" not in body(Gemini, gem) and "systemInstruction" in body(Gemini, gem)


def test_gemini_reads_request_options_filtered_by_name() -> None:
    sent = body(Gemini, target("google", "gemini-3.8-flash"), max_tokens=100, options={
        "top_p": 0.9, "top_k": 40, "seed": 7, "response_mime_type": "application/json",
        "num_ctx": 8192, "thinking_budget": 2048, "prompt_cache_key": "x",  # other protocols' options
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "gemini": {"labels": {"team": "docs"}},
    })
    assert sent["generationConfig"] == {"maxOutputTokens": 100, "topP": 0.9, "topK": 40, "seed": 7,
                                        "responseMimeType": "application/json",
                                        "thinkingConfig": {"includeThoughts": True}}  # a reasoning model
    assert sent["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert sent["labels"] == {"team": "docs"}
    for foreign in ("num_ctx", "thinking_budget", "prompt_cache_key", "numCtx"):
        assert foreign not in json.dumps(sent)


def test_responses_gets_the_same_cache_fields_as_chat_completions() -> None:
    from ironspire.protocols.openai_responses import OpenAIResponses

    sent = body(OpenAIResponses, target("openai", "gpt-6.1-sol"), cache=PromptCache("24h", "agent-7"))
    assert (sent["prompt_cache_key"], sent["prompt_cache_retention"]) == ("agent-7", "24h")
    xai = body(OpenAIResponses, target("xai", "grok-4.3"), cache=PromptCache("24h", "agent-7"))
    assert "prompt_cache_key" not in xai and "prompt_cache_retention" not in xai
