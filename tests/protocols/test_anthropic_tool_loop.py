"""claude-api continuing a tool loop another provider began, thinking rules, and prompt caching.

Anthropic's rules these tests hold the adapter to (platform.claude.com "Thinking", "Troubleshooting
thinking", "What's new in Claude Sonnet 5.5", "Preserved thinking"; and the API's own 400 text):

* with thinking on, the assistant message that opened the turn in progress (a tool loop is one
  turn) must start with a thinking block: "When `thinking` is enabled, a final `assistant` message
  must start with a thinking block ... To avoid this requirement, disable `thinking`";
* one thinking configuration per assistant turn; with thinking off that turn carries no thinking;
* Sonnet 5.5 rejects ``thinking: {type: "disabled"}`` (its lowest setting is ``between_tools``);
  Opus 5.5 and Fable 5.1 think always; a thinking block replays only on the model that made it;
* manual (budget) thinking rejects forced tool use, adaptive thinking accepts it.

``messages_api`` applies the first rule the way the API does (same error body), so a request
that would be refused there is refused here too, through the real Transport and adapter.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from ironspire.catalog.models import Registry
from ironspire.catalog.providers import builtin
from ironspire.catalog.quirks import MessagesModelQuirks, quirks_of
from ironspire.errors import BadRequest
from ironspire.messages import Image, Message, Reasoning, Text, ToolCall, ToolResult
from ironspire.protocols.anthropic_messages import AnthropicMessages, encode_body
from ironspire.protocols.base import ChatRequest, Secrets, Target, Tool
from support.replay import ReplayTransport

KEY = "sk-ant-test-0123456789abcdef"
WEATHER = Tool("weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})
THINKING = ("thinking", "redacted_thinking")


def target(model_id: str, **settings: str) -> Target:
    return Target(builtin("claude-api"), Registry().get("claude-api", model_id), "https://api.anthropic.com",
                  Secrets({"api_key": KEY}), settings)


def body(request: ChatRequest, model_id: str, **settings: str) -> dict[str, Any]:
    return encode_body(request, target(model_id, **settings), stream=False)


def loop_from(provider: str, model: str | None = None, *, reasoning: Reasoning | None = None) -> tuple[Message, ...]:
    """A conversation whose last turn is a tool loop opened by ``provider`` and not yet answered."""
    parts: list[Any] = [reasoning] if reasoning else []
    parts += [Text("Let me check."), ToolCall("call_1", "weather", {"city": "Oslo"}, provider=provider, model=model)]
    return (
        Message.user("Hi"),
        Message("assistant", (Text("Hello! Ask me anything."),), provider=provider, model=model),
        Message.user("Weather in Oslo?"),
        Message("assistant", tuple(parts), provider=provider, model=model),
        Message.tool(ToolResult("call_1", "weather", (Text("rain, 4C"),))),
    )


def opening_of_loop(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message after the last user message that is not only tool results."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m["role"] == "user" and any(b["type"] != "tool_result" for b in m["content"]):
            return messages[i + 1] if i + 1 < len(messages) else m
    return messages[0]


def api_would_refuse(sent: dict[str, Any], thinks_by_default: bool, rejects_disabled: bool = False) -> str | None:
    """The 400 text the Messages API gives for a tool loop whose opening lacks thinking (or for
    ``disabled`` on a model that refuses it), else None."""
    messages = sent["messages"]
    in_loop = messages[-1]["role"] == "user" and all(b["type"] == "tool_result" for b in messages[-1]["content"])
    kind = (sent.get("thinking") or {}).get("type")
    thinking_on = kind in ("enabled", "adaptive") or (kind is None and thinks_by_default)
    opening = opening_of_loop(messages)
    if in_loop and thinking_on and opening["role"] == "assistant" and opening["content"][0]["type"] not in THINKING:
        return (f"messages.{messages.index(opening)}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                f"found `{opening['content'][0]['type']}`. When `thinking` is enabled, a final `assistant` message "
                "must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` "
                "blocks). We recommend you include thinking blocks from previous turns. To avoid this "
                "requirement, disable `thinking`.")
    if kind == "disabled" and rejects_disabled:
        return 'thinking.type "disabled" is not supported for this model; use "between_tools".'
    return None


def messages_api(tgt: Target, seen: list[dict[str, Any]]) -> ReplayTransport:
    quirks = quirks_of(tgt.model.quirks, MessagesModelQuirks)
    thinks = quirks.thinks

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent = json.loads(request.content)
        seen.append(sent)
        refusal = api_would_refuse(sent, thinks, rejects_disabled=quirks.thinking == "between_tools")
        if refusal:
            error = {"type": "error", "error": {"type": "invalid_request_error", "message": refusal}}
            return httpx2.Response(400, json=error)
        reply = {"id": "msg_1", "type": "message", "role": "assistant", "model": sent["model"],
                 "content": [{"type": "text", "text": "It rains in Oslo: take an umbrella."}],
                 "stop_reason": "end_turn", "usage": {"input_tokens": 120, "output_tokens": 12}}
        return httpx2.Response(200, json=reply)

    return ReplayTransport(handler)


# --- the rule is real: a foreign loop sent as it is would be refused -----------------------------------


def test_the_stand_in_api_refuses_a_foreign_opening_with_thinking_on() -> None:
    naive = {"thinking": {"type": "adaptive"}, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c", "name": "weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c", "content": "rain"}]},
    ]}
    refusal = api_would_refuse(naive, thinks_by_default=False)
    assert refusal is not None and refusal.startswith("messages.1.content.0.type: Expected `thinking`")


# --- models that can turn thinking off: it is off for this request ---------------------------------------


@pytest.mark.parametrize(("model", "reasoning", "expected"), [
    ("claude-haiku-4-5", "low", {"type": "disabled"}),            # budget-thinking model
    ("claude-sonnet-5", "high", {"type": "disabled"}),            # adaptive model, off by default
    ("claude-haiku-5-5", "medium", {"type": "disabled"}),
    ("claude-sonnet-5-5", None, {"type": "between_tools"}),       # thinks by default, rejects "disabled"
    ("claude-sonnet-5-5", "low", {"type": "between_tools"}),
])
async def test_switching_onto_claude_api_mid_tool_loop_turns_thinking_down(
    model: str, reasoning: Any, expected: dict[str, str]
) -> None:
    history = loop_from("openai", "gpt-4.1", reasoning=Reasoning("plan: call weather", provider="openai",
                                                                 model="gpt-4.1"))
    request = ChatRequest(history, tools=(WEATHER,), reasoning=reasoning)
    seen: list[dict[str, Any]] = []
    tgt = target(model)

    reply = await AnthropicMessages(messages_api(tgt, seen)).complete(request, tgt)

    assert reply.text == "It rains in Oslo: take an umbrella."
    (sent,) = seen
    assert sent["thinking"] == expected
    assert "output_config" not in sent
    # the loop itself goes out natively: the call, then its result, nothing flattened
    assert sent["messages"][-2]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
    ]
    assert sent["messages"][-1]["content"] == [{"type": "tool_result", "tool_use_id": "call_1", "content": "rain, 4C"}]
    assert sent["tools"][0]["name"] == "weather"


async def test_without_the_fallback_the_same_request_is_refused() -> None:
    """Control: the same conversation with our own thinking configuration forced back on."""
    history = loop_from("openai", "gpt-4.1")
    sent = body(ChatRequest(history, tools=(WEATHER,), reasoning="high"), "claude-sonnet-5")
    sent["thinking"] = {"type": "adaptive"}
    assert api_would_refuse(sent, thinks_by_default=False) is not None


def test_own_loop_with_thinking_keeps_thinking_on_and_the_block_first() -> None:
    mine = Reasoning("I should call weather.", signature="sig-own", provider="claude-api", model="claude-sonnet-5")
    history = loop_from("claude-api", "claude-sonnet-5", reasoning=mine)
    sent = body(ChatRequest(history, tools=(WEATHER,), reasoning="high"), "claude-sonnet-5")
    assert sent["thinking"] == {"type": "adaptive"} and sent["output_config"] == {"effort": "high"}
    assert sent["messages"][-2]["content"][0] == {"type": "thinking", "thinking": "I should call weather.",
                                                  "signature": "sig-own"}
    assert api_would_refuse(sent, thinks_by_default=False) is None


def test_later_steps_of_a_loop_we_opened_may_be_foreign() -> None:
    """Only the opening message needs the thinking block; steps after it need none."""
    mine = Reasoning("two lookups", signature="sig-own", provider="claude-api", model="claude-sonnet-5")
    history = (
        Message.user("Weather in Oslo and Rome?"),
        Message("assistant", (mine, ToolCall("toolu_a", "weather", {"city": "Oslo"})), "claude-api",
                "claude-sonnet-5"),
        Message.tool(ToolResult("toolu_a", "weather", (Text("rain"),))),
        Message("assistant", (ToolCall("call_b", "weather", {"city": "Rome"}),), "openai", "gpt-4.1"),
        Message.tool(ToolResult("call_b", "weather", (Text("sun"),))),
    )
    sent = body(ChatRequest(history, tools=(WEATHER,), reasoning="high"), "claude-sonnet-5")
    assert sent["thinking"] == {"type": "adaptive"}
    assert sent["messages"][1]["content"][0]["type"] == "thinking"


def test_thinking_from_another_claude_model_is_not_replayed() -> None:
    """Same provider, other model: the block is bound to its model, so the loop counts as foreign."""
    theirs = Reasoning("plan", signature="sig-opus", provider="claude-api", model="claude-opus-5-5")
    history = loop_from("claude-api", "claude-opus-5-5", reasoning=theirs)
    sent = body(ChatRequest(history, tools=(WEATHER,), reasoning="medium"), "claude-sonnet-5")
    assert "sig-opus" not in json.dumps(sent)
    assert sent["thinking"] == {"type": "disabled"}
    assert api_would_refuse(sent, thinks_by_default=False) is None


def test_own_thinking_inside_the_turn_goes_when_thinking_is_turned_off() -> None:
    """One configuration per turn: with thinking off, the turn in progress carries no thinking."""
    mine = Reasoning("next: Rome", signature="sig-mine", provider="claude-api", model="claude-haiku-4-5")
    history = (
        Message.user("Weather in Oslo and Rome?"),
        Message("assistant", (ToolCall("call_a", "weather", {"city": "Oslo"}),), "openai", "gpt-4.1"),
        Message.tool(ToolResult("call_a", "weather", (Text("rain"),))),
        Message("assistant", (mine, ToolCall("toolu_b", "weather", {"city": "Rome"})), "claude-api",
                "claude-haiku-4-5"),
        Message.tool(ToolResult("toolu_b", "weather", (Text("sun"),))),
    )
    sent = body(ChatRequest(history, tools=(WEATHER,), reasoning="low"), "claude-haiku-4-5")
    assert sent["thinking"] == {"type": "disabled"}
    assert all(b["type"] not in THINKING for m in sent["messages"] for b in m["content"])
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user", "assistant", "user"]


def test_a_fresh_user_message_after_the_loop_needs_no_fallback() -> None:
    history = (*loop_from("openai", "gpt-4.1")[:-1],
               Message("tool", (ToolResult("call_1", "weather", (Text("rain"),)),)),
               Message.user("Thanks! And tomorrow?"))
    sent = body(ChatRequest(history, tools=(WEATHER,), reasoning="high"), "claude-sonnet-5")
    assert sent["thinking"] == {"type": "adaptive"}


# --- models that always think: the foreign loop is closed as text -----------------------------------------


@pytest.mark.parametrize("model", ["claude-opus-5-5", "claude-fable-5-1"])
async def test_always_thinking_models_get_the_foreign_loop_as_text(model: str) -> None:
    history = loop_from("google", "gemini-3.8-flash")
    request = ChatRequest(history, tools=(WEATHER,), reasoning="high")
    seen: list[dict[str, Any]] = []

    reply = await AnthropicMessages(messages_api(target(model), seen)).complete(request, target(model))

    assert reply.text.startswith("It rains in Oslo")
    (sent,) = seen
    assert sent["thinking"] == {"type": "adaptive"}  # cannot be lowered on these models
    assert sent["messages"][-2:] == [
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."},
                                          {"type": "text", "text": '[called tool weather with {"city": "Oslo"}]'}]},
        {"role": "user", "content": [{"type": "text", "text": "[result of weather: rain, 4C]"}]},
    ]
    assert "tool_use" not in json.dumps(sent["messages"])
    assert sent["tools"][0]["name"] == "weather"  # the model may still call it, natively, next


def test_flattened_loop_keeps_errors_images_and_alternation() -> None:
    history = (
        Message.user("Compare the two charts."),
        Message("assistant", (ToolCall("c1", "chart", {"n": 1}), ToolCall("c2", "chart", {"n": 2})), "openai"),
        Message.tool(ToolResult("c1", "chart", (Text("chart 1"), Image("image/png", data="iVBORw0KGgo="))),
                     ToolResult("c2", "chart", (Text("not found"),), is_error=True)),
    )
    sent = body(ChatRequest(history, tools=(Tool("chart"),)), "claude-opus-5-5")
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][-1]["content"] == [
        {"type": "text", "text": "[result of chart: chart 1]"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "[error from chart: not found]"},
    ]


# --- thinking settings -------------------------------------------------------------------------------------


def test_reasoning_none_uses_the_lowest_setting_each_model_accepts() -> None:
    ask = ChatRequest((Message.user("q"),), reasoning="none")
    assert body(ask, "claude-sonnet-5-5")["thinking"] == {"type": "between_tools"}
    assert body(ask, "claude-sonnet-5")["thinking"] == {"type": "disabled"}
    assert "thinking" not in body(ask, "claude-fable-5-1")


def test_forced_tool_use_is_refused_only_with_budget_thinking() -> None:
    forced = ChatRequest((Message.user("q"),), tools=(WEATHER,), force_tool="weather", reasoning="high")
    adaptive = body(forced, "claude-sonnet-5")
    assert adaptive["thinking"] == {"type": "adaptive"}
    assert adaptive["tool_choice"] == {"type": "tool", "name": "weather"}


# --- prompt caching: per request, or for the provider --------------------------------------------------------


def test_prompt_cache_provider_setting_marks_breakpoints() -> None:
    ask = ChatRequest((Message.user("q"),), system="You are terse.", tools=(WEATHER,))
    mark = {"type": "ephemeral", "ttl": "5m"}
    sent = body(ask, "claude-sonnet-5", prompt_cache="5m")
    assert sent["system"] == [{"type": "text", "text": "You are terse.", "cache_control": mark}]
    assert sent["tools"][-1]["cache_control"] == mark
    assert sent["messages"][-1]["content"][-1]["cache_control"] == mark
    on = body(ask, "claude-sonnet-5", prompt_cache="on")
    assert on["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    for off in ({"prompt_cache": "off"}, {}):
        assert "cache_control" not in json.dumps(body(ask, "claude-sonnet-5", **off))


def test_request_option_wins_over_the_provider_setting() -> None:
    ask = ChatRequest((Message.user("q"),), system="s", options={"cache": False})
    assert "cache_control" not in json.dumps(body(ask, "claude-sonnet-5", prompt_cache="1h"))
    ask = ChatRequest((Message.user("q"),), system="s", options={"cache": "1h"})
    assert body(ask, "claude-sonnet-5")["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_prefill_refusal_still_comes_first() -> None:
    with pytest.raises(BadRequest, match="prefill"):
        body(ChatRequest((Message.user("q"), Message.assistant("A:"))), "claude-opus-5-5")
