"""What we send to Gemini for histories a user really builds: cross-provider tool calls and
reasoning, tool results, images, knobs; and how Gemini's error bodies are classified."""

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
    CredentialsMissing,
    ModelNotFound,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.messages import Image, Message, Reasoning, Text, ToolCall, ToolResult
from ironspire.protocols.base import ChatRequest, Secrets, Target, Tool
from ironspire.protocols.gemini import SKIP_SIGNATURE, Gemini, usage_from
from ironspire.transport import Transport

BASE = "https://generativelanguage.googleapis.com/v1beta"


def target(model: str = "gemini-2.5-flash", *, reasoning: bool = True) -> Target:
    spec = ModelSpec("google", model, model, 1_048_576, 65_536, vision=True, reasoning=reasoning)
    return Target(builtin("google"), spec, BASE, Secrets({"api_key": "k-test"}))


def encode(request: ChatRequest, tgt: Target | None = None, *, stream: bool = False) -> dict[str, Any]:
    wire = Gemini(Transport()).encode(request, tgt or target(), stream=stream)
    body: dict[str, Any] = wire.json
    return body


def model_turn(body: dict[str, Any], n: int = 0) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [c for c in body["contents"] if c["role"] == "model"][n]["parts"]
    return parts


def tool_turn(*calls: ToolCall) -> list[Message]:
    return [
        Message.user("weather in Paris and Rome?"),
        Message("assistant", calls, provider=calls[0].provider, model=calls[0].model),
        Message.tool(*(ToolResult(c.id, c.name, (Text("20C"),)) for c in calls)),
    ]


# --- thought signatures ---------------------------------------------------------------------


def test_foreign_function_calls_get_the_documented_placeholder_on_gemini_3() -> None:
    calls = (ToolCall("toolu_01", "weather", {"city": "Paris"}, provider="claude-api", model="claude-sonnet-4-5"),
             ToolCall("toolu_02", "weather", {"city": "Rome"}, provider="claude-api", model="claude-sonnet-4-5"))
    body = encode(ChatRequest(tuple(tool_turn(*calls))), target("gemini-3-pro-preview"))
    first, second = model_turn(body)
    # Only the first call of a parallel set carries a signature, as Gemini itself does.
    assert first["thoughtSignature"] == SKIP_SIGNATURE
    assert "thoughtSignature" not in second
    assert first["functionCall"] == {"name": "weather", "args": {"city": "Paris"}, "id": "toolu_01"}


def test_foreign_function_calls_on_gemini_2_carry_no_signature() -> None:
    call = ToolCall("call_1", "weather", {"city": "Paris"}, provider="openai", model="gpt-5")
    body = encode(ChatRequest(tuple(tool_turn(call))), target("gemini-2.5-flash"))
    assert "thoughtSignature" not in model_turn(body)[0]


def test_own_signature_goes_back_only_to_the_model_that_made_it() -> None:
    call = ToolCall("abc123xyz", "weather", {"city": "Paris"}, signature="c2lnLTE=", provider="google",
                    model="gemini-3-pro-preview")
    history = ChatRequest(tuple(tool_turn(call)))
    assert model_turn(encode(history, target("gemini-3-pro-preview")))[0]["thoughtSignature"] == "c2lnLTE="
    # Another Gemini 3 model would reject that signature: the placeholder is used instead.
    assert model_turn(encode(history, target("gemini-3.7-flash")))[0]["thoughtSignature"] == SKIP_SIGNATURE


def test_signature_only_reasoning_folds_onto_the_part_before_it() -> None:
    reply = Message("assistant", (
        Reasoning("thinking...", provider="google", model="gemini-2.5-flash"),
        Text("Scoop"),
        Reasoning("", signature="U0lH", provider="google", model="gemini-2.5-flash"),
    ), provider="google", model="gemini-2.5-flash")
    parts = model_turn(encode(ChatRequest((Message.user("name?"), reply, Message.user("again")))))
    assert parts == [{"text": "thinking...", "thought": True}, {"text": "Scoop", "thoughtSignature": "U0lH"}]


