"""What we send to Bedrock Converse for histories users really build, and how its errors map."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import builtin
from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ContextWindowExceeded,
    ModelNotFound,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.messages import Image, Message, Reasoning, Text, ToolCall, ToolResult
from ironspire.protocols.base import ChatRequest, Secrets, Target, Tool
from ironspire.protocols.bedrock_converse import BedrockConverse, usage_from
from ironspire.protocols.common import tool_id
from ironspire.transport import Transport

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"


def target(model: str = MODEL, *, region: str = "eu-west-1", base_url: str = "") -> Target:
    spec = ModelSpec("bedrock", model, model, 200_000, 64_000, vision=True, reasoning=True)
    secrets = Secrets({"access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret-example"})
    return Target(builtin("bedrock"), spec, base_url, secrets, {"region": region})


def encode(request: ChatRequest, tgt: Target | None = None, *, stream: bool = False) -> tuple[str, dict[str, Any]]:
    wire = BedrockConverse(Transport()).encode(request, tgt or target(), stream=stream)
    assert wire.json is None and wire.content is not None  # the signed bytes are what is sent
    return wire.url, json.loads(wire.content)


def test_url_region_and_encoded_model_id() -> None:
    url, _ = encode(ChatRequest((Message.user("hi"),)), stream=True)
    assert url == "https://bedrock-runtime.eu-west-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x-v1:0"
    url, _ = encode(ChatRequest((Message.user("hi"),)), target(arn, base_url="http://127.0.0.1:9"))
    assert url == "http://127.0.0.1:9/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x-v1%3A0/converse"


def test_strict_alternation_and_tool_results_in_a_user_turn() -> None:
    call = ToolCall("call_abc", "weather", {"city": "Paris"}, provider="openai", model="gpt-5")
    history = (
        Message.system("Be brief."),
        Message.user("weather?"),
        Message.user("in Paris"),
        Message("assistant", (Text("Checking. "), call)),
        Message.tool(ToolResult("call_abc", "weather", (Text("20C"),))),
        Message.user("and tomorrow?"),
    )
    _, body = encode(ChatRequest(history, system="You are Ironspire.", tools=(Tool("weather"),)))
    assert body["system"] == [{"text": "You are Ironspire.\n\nBe brief."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [{"text": "weather?"}, {"text": "in Paris"}]
    assert body["messages"][1]["content"][1] == {
        "toolUse": {"toolUseId": "call_abc", "name": "weather", "input": {"city": "Paris"}}}
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "call_abc", "content": [{"text": "20C"}], "status": "success"}},
        {"text": "and tomorrow?"},
    ]


def test_foreign_tool_ids_are_rewritten_consistently() -> None:
    odd = "call|with spaces and a very long id that Bedrock would refuse because of its characters"
    history = (Message.user("go"), Message("assistant", (ToolCall(odd, "t", {}),)),
               Message.tool(ToolResult(odd, "t", (Text("ok"),))))
    _, body = encode(ChatRequest(history, tools=(Tool("t"),)))
    use = body["messages"][1]["content"][0]["toolUse"]["toolUseId"]
    result = body["messages"][2]["content"][0]["toolResult"]["toolUseId"]
    assert use == result == tool_id(odd, "bedrock") and use != odd


def test_tool_config_stub_when_history_has_tool_blocks_but_no_tools_offered() -> None:
    history = (Message.user("go"), Message("assistant", (ToolCall("t1", "search", {"q": "x"}),)),
               Message.tool(ToolResult("t1", "search", (Text("found"),))), Message.user("summarise"))
    _, body = encode(ChatRequest(history))
    assert [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]] == ["search"]
    assert "toolChoice" not in body["toolConfig"]
    # tool_choice "none" cannot be expressed: tools are withheld, the stub keeps history valid
    _, none = encode(ChatRequest(history, tools=(Tool("search"), Tool("other")), tool_choice="none"))
    assert [t["toolSpec"]["name"] for t in none["toolConfig"]["tools"]] == ["search"]
    _, plain = encode(ChatRequest((Message.user("hi"),), tools=(Tool("t"),), tool_choice="none"))
    assert "toolConfig" not in plain


@pytest.mark.parametrize(("kw", "choice"), [
    ({"tool_choice": "auto"}, {"auto": {}}), ({"tool_choice": "required"}, {"any": {}}),
    ({"force_tool": "t"}, {"tool": {"name": "t"}}),
])
def test_tool_choice(kw: dict[str, Any], choice: dict[str, Any]) -> None:
    _, body = encode(ChatRequest((Message.user("hi"),), tools=(Tool("t", "a tool"),), **kw))
    assert body["toolConfig"]["toolChoice"] == choice
    assert body["toolConfig"]["tools"] == [{"toolSpec": {
        "name": "t", "description": "a tool", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]


def test_reasoning_replayed_only_to_its_own_model() -> None:
    own = Reasoning("plan", signature="c2ln", provider="bedrock", model=MODEL)
    redacted = Reasoning(redacted="ZW5j", provider="bedrock", model=MODEL)
    reply = Message("assistant", (own, redacted, Text("answer")), provider="bedrock", model=MODEL)
    history = (Message.user("q"), reply, Message.user("more"))
    _, body = encode(ChatRequest(history))
    assert body["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "plan", "signature": "c2ln"}}},
        {"reasoningContent": {"redactedContent": "ZW5j"}},
        {"text": "answer"},
    ]
    _, other = encode(ChatRequest(history, foreign_reasoning="text"), target("us.anthropic.claude-opus-4-1-v1:0"))
    assert other["messages"][1]["content"] == [{"text": "<thinking>plan</thinking>"}, {"text": "answer"}]
    anthropic = Reasoning("x", signature="sig", provider="claude-api", model=MODEL)
    _, foreign = encode(ChatRequest((Message.user("q"), Message("assistant", (anthropic, Text("a"))),
                                     Message.user("b"))))
    assert foreign["messages"][1]["content"] == [{"text": "a"}]


def test_images_blank_text_and_prefill() -> None:
    history = (Message.user("look", Image("image/webp", data="UklGRg=="), "  "),
               Message("assistant", (Text("The answer is "),)))
    _, body = encode(ChatRequest(history, max_tokens=100, temperature=0.5, stop=("END",)))
    assert body["messages"][0]["content"] == [
        {"text": "look"}, {"image": {"format": "webp", "source": {"bytes": "UklGRg=="}}}]
    assert body["messages"][1]["content"] == [{"text": "The answer is"}]
    assert body["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["END"]}
    with pytest.raises(BadRequest, match="PNG, JPEG, GIF or WebP"):
        encode(ChatRequest((Message.user(Image("image/bmp", data="Qk0="),),)))


def test_reasoning_effort_fields() -> None:
    _, claude = encode(ChatRequest((Message.user("hi"),), reasoning="high"))
    assert claude["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 16384}}
    _, nova = encode(ChatRequest((Message.user("hi"),), reasoning="medium"), target("us.amazon.nova-2-lite-v1:0"))
    assert nova["additionalModelRequestFields"] == {"reasoningConfig": {"type": "enabled",
                                                                        "maxReasoningEffort": "medium"}}
    _, off = encode(ChatRequest((Message.user("hi"),), reasoning="none"))
    assert "additionalModelRequestFields" not in off


def test_cache_usage() -> None:
    usage = usage_from({"inputTokens": 5, "outputTokens": 7, "cacheReadInputTokens": 1200,
                        "cacheWriteInputTokens": 300, "totalTokens": 1512})
    assert (usage.input, usage.output, usage.cache_read, usage.cache_write) == (5, 7, 1200, 300)
    assert usage.total == 1512


# --- errors ------------------------------------------------------------------------------------


def classify(status: int, kind: str, message: str) -> Exception:
    headers = {"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return BedrockConverse(Transport()).error(status, headers, json.dumps({"message": message}).encode(), target())


@pytest.mark.parametrize(("status", "kind", "error"), [
    (429, "ThrottlingException", RateLimitError),
    (403, "UnrecognizedClientException", AuthenticationError),
    (403, "InvalidSignatureException", AuthenticationError),
    (403, "AccessDeniedException", AuthenticationError),
    (400, "ValidationException", BadRequest),
    (404, "ResourceNotFoundException", ModelNotFound),
    (429, "ModelNotReadyException", ProviderUnavailable),
    (503, "ServiceUnavailableException", ProviderUnavailable),
    (500, "InternalServerException", ProviderUnavailable),
])
def test_error_types(status: int, kind: str, error: type[Exception]) -> None:
    assert type(classify(status, kind, "m")) is error


def test_validation_context_overflow_and_inference_profile_hint() -> None:
    overflow = classify(400, "ValidationException", "Input is too long for requested model.")
    assert isinstance(overflow, ContextWindowExceeded)
    profile = classify(400, "ValidationException", "Invocation of model ID anthropic.claude-sonnet-4 with on-demand "
                       "throughput isn’t supported. Retry your request with the ID or ARN of an inference profile.")
    assert type(profile) is BadRequest and "use `eu.anthropic.claude-sonnet-4-20250514-v1:0`" in str(profile)


def test_error_type_from_body_when_header_missing() -> None:
    body = json.dumps({"__type": "com.amazon.coral.service#UnrecognizedClientException",
                       "message": "The security token included in the request is invalid."}).encode()
    err = BedrockConverse(Transport()).error(403, {}, body, target())
    assert isinstance(err, AuthenticationError) and "security token" in str(err)
