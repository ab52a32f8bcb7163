"""One conversation per producing provider, with its assistant turns decoded by that provider's
own adapter, so the turns carry what a real switch carries: the provider's tool-call ids,
its signatures and the provider/model that produced them.

Every conversation has the same shape: system prompt; a user turn with text and an image; an
assistant turn with reasoning and a tool call; the tool's result; the assistant's answer; and a
new user turn (the one the target provider is asked to answer). Where a source exposes no such
content the gap is stated on the source (``notes``) and asserted by the tests.

Where the assistant turns come from (``origin``):

* anthropic (claude-api): recorded, ``anthropic/pydantic-ai__test_anthropic__test_anthropic_tool_with_thinking``
  (thinking with signature + text + tool_use, then the answer after the tool result).
* openai: recorded, ``openai/pydantic-ai__test_openai__test_run_stream_sync_streams_real_model``
  (a streamed tool call, then a streamed answer), through ``decode_stream``. Chat Completions
  exposes no reasoning, so this history holds none.
* deepseek (openai-chat with ``reasoning_content``): recorded,
  ``deepseek/pydantic-ai__test_deepseek__test_deepseek_deferred_capability_with_thinking``
  (reasoning + text + one call; reasoning + text + two parallel calls; reasoning + answer).
* gemini: built. No recording holds a functionCall with a thoughtSignature (the recorded calls
  are gemini-2.0 without ids or signatures; the recorded signatures ride on text). The bodies
  follow the documented Gemini 3 shape: a ``thought`` part, a ``functionCall`` part without an
  id carrying the turn's ``thoughtSignature``, and an answer whose last part carries one.
* bedrock: built. The recordings hold either a toolUse (Nova) or signed reasoningContent (Claude),
  never both; the bodies follow those recorded Converse shapes for Claude on Bedrock.
* ollama: built from ollama/docs/api.md (a ``tool_calls`` reply without ids) and the thinking
  docs (``message.thinking``); realdata has no native reply with tool calls or thinking.
* kimi (Kimi K2 on Together, openai-chat): built. Kimi's native tool-call ids look like
  ``functions.get_weather:0`` (vLLM's Kimi K2 parser docs); realdata has no such id. The dots
  and colons are what Anthropic and Mistral refuse, so this source is the id hazard; the two
  parallel calls of one tool also test Gemini's pairing by name.
* claude-sdk: recorded CLI output, ``claude-cli/bb__plan-mode__provider-to-bridge.lines.jsonl``
  (three signed thinking blocks and text) and ``bb__approval-allow__...`` (the next turn), through
  the SDK's message parser and ``CliDecoder``. The CLI runs its own tools and never hands a tool
  call to the caller, so this history has no tool call or result.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx2

from ironspire.messages import Accumulator, Image, Message, Text, ToolCall, ToolResult
from ironspire.protocols.anthropic_messages import AnthropicMessages
from ironspire.protocols.base import HttpProtocol, Target, Tool
from ironspire.protocols.bedrock_converse import BedrockConverse
from ironspire.protocols.gemini import Gemini
from ironspire.protocols.ollama_chat import OllamaChat
from ironspire.protocols.openai_chat import OpenAIChat
from ironspire.protocols.openai_responses import OpenAIResponses
from ironspire.transport import Transport
from support.recordings import Interaction, load

from .targets import make_target

#: a real 1x1 PNG, so every target's image form can be checked against the same bytes
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
IMAGE = Image("image/png", data=PNG_B64)
SYSTEM = "You are a concise assistant. Answer in one short paragraph."

SOURCES = ("anthropic", "openai", "responses", "deepseek", "kimi", "gemini", "bedrock", "ollama", "claude-sdk")

#: synthetic signatures for the built bodies: base64 like the real ones, unique so a leak is found
GEMINI_SIGNATURES = (
    base64.b64encode(b"gemini-thought-signature-for-the-function-call-turn").decode(),
    base64.b64encode(b"gemini-thought-signature-for-the-answer-turn").decode(),
)
BEDROCK_SIGNATURES = (
    base64.b64encode(b"bedrock-claude-reasoning-signature-for-the-tool-turn").decode(),
    base64.b64encode(b"bedrock-claude-reasoning-signature-for-the-answer").decode(),
)


@dataclass(frozen=True)
class Produced:
    source: str
    origin: str
    system: str
    tools: tuple[Tool, ...]
    messages: tuple[Message, ...]
    notes: tuple[str, ...] = field(default=())


def _transport() -> Transport:
    return Transport()


def _recording(realdata: Path, name: str) -> list[Interaction]:
    return load(realdata / name)


def _tool_turn(call: ToolCall, text: str) -> Message:
    return Message.tool(ToolResult(call.id, call.name, (Text(text),)))


async def _decode_stream(protocol: HttpProtocol, body: bytes, content_type: str, target: Target) -> Message:
    response = httpx2.Response(200, headers={"content-type": content_type}, content=body)
    acc = Accumulator(target.provider.id, target.model.id)
    events: AsyncIterator[Any] = protocol.decode_stream(response, target)
    async for event in events:
        acc.add(event)
    return acc.message()


# --- per source ------------------------------------------------------------------------------


def _anthropic(realdata: Path) -> Produced:
    rec = _recording(realdata, "anthropic/pydantic-ai__test_anthropic__test_anthropic_tool_with_thinking.yaml")
    target = make_target("anthropic")
    protocol = AnthropicMessages(_transport())
    first, answer = protocol.decode(rec[0].body, target), protocol.decode(rec[1].body, target)
    question = rec[0].request_json["messages"][0]["content"][0]["text"]
    result = rec[1].request_json["messages"][2]["content"][0]["content"]  # "Mexico"
    spec = rec[0].request_json["tools"][0]
    return Produced(
        "anthropic", "recorded", SYSTEM,
        (Tool(spec["name"], spec["description"], spec["input_schema"]),),
        (Message.user(question, IMAGE), first, _tool_turn(first.tool_calls[0], result), answer,
         Message.user("And how many people live there?")),
    )


def _openai(realdata: Path) -> Produced:
    rec = _recording(realdata, "openai/pydantic-ai__test_openai__test_run_stream_sync_streams_real_model.yaml")
    target = make_target("openai")
    protocol = OpenAIChat(_transport())
    first = asyncio.run(_decode_stream(protocol, rec[0].body, rec[0].headers["content-type"], target))
    answer = asyncio.run(_decode_stream(protocol, rec[1].body, rec[1].headers["content-type"], target))
    question = rec[0].request_json["messages"][0]["content"]
    result = rec[1].request_json["messages"][2]["content"]  # "London"
    spec = rec[0].request_json["tools"][0]["function"]
    return Produced(
        "openai", "recorded", SYSTEM,
        (Tool(spec["name"], spec["description"], spec["parameters"]),),
        (Message.user(question, IMAGE), first, _tool_turn(first.tool_calls[0], result), answer,
         Message.user("And of France?")),
        ("Chat Completions exposes no reasoning: this history holds none",),
    )


def _responses(realdata: Path) -> Produced:
    """A reasoning summary with its encrypted content, then the function call it led to, then the answer."""
    rec = _recording(realdata, "openai-responses/pydantic-ai__test_openai_responses__"
                               "test_openai_responses_thinking_with_tool_calls.yaml")
    target = make_target("responses")
    protocol = OpenAIResponses(_transport())
    first, answer = protocol.decode(rec[0].body, target), protocol.decode(rec[1].body, target)
    question = rec[0].request_json["input"][0]["content"]
    result = rec[1].request_json["input"][3]["output"]
    spec = rec[0].request_json["tools"][0]
    return Produced(
        "responses", "recorded", SYSTEM,
        (Tool(spec["name"], spec["description"] or "", spec["parameters"]),),
        (Message.user(question, IMAGE), first, _tool_turn(first.tool_calls[0], result), answer,
         Message.user("Now a shorter one.")),
        ("recorded on gpt-5; decoded as gpt-6.1-sol's so the origin is a registry model",),
    )


def _deepseek(realdata: Path) -> Produced:
    rec = _recording(
        realdata, "deepseek/pydantic-ai__test_deepseek__test_deepseek_deferred_capability_with_thinking.yaml"
    )
    target = make_target("deepseek")
    protocol = OpenAIChat(_transport())
    first, second, answer = (protocol.decode(rec[i].body, target) for i in range(3))
    sent = rec[2].request_json["messages"]
    results = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    tools = tuple(
        Tool(t["function"]["name"], t["function"]["description"], t["function"]["parameters"])
        for t in rec[2].request_json["tools"] if t["function"]["name"] != "search_tools"
    )
    parallel = Message.tool(*(ToolResult(c.id, c.name, (Text(results[c.id]),)) for c in second.tool_calls))
    return Produced(
        "deepseek", "recorded", sent[0]["content"], tools,
        (Message.user(sent[2]["content"], IMAGE), first,
         _tool_turn(first.tool_calls[0], results[first.tool_calls[0].id]),
         second, parallel, answer, Message.user("Again! My guess is 2.")),
    )


def _kimi(realdata: Path) -> Produced:
    target = make_target("kimi")
    protocol = OpenAIChat(_transport())

    def body(message: dict[str, Any], finish: str, n: int) -> bytes:
        return json.dumps({
            "id": f"oFzK3Lm-{n}", "object": "chat.completion", "created": 1767225600, "model": target.model.id,
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 212, "completion_tokens": 41, "total_tokens": 253},
        }).encode()

    first = protocol.decode(body({"content": "I'll check both cities.", "tool_calls": [
        {"id": f"functions.get_weather:{i}", "type": "function", "index": i,
         "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}
        for i, city in enumerate(("Paris", "Rome"))
    ]}, "tool_calls", 1), target)
    answer = protocol.decode(body({"content": "Paris is cloudy at 14°C; Rome is sunny at 21°C."}, "stop", 2), target)
    results = Message.tool(*(ToolResult(c.id, c.name, (Text(w),))
                             for c, w in zip(first.tool_calls, ("Cloudy, 14°C", "Sunny, 21°C"), strict=True)))
    return Produced(
        "kimi", "built", SYSTEM,
        (Tool("get_weather", "Get weather information",
              {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),),
        (Message.user("Compare the weather in Paris and Rome.", IMAGE), first, results, answer,
         Message.user("Which one is better for a walk?")),
        ("Kimi K2 Instruct exposes no reasoning: this history holds none",),
    )


def _gemini_body(parts: list[dict[str, Any]], response_id: str, thoughts: int) -> bytes:
    target = make_target("gemini")
    return json.dumps({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 310, "candidatesTokenCount": 24, "thoughtsTokenCount": thoughts,
                          "totalTokenCount": 334 + thoughts},
        "modelVersion": target.model.id,
        "responseId": response_id,
    }).encode()


def _gemini(realdata: Path) -> Produced:
    target = make_target("gemini")
    protocol = Gemini(_transport())
    first = protocol.decode(_gemini_body([
        {"text": "**Finding the user's country**\n\nI need the user's country before I can name its largest city; "
                 "get_user_country returns it.", "thought": True},
        {"functionCall": {"name": "get_user_country", "args": {}}, "thoughtSignature": GEMINI_SIGNATURES[0]},
    ], "xQ3maPm0J9u1nvgP8aKc2Ak", 61), target)
    answer = protocol.decode(_gemini_body([
        {"text": "The largest city in Mexico is Mexico City, with about 9.2 million people in the city proper.",
         "thoughtSignature": GEMINI_SIGNATURES[1]},
    ], "yQ3maKq7Mdu1nvgPu6SB8Ak", 0), target)
    return Produced(
        "gemini", "built", SYSTEM,
        (Tool("get_user_country", "", {"type": "object", "properties": {}}),),
        (Message.user("What is the largest city in the user country?", IMAGE), first,
         _tool_turn(first.tool_calls[0], "Mexico"), answer, Message.user("And how many people live there?")),
    )


def _bedrock_body(content: list[dict[str, Any]], stop: str) -> bytes:
    return json.dumps({
        "metrics": {"latencyMs": 2281},
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 426, "outputTokens": 66, "totalTokens": 492},
    }).encode()


def _bedrock(realdata: Path) -> Produced:
    target = make_target("bedrock")
    protocol = BedrockConverse(_transport())
    first = protocol.decode(_bedrock_body([
        {"reasoningContent": {"reasoningText": {
            "text": "The user wants the capital of France; the get_capital tool answers that directly.",
            "signature": BEDROCK_SIGNATURES[0]}}},
        {"text": "I'll look that up."},
        {"toolUse": {"toolUseId": "tooluse_Ze_bgl9CSqu8aJv7XD-_Dw", "name": "get_capital",
                     "input": {"country": "France"}}},
    ], "tool_use"), target)
    answer = protocol.decode(_bedrock_body([
        {"reasoningContent": {"reasoningText": {
            "text": "The tool returned Paris, so I can answer.", "signature": BEDROCK_SIGNATURES[1]}}},
        {"text": "The capital of France is Paris."},
    ], "end_turn"), target)
    return Produced(
        "bedrock", "built", "You are a helpful chatbot.",
        (Tool("get_capital", "Get the capital of a country.",
              {"type": "object", "properties": {"country": {"type": "string"}}, "required": ["country"]}),),
        (Message.user("What is the capital of France?", IMAGE), first, _tool_turn(first.tool_calls[0], "Paris"),
         answer, Message.user("And of Italy?")),
    )


def _ollama(realdata: Path) -> Produced:
    target = make_target("ollama")
    protocol = OllamaChat(_transport())

    def body(*lines: dict[str, Any]) -> bytes:
        return b"".join(json.dumps({"model": target.model.id, **line}).encode() + b"\n" for line in lines)

    done = {"done_reason": "stop", "done": True, "total_duration": 3244883583, "load_duration": 2969184542,
            "prompt_eval_count": 169, "prompt_eval_duration": 141656333, "eval_count": 18,
            "eval_duration": 133293625}
    first = protocol.decode(body(
        {"created_at": "2025-07-07T20:22:19.184789Z", "done": False, "message": {
            "role": "assistant", "content": "",
            "thinking": "The user asks about the weather in Tokyo. I should call get_weather with city Tokyo.",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]}},
        {"created_at": "2025-07-07T20:22:19.19314Z", "message": {"role": "assistant", "content": ""}, **done},
    ), target)
    answer = protocol.decode(body(
        {"created_at": "2025-07-07T20:22:21.52Z", "done": False, "message": {
            "role": "assistant", "content": "", "thinking": "The tool says it is sunny and 22°C. Answer briefly."}},
        {"created_at": "2025-07-07T20:22:21.83Z", "done": False, "message": {
            "role": "assistant", "content": "It is sunny in Tokyo, 22°C."}},
        {"created_at": "2025-07-07T20:22:21.84Z", "message": {"role": "assistant", "content": ""}, **done},
    ), target)
    return Produced(
        "ollama", "built", SYSTEM,
        (Tool("get_weather", "Get the weather in a given city",
              {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),),
        (Message.user("What is the weather in Tokyo?", IMAGE), first, _tool_turn(first.tool_calls[0], "Sunny, 22°C"),
         answer, Message.user("And tomorrow?")),
    )


def _cli_turn(path: Path, target: Target) -> Message:
    from claude_agent_sdk._internal.message_parser import parse_message

    from ironspire.protocols.claude_cli import CliDecoder

    decoder = CliDecoder(target)
    acc = Accumulator(target.provider.id, target.model.id)
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip().startswith("{"):
            continue
        record = json.loads(line)
        if record["type"].startswith("control_"):
            continue  # the SDK's Query routes control messages away from the parser
        message = parse_message(record)
        if message is not None:
            acc.feed(decoder.feed(message))
    assert decoder.done
    return acc.message()


def _claude_sdk(realdata: Path) -> Produced:
    target = make_target("claude-sdk")
    folder = realdata / "claude-cli"
    first = _cli_turn(folder / "bb__plan-mode__provider-to-bridge.lines.jsonl", target)
    second = _cli_turn(folder / "bb__approval-allow__provider-to-bridge.lines.jsonl", target)
    return Produced(
        "claude-sdk", "recorded", SYSTEM, (),
        (Message.user("Add a multiply function to math.js, like in this screenshot.", IMAGE), first,
         Message.user("Go ahead and make the change."), second, Message.user("Thanks. What did you change?")),
        ("the Claude CLI runs its own tools and hands no tool call to the caller: no tool history",),
    )


_PRODUCERS = {
    "anthropic": _anthropic, "openai": _openai, "responses": _responses, "deepseek": _deepseek, "kimi": _kimi,
    "gemini": _gemini, "bedrock": _bedrock, "ollama": _ollama, "claude-sdk": _claude_sdk,
}


@cache
def produce(source: str, realdata: Path) -> Produced:
    """The conversation as produced on ``source`` (decoded once per test session)."""
    return _PRODUCERS[source](realdata)