def test_signed_thought_part_is_replayed_as_a_thought() -> None:
    reply = Message("assistant", (Reasoning("plan", signature="U0lH", provider="google", model="gemini-2.5-flash"),
                                  Text("answer")))
    parts = model_turn(encode(ChatRequest((Message.user("q"), reply, Message.user("more")))))
    assert parts == [{"text": "plan", "thought": True, "thoughtSignature": "U0lH"}, {"text": "answer"}]


def test_foreign_reasoning_is_dropped_or_given_as_text_by_policy() -> None:
    reply = Message("assistant", (Reasoning("I think", signature="anthropic-sig", provider="claude-api",
                                            model="claude-opus-4-1"), Text("Hi")))
    history = (Message.user("q"), reply, Message.user("more"))
    assert model_turn(encode(ChatRequest(history))) == [{"text": "Hi"}]
    as_text = model_turn(encode(ChatRequest(history, foreign_reasoning="text")))
    assert as_text == [{"text": "<thinking>I think</thinking>"}, {"text": "Hi"}]
    assert "anthropic-sig" not in json.dumps(encode(ChatRequest(history, foreign_reasoning="text")))


# --- tool results ------------------------------------------------------------------------------


def test_tool_results_carry_the_name_and_an_object_response() -> None:
    calls = (ToolCall("a1", "weather", {"city": "Paris"}), ToolCall("a2", "lookup", {"q": "Rome"}))
    history = [
        Message.user("go"),
        Message("assistant", calls),
        Message.tool(ToolResult("a1", "weather", (Text("20C"),))),
        # a result stored without its tool name (older history) is paired by call id
        Message.tool(ToolResult("a2", "", (Text("not found"),), is_error=True)),
        Message.user("thanks"),
    ]
    body = encode(ChatRequest(tuple(history)))
    roles = [c["role"] for c in body["contents"]]
    # Both answers to the parallel calls are in one user turn, before the next user text.
    assert roles == ["user", "model", "user", "user"]
    responses = [p["functionResponse"] for p in body["contents"][2]["parts"]]
    assert responses == [
        {"id": "a1", "name": "weather", "response": {"result": "20C"}},
        {"id": "a2", "name": "lookup", "response": {"error": "not found"}},
    ]


def test_tool_result_images_go_inline_on_gemini_3_and_are_noted_elsewhere() -> None:
    call = ToolCall("s1", "screenshot", {})
    result = ToolResult("s1", "screenshot", (Text("done"), Image("image/png", data="iVBORw0KGgo=")))
    history = (Message.user("shoot"), Message("assistant", (call,)), Message.tool(result))
    g3 = encode(ChatRequest(history), target("gemini-3-pro-preview"))["contents"][2]["parts"][0]["functionResponse"]
    assert g3["parts"] == [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]
    assert g3["response"] == {"result": "done"}
    g2 = encode(ChatRequest(history), target("gemini-2.5-flash"))["contents"][2]["parts"][0]["functionResponse"]
    assert "parts" not in g2 and g2["response"] == {"result": "done\n[1 image(s) omitted]"}


# --- request shape ---------------------------------------------------------------------------------


def test_system_tools_and_knobs() -> None:
    schema = {"type": "object", "properties": {"q": {"type": ["string", "null"]}}, "additionalProperties": False}
    request = ChatRequest(
        (Message.system("Be brief."), Message.user("hi")), system="You are Ironspire.",
        tools=(Tool("search", "Search the web.", schema),), force_tool="search",
        max_tokens=256, temperature=0.3, stop=("END",), reasoning="low",
    )
    wire = Gemini(Transport()).encode(request, target("gemini-2.5-flash"), stream=True)
    assert wire.url == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent"
    assert wire.params == {"alt": "sse"}
    assert wire.headers["x-goog-api-key"] == "k-test"
    body = wire.json
    assert body["systemInstruction"] == {"parts": [{"text": "You are Ironspire.\n\nBe brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    # Full JSON Schema goes as-is under parametersJsonSchema (no OpenAPI down-conversion).
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "search", "description": "Search the web.", "parametersJsonSchema": schema}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["search"]}}
    assert body["generationConfig"] == {"maxOutputTokens": 256, "temperature": 0.3, "stopSequences": ["END"],
                                        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}


