"""What the Responses encoder sends for the knobs of a turn, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from ironspire.catalog.models import Registry, dynamic_model
from ironspire.catalog.providers import builtin
from ironspire.errors import CapabilityError
from ironspire.messages import Image, Message, Reasoning, Text, ToolCall, ToolResult
from ironspire.protocols.base import ChatRequest, Secrets, Target, Tool
from ironspire.protocols.openai_responses import OpenAIResponses

TOOL = Tool("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})


def target(provider: str = "openai", model: str = "gpt-6.1-sol", **settings: str) -> Target:
    spec = builtin(provider)
    found = Registry().find(provider, model) or dynamic_model(provider, model)
    return Target(spec, found, settings.pop("base_url", spec.base_url), Secrets({"api_key": "sk-test-key-123456"}),
                  settings)


def encode(request: ChatRequest, tgt: Target | None = None, *, stream: bool = False) -> dict[str, Any]:
    wire = OpenAIResponses().encode(
        request, tgt or target(), stream=stream)
    assert isinstance(wire.json, dict)
    return wire.json


def test_reasoning_model_gets_tools_effort_summary_and_stays_stateless() -> None:
    body = encode(ChatRequest((Message.user("hi"),), system="Be brief.", tools=(TOOL,), tool_choice="required",
                              reasoning="high", max_tokens=500, temperature=0.3), stream=True)
    assert body["model"] == "gpt-6.1-sol" and body["instructions"] == "Be brief."
    assert body["input"] == [{"role": "user", "content": "hi"}]
    assert body["tools"] == [{"type": "function", "name": "get_weather", "description": "Weather for a city",
                              "parameters": dict(TOOL.parameters), "strict": False}]
    assert body["tool_choice"] == "required"
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["store"] is False and body["include"] == ["reasoning.encrypted_content"]
    assert body["max_output_tokens"] == 500 and body["stream"] is True
    assert "temperature" not in body  # the model rejects sampling controls (no_sampling)


def test_named_tool_and_none() -> None:
    body = encode(ChatRequest((Message.user("hi"),), tools=(TOOL,), force_tool="get_weather", tool_choice="none"))
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert encode(ChatRequest((Message.user("hi"),), tools=(TOOL,), tool_choice="none"))["tool_choice"] == "none"


def test_only_responses_fields_from_options_reach_the_wire() -> None:
    options = {"parallel_tool_calls": False, "seed": 7, "thinking_budget": 100, "num_ctx": 4096, "logprobs": True,
               "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
               "verbosity": "low", "metadata": {"a": "b"},
               "openai_responses": {"truncation": "auto", "model": "other", "store": True, "input": []}}
    body = encode(ChatRequest((Message.user("hi"),), options=options), target("openai", "gpt-4.1"))
    assert body["parallel_tool_calls"] is False and body["metadata"] == {"a": "b"} and body["truncation"] == "auto"
    assert body["text"] == {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}},
                            "verbosity": "low"}
    for key in ("seed", "thinking_budget", "num_ctx", "logprobs", "response_format", "verbosity", "openai_responses"):
        assert key not in body
    assert body["model"] == "gpt-4.1" and body["store"] is False and body["input"]
    assert "include" not in body and "reasoning" not in body  # gpt-4.1 does not reason


def test_stop_sequences_are_refused() -> None:
    with pytest.raises(CapabilityError, match="stop") as info:
        encode(ChatRequest((Message.user("hi"),), stop=("END",)))
    assert "Remove the stop sequences" in info.value.hint and "providers set openai api chat" in info.value.hint
    assert info.value.remedy is not None and info.value.remedy.action == "set_setting"


def test_an_effort_asked_of_a_model_not_known_to_reason_is_sent() -> None:
    """Discovered Azure deployments and custom models are not known to reason: the effort asked
    for is sent (with the encrypted reasoning included), and the server is the judge."""
    azure = target("azure-openai", "my-gpt-deployment", base_url="https://res.openai.azure.com")
    assert not azure.model.reasoning
    body = encode(ChatRequest((Message.user("hi"),), reasoning="low"), azure)
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert "reasoning" not in encode(ChatRequest((Message.user("hi"),), reasoning="none"), azure)


def test_history_items_in_order_with_own_reasoning_only() -> None:
    own = Reasoning("thought", '{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"thought"}],'
                    '"encrypted_content":"gAAA-own"}', None, "openai", "gpt-6.1-sol")
    other_model = Reasoning("x", '{"type":"reasoning","id":"rs_2","summary":[],"encrypted_content":"gAAA-other"}',
                            None, "openai", "gpt-5.5")
    anthropic = Reasoning("hmm", "sig-anthropic", None, "claude-api", "claude-sonnet-5")
    history = (
        Message.system("stay here"),
        Message.user("look", Image("image/png", data="iVBORw0KGgo=")),
        Message("assistant", (anthropic, Text("Looking."), ToolCall("toolu_01", "get_weather", {"city": "Oslo"}))),
        Message.tool(ToolResult("toolu_01", "get_weather", (Text("sunny"),))),
        Message("assistant", (other_model, own, ToolCall("call_2", "get_weather", {"city": "Rome"}))),
        Message.tool(ToolResult("call_2", "get_weather", (Text("rain"), Image("image/png", url="https://x/y.png")))),
    )
    body = encode(ChatRequest(history, foreign_reasoning="text"))
    assert body["input"] == [
        {"role": "system", "content": "stay here"},
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]},
        {"role": "assistant", "content": "<thinking>hmm</thinking>Looking."},
        {"type": "function_call", "call_id": "toolu_01", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "toolu_01", "output": "sunny"},
        {"role": "assistant", "content": "<thinking>x</thinking>"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}],
         "encrypted_content": "gAAA-own"},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city": "Rome"}'},
        {"type": "function_call_output", "call_id": "call_2", "output": [
            {"type": "input_text", "text": "rain"}, {"type": "input_image", "image_url": "https://x/y.png"}]},
    ]
    assert "gAAA-other" not in str(body) and "sig-anthropic" not in str(body)


def test_azure_v1_responses_url_names_the_deployment_in_the_body() -> None:
    for base in ("https://res.openai.azure.com", "https://res.openai.azure.com/openai",
                 "https://res.openai.azure.com/openai/v1/"):
        tgt = target("azure-openai", "prod-gpt", base_url=base, deployment="prod-gpt")
        wire = OpenAIResponses().encode(
            ChatRequest((Message.user("hi"),)), tgt, stream=False)
        assert wire.url == "https://res.openai.azure.com/openai/v1/responses"
        assert wire.json["model"] == "prod-gpt" and wire.headers["api-key"] == "sk-test-key-123456"
        assert wire.params is None


def test_xai_on_the_responses_api() -> None:
    wire = OpenAIResponses().encode(
        ChatRequest((Message.user("hi"),), reasoning="high"), target("xai", "grok-4.3"), stream=True)
    assert wire.url == "https://api.x.ai/v1/responses" and wire.headers["Authorization"].startswith("Bearer ")
    assert wire.json["include"] == ["reasoning.encrypted_content"] and wire.json["store"] is False
