"""Which ``ChatRequest.options`` reach a Chat Completions body.

One options dict follows an agent from provider to provider, so keys meant for another protocol
(Anthropic ``cache``/``thinking_budget``, Ollama ``think``/``num_ctx``/``keep_alive``) must not
reach an OpenAI-compatible server, which would refuse the request (Mistral answers 422 to any
field outside its schema; OpenAI 400 "Unrecognized request argument").
"""

from __future__ import annotations

from typing import Any

from ironspire.catalog.models import Registry, dynamic_model
from ironspire.catalog.providers import builtin
from ironspire.messages import Message
from ironspire.protocols.anthropic_messages import AnthropicMessages
from ironspire.protocols.base import ChatRequest, Secrets, Target
from ironspire.protocols.ollama_chat import OllamaChat
from ironspire.protocols.openai_chat import OpenAIChat
from ironspire.transport import Transport

_REGISTRY = Registry()
KEY = "sk-options-test-0123456789"

#: what an agent that started on Claude, then ran on Ollama, may carry
FOREIGN = {"cache": True, "thinking_budget": 4096, "think": False, "num_ctx": 8192, "keep_alive": "5m",
           "format": "json", "num_predict": 64, "top_k": 40}
PORTABLE = {"seed": 7, "top_p": 0.9}


def target(provider: str, model: str) -> Target:
    spec = builtin(provider)
    found = _REGISTRY.find(provider, model) or dynamic_model(provider, model)
    return Target(spec, found, spec.base_url or "http://127.0.0.1:9", Secrets({"api_key": KEY}),
                  {"base_url": "https://res.openai.azure.com", "deployment": "d"} if provider == "azure-openai" else {})


def body(options: dict[str, Any], provider: str, model: str) -> dict[str, Any]:
    request = ChatRequest((Message.user("hi"),), options=options)
    wire = OpenAIChat(Transport()).encode(request, target(provider, model), stream=False)
    assert isinstance(wire.json, dict)
    return wire.json


OPENAI_COMPATIBLE = (
    ("openai", "gpt-4.1"), ("azure-openai", "gpt-4.1"), ("mistral", "mistral-large-2512"),
    ("deepseek", "deepseek-flash"), ("xai", "grok-4.3"), ("groq", "llama-3.3-70b-versatile"),
    ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"), ("fireworks", "accounts/fireworks/models/x"),
)


def test_other_protocols_options_never_reach_the_wire() -> None:
    for provider, model in OPENAI_COMPATIBLE:
        sent = body({**FOREIGN, **PORTABLE}, provider, model)
        assert not set(FOREIGN) & set(sent), provider
        assert sent["top_p"] == 0.9, provider


def test_the_same_dict_still_works_where_it_belongs() -> None:
    """The filter is per adapter: Anthropic and Ollama still read their own keys from the same dict."""
    request = ChatRequest((Message.user("hi"),), options={**FOREIGN, **PORTABLE})
    ollama = OllamaChat(Transport()).encode(request, target("ollama", "llama3"), stream=False).json
    assert ollama["think"] is False and ollama["keep_alive"] == "5m"
    assert ollama["options"]["num_ctx"] == 8192 and ollama["options"]["seed"] == 7
    assert ollama["options"]["top_p"] == 0.9
    claude = AnthropicMessages(Transport()).encode(request, target("claude-api", "claude-sonnet-5-5"),
                                                   stream=False).json
    assert "cache_control" in str(claude) and "num_ctx" not in claude and "think" not in claude


def test_seed_is_seed_and_mistral_gets_random_seed() -> None:
    assert body({"seed": 7}, "openai", "gpt-4.1")["seed"] == 7
    mistral = body({"seed": 7, "user": "u-1", "service_tier": "flex"}, "mistral", "mistral-large-2512")
    assert mistral["random_seed"] == 7
    assert not {"seed", "user", "service_tier"} & set(mistral)  # 422 extra_forbidden otherwise
    assert "random_seed" not in body({"random_seed": 7, "safe_prompt": True}, "openai", "gpt-4.1")


def test_provider_specific_fields_go_only_where_they_are_known() -> None:
    assert body({"reasoning_format": "parsed"}, "groq", "qwen-qwq")["reasoning_format"] == "parsed"
    assert "reasoning_format" not in body({"reasoning_format": "parsed"}, "openai", "gpt-4.1")
    groq = body({"logprobs": True, "top_logprobs": 2, "logit_bias": {"1": 5}}, "groq", "qwen-qwq")
    assert not {"logprobs", "top_logprobs", "logit_bias"} & set(groq)  # Groq answers 400 to these
    assert body({"logprobs": True}, "openai", "gpt-4.1")["logprobs"] is True


def test_reasoning_models_get_no_sampling_options() -> None:
    sent = body({"top_p": 0.5, "presence_penalty": 1.0, "seed": 3}, "openai", "o3")
    assert "top_p" not in sent and "presence_penalty" not in sent and sent["seed"] == 3


def test_namespaced_extras_are_sent_as_given_but_cannot_replace_the_request() -> None:
    extra = {"openai_chat": {"chat_template_kwargs": {"enable_thinking": False}, "model": "other",
                             "messages": [], "stream": True, "top_k": 20}}
    sent = body(extra, "together", "x/y")
    assert sent["chat_template_kwargs"] == {"enable_thinking": False} and sent["top_k"] == 20
    assert sent["model"] == "x/y" and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert "stream" not in sent and "openai_chat" not in sent


def test_recorded_prompt_cache_key_still_passes() -> None:
    assert body({"prompt_cache_key": "k-1"}, "openai", "gpt-4.1")["prompt_cache_key"] == "k-1"