def test_gemini_3_uses_thinking_levels_and_no_thoughts_when_reasoning_is_off() -> None:
    body = encode(ChatRequest((Message.user("hi"),), reasoning="high"), target("gemini-3-pro-preview"))
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "high", "includeThoughts": True}
    off = encode(ChatRequest((Message.user("hi"),), reasoning="none"), target("gemini-2.5-flash"))
    assert off["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    plain = encode(ChatRequest((Message.user("hi"),)), target("gemini-2.0-flash", reasoning=False))
    assert "generationConfig" not in plain


@pytest.mark.parametrize(("choice", "mode"), [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")])
def test_tool_choice_modes(choice: Any, mode: str) -> None:
    body = encode(ChatRequest((Message.user("hi"),), tools=(Tool("t"),), tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_images_inline_and_urls_refused() -> None:
    data_url = Image("image/png", url="data:image/png;base64,iVBORw0KGgo=")
    body = encode(ChatRequest((Message.user("what is it?", data_url),)))
    assert body["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    with pytest.raises(BadRequest, match="inline"):
        encode(ChatRequest((Message.user("x", Image("image/png", url="https://example.com/cat.png")),)))


def test_missing_key_says_how_to_set_it() -> None:
    tgt = Target(builtin("google"), target().model, BASE)
    with pytest.raises(CredentialsMissing, match="GEMINI_API_KEY"):
        encode(ChatRequest((Message.user("hi"),)), tgt)


def test_usage_mapping_with_cache_and_thoughts() -> None:
    meta = {"promptTokenCount": 1000, "cachedContentTokenCount": 600, "candidatesTokenCount": 50,
            "thoughtsTokenCount": 200, "totalTokenCount": 1250}
    usage = usage_from(meta)
    assert (usage.input, usage.cache_read, usage.output, usage.reasoning) == (400, 600, 250, 200)
    assert usage.prompt == 1000


# --- error classification ------------------------------------------------------------------------


def classify(status: int, body: Any, headers: dict[str, str] | None = None) -> Exception:
    return Gemini(Transport()).error(status, headers or {}, json.dumps(body).encode(), target())


def test_permission_denied_is_authentication() -> None:
    err = classify(403, {"error": {"code": 403, "message": "Method doesn't allow unregistered callers.",
                                   "status": "PERMISSION_DENIED"}})
    assert isinstance(err, AuthenticationError)


def test_context_overflow_keeps_the_counts() -> None:
    # Shape quoted in gemini-cli issue #6678: a streaming call's error body is a JSON array.
    body = [{"error": {"code": 400, "message": "The input token count (1200293) exceeds the maximum number of "
                       "tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}]
    err = classify(400, body)
    assert isinstance(err, ContextWindowExceeded)
    assert (err.used, err.limit) == (1200293, 1048576)


@pytest.mark.parametrize(("status", "name", "kind"), [
    (500, "INTERNAL", ProviderUnavailable), (503, "UNAVAILABLE", ProviderUnavailable),
    (404, "NOT_FOUND", ModelNotFound), (400, "INVALID_ARGUMENT", BadRequest),
    (429, "RESOURCE_EXHAUSTED", RateLimitError),
])
def test_status_classes(status: int, name: str, kind: type[Exception]) -> None:
    assert type(classify(status, {"error": {"code": status, "message": "m", "status": name}})) is kind


@pytest.mark.parametrize(("raw", "reason"), [
    ("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"),
    ("MAX_TOKENS", "length"), ("MALFORMED_FUNCTION_CALL", "error"), ("OTHER", "other"),
])
def test_finish_reasons(raw: str, reason: str) -> None:
    body = {"candidates": [{"finishReason": raw, "content": {"role": "model", "parts": [{"text": "partial"}]}}]}
    message = Gemini(Transport()).decode(json.dumps(body).encode(), target())
    assert message.finish_reason == reason and message.text == "partial"
