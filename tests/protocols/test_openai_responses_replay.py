"""Every recorded Responses API exchange, replayed through the real transport and the Responses
adapter: streams whole and in small odd-sized reads, JSON bodies through the same Accumulator.

What each answer holds is read independently (support.responses_recordings) from the finished
items; where a recording has its request, the encoder must build an equivalent one from the
same conversation (read from that request into neutral messages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ironspire.errors import AuthenticationError, BadRequest, ModelNotFound, ProviderError
from ironspire.messages import Image, Message, Part, Reasoning, Text, ToolCall, ToolResult, Usage
from ironspire.protocols.base import ChatRequest, Target, Tool
from ironspire.protocols.openai_responses import OpenAIResponses
from support.recordings import Interaction
from support.replay import ReplayTransport, Server, collect
from support.responses_recordings import ELSEWHERE, REALDATA, Exchange, exchanges, holds

FOLDER = "openai-responses"
#: recorded requests that chain on state kept at the provider; this adapter is stateless by design
#: (store: false, the history and the reasoning are sent every time), so there is no equivalent
STATEFUL = "previous_response_id"
#: odd read sizes, so SSE frames, lines and UTF-8 sequences split mid-way
READS = (None, 7, 61)


def _files(realdata: Path) -> list[str]:
    return sorted(f"{FOLDER}/{p.name}" for p in (realdata / FOLDER).iterdir()) + list(ELSEWHERE)


def _cases() -> list[Any]:
    out = []
    for rel in _files(REALDATA):
        for n, ex in enumerate(exchanges(REALDATA, rel)):
            for read in READS if ex.stream else (None,):
                out.append(pytest.param(rel, n, read, id=f"{ex.name}@{read or 'whole'}"))
    return out


async def replay(ex: Exchange, read: int | None = None) -> Message:
    rec = Interaction("POST", "", {}, None, ex.status, ex.headers, ex.body)
    adapter = OpenAIResponses(ReplayTransport(Server([rec], chunk=read)))
    request = ChatRequest((Message.user("replay"),))
    if not ex.stream:
        return await adapter.complete(request, ex.target)
    _, message = await collect(adapter, request, ex.target)
    return message


def expected_usage(raw: dict[str, Any]) -> Usage:
    cached = (raw.get("input_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (raw.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
    output = raw["output_tokens"]
    if raw.get("total_tokens") == raw["input_tokens"] + output + reasoning and reasoning:
        output += reasoning
    return Usage(raw["input_tokens"] - cached, output, cached, 0, reasoning)


def payloads(message: Message) -> list[dict[str, Any]]:
    return [json.loads(p.signature or "{}") for p in message.parts if isinstance(p, Reasoning)]


def test_every_responses_recording_is_replayed(realdata: Path) -> None:
    files = _files(realdata)
    assert len([f for f in files if f.startswith(FOLDER)]) == 37
    for rel in files:
        assert exchanges(realdata, rel), rel


@pytest.mark.parametrize(("rel", "n", "read"), _cases())
async def test_replay(realdata: Path, rel: str, n: int, read: int | None) -> None:
    ex = exchanges(realdata, rel)[n]
    if ex.status >= 400:
        with pytest.raises(ProviderError) as info:
            await replay(ex, read)
        body = json.loads(ex.body)
        code = body["error"].get("code")
        expected = {401: AuthenticationError}.get(ex.status, ModelNotFound if code == "model_not_found" else BadRequest)
        assert type(info.value) is expected and info.value.status == ex.status
        return
    want = holds(ex)
    message = await replay(ex, read)
    assert message.text == want.text
    assert [(c.id, c.name, dict(c.arguments)) for c in message.tool_calls] == want.calls
    reasoning = [p for p in message.parts if isinstance(p, Reasoning)]
    assert [p.text for p in reasoning] == want.summaries
    assert [p["id"] for p in payloads(message)] == want.reasoning_ids
    assert [p["encrypted_content"] for p in payloads(message) if "encrypted_content" in p] == want.encrypted
    assert all((p.provider, p.model) == (ex.target.provider.id, ex.target.model.id) for p in reasoning)
    assert message.usage == (expected_usage(want.usage) if want.usage else None)
    if want.incomplete == "max_output_tokens":
        assert message.finish_reason == "length"
    elif want.calls:
        assert message.finish_reason == "tool_calls"
    else:
        assert want.status == "completed" and message.finish_reason == "stop"


# --- literal facts from the recordings --------------------------------------------------------


def _one(realdata: Path, rel: str, n: int = 0) -> Exchange:
    return exchanges(realdata, rel)[n]


async def test_encrypted_reasoning_before_its_call(realdata: Path) -> None:
    ex = _one(realdata, f"{FOLDER}/llm__test_openai_responses__test_responses_round_trips_encrypted_reasoning.yaml")
    message = await replay(ex)
    reasoning, call = message.parts
    assert isinstance(reasoning, Reasoning) and isinstance(call, ToolCall)
    assert reasoning.text == ""
    assert json.loads(reasoning.signature or "")["encrypted_content"].startswith("gAAAAABp-rIa")
    assert (call.id, call.name, call.arguments) == ("call_uy7tfNVokIN7NjFF6k7OtLyl", "lookup_population",
                                                    {"country": "Pundora"})
    assert message.finish_reason == "tool_calls"


async def test_streamed_summary_and_cached_tokens_xai(realdata: Path) -> None:
    ex = _one(realdata, f"{FOLDER}/ai__xai__xai-text-with-reasoning-streaming-store-false.1.chunks.txt")
    message = await replay(ex, 11)
    assert message.usage == Usage(input=216 - 192, output=831, cache_read=192, reasoning=253)
    assert message.reasoning and "encrypted_content" in payloads(message)[0]
    assert message.finish_reason == "stop"


async def test_incomplete_is_length(realdata: Path) -> None:
    for name in ("sync", "stream"):
        ex = _one(realdata, f"{FOLDER}/mirascope__test_max_tokens__openai_gpt_4o_responses__{name}.yaml")
        message = await replay(ex, 13)
        assert message.finish_reason == "length" and message.text


async def test_refusal_is_the_answer_text(realdata: Path) -> None:
    for name in ("sync", "stream"):
        ex = _one(realdata, f"{FOLDER}/mirascope__test_refusal__openai_gpt_4o_responses__{name}.yaml")
        message = await replay(ex)
        assert "sorry" in message.text and message.finish_reason == "stop", message.text


async def test_openrouter_raw_reasoning_and_done_terminator(realdata: Path) -> None:
    ex = _one(realdata, f"{FOLDER}/pydantic-ai__test_openai_responses__test_openai_responses_raw_cot_stream_openrouter"
                        ".yaml")
    message = await replay(ex, 5)
    assert message.reasoning and message.text
    assert "content" in payloads(message)[0] and "encrypted_content" not in payloads(message)[0]


async def test_four_steps_in_one_vercel_file(realdata: Path) -> None:
    steps = exchanges(realdata, f"{FOLDER}/ai__openai__openai-reasoning-encrypted-content.1.chunks.txt")
    assert len(steps) == 4
    messages = [await replay(s, 17) for s in steps]
    assert [m.finish_reason for m in messages] == ["tool_calls", "tool_calls", "tool_calls", "stop"]
    assert messages[0].reasoning  # streamed reasoning_summary_text.delta


# --- encoder equivalence ----------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(c.get("text") or "" for c in content)


def _user_parts(content: Any) -> tuple[Text | Image, ...]:
    if isinstance(content, str):
        return (Text(content),)
    out: list[Text | Image] = []
    for c in content:
        if c["type"] == "input_text":
            out.append(Text(c["text"]))
        elif c["type"] == "input_image":
            out.append(Image("image/*", url=c["image_url"]))
    return tuple(out)


def neutral(request: dict[str, Any], target: Target) -> ChatRequest:
    """The conversation a recorded request carries, as neutral messages. Assistant-side items are
    read through the adapter's own decoder, as a reply holding them would have been."""
    adapter = OpenAIResponses()
    items = request["input"]
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items
    messages: list[Message] = []
    produced: list[dict[str, Any]] = []
    names: dict[str, str] = {}

    def flush() -> None:
        if produced:
            body = json.dumps({"object": "response", "status": "completed", "output": produced}).encode()
            messages.append(adapter.decode(body, target))
            produced.clear()

    for item in items:
        kind, role = item.get("type"), item.get("role")
        if kind in ("reasoning", "function_call") or role == "assistant":
            if kind == "function_call":
                names[item["call_id"]] = item["name"]
            if role == "assistant":
                item = {"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": _text_of(item["content"])}]}
            produced.append(item)
            continue
        flush()
        if kind == "function_call_output":
            result = ToolResult(item["call_id"], names.get(item["call_id"], ""), (Text(item["output"]),))
            if messages and messages[-1].role == "tool":
                messages[-1] = Message("tool", (*messages[-1].parts, result))
            else:
                messages.append(Message.tool(result))
        elif role in ("system", "developer"):
            messages.append(Message.system(_text_of(item["content"])))
        else:
            messages.append(Message("user", _user_parts(item["content"])))
    flush()
    tools = tuple(Tool(t["name"], t.get("description") or "", t["parameters"]) for t in request.get("tools") or ())
    choice = request.get("tool_choice")
    reasoning = request.get("reasoning") or {}
    options: dict[str, Any] = {}
    if request.get("text"):
        options["text"] = request["text"]
    if reasoning.get("summary"):
        options["reasoning_summary"] = reasoning["summary"]
    return ChatRequest(
        tuple(messages), system=request.get("instructions"), tools=tools,
        tool_choice=choice if isinstance(choice, str) else None,
        force_tool=choice["name"] if isinstance(choice, dict) else None,
        max_tokens=request.get("max_output_tokens"), temperature=request.get("temperature"),
        reasoning=reasoning.get("effort"), options=options,
    )


def _item(item: dict[str, Any]) -> Any:
    kind, role = item.get("type"), item.get("role")
    if kind == "function_call":
        return ("call", item["call_id"], item["name"], json.loads(item["arguments"]))
    if kind == "function_call_output":
        return ("result", item["call_id"], item["output"])
    if kind == "reasoning":
        return ("reasoning", item["id"], item.get("encrypted_content"), [s["text"] for s in item.get("summary") or []],
                [c["text"] for c in item.get("content") or []])
    if role == "user":
        parts = _user_parts(item["content"])
        return ("user", [(p.text if isinstance(p, Text) else p.url) for p in parts])
    return ("system" if role == "developer" else role, _text_of(item["content"]))


def shape(body: dict[str, Any]) -> dict[str, Any]:
    """What makes two Responses requests the same request."""
    items = body["input"]
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items
    return {
        "model": body["model"],
        "instructions": body.get("instructions") or None,  # pydantic-ai sends "" for none
        "input": [_item(i) for i in items],
        "tools": [(t["name"], t.get("description") or "", t["parameters"]) for t in body.get("tools") or ()],
        "tool_choice": body.get("tool_choice"),
        "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"),
        "effort": (body.get("reasoning") or {}).get("effort"),
        "text": body.get("text"),
        "stream": bool(body.get("stream")),
    }


def _requests() -> list[Any]:
    out = []
    for rel in _files(REALDATA):
        for n, ex in enumerate(exchanges(REALDATA, rel)):
            if ex.request is not None and STATEFUL not in ex.request:
                out.append(pytest.param(rel, n, id=ex.name))
    return out


@pytest.mark.parametrize(("rel", "n"), _requests())
def test_encoder_builds_the_recorded_request(realdata: Path, rel: str, n: int) -> None:
    ex = exchanges(realdata, rel)[n]
    assert ex.request is not None
    request = neutral(ex.request, ex.target)
    wire = OpenAIResponses().encode(
        request, ex.target, stream=bool(ex.request.get("stream")))
    assert wire.url.endswith("/responses")
    assert shape(wire.json) == shape(ex.request)
    assert wire.json["store"] is False  # never stored at the provider, whatever the recording did
    assert ("include" in wire.json) == ex.target.model.reasoning
    summary = (ex.request.get("reasoning") or {}).get("summary")
    if summary:
        assert wire.json["reasoning"]["summary"] == summary


async def test_decoded_reasoning_goes_back_as_recorded(realdata: Path) -> None:
    """The turn decoded from a recorded answer, encoded for the next request, carries the same
    reasoning item the client sent there: id and encrypted content (OpenAI) or raw text (DeepSeek)."""
    cases = [
        (f"{FOLDER}/llm__test_openai_responses__test_responses_round_trips_encrypted_reasoning.yaml", "call_"),
        (f"{FOLDER}/pydantic-ai__test_openai_responses__test_openai_responses_thinking_with_tool_calls.yaml", "call_"),
        (f"{FOLDER}/pydantic-ai__test_deepseek_responses__test_deepseek_responses_function_tool_.yaml", "call_"),
    ]
    for rel, _ in cases:
        first, second = exchanges(realdata, rel)[:2]
        assert second.request is not None
        reply = await replay(first)
        recorded_results = [i for i in second.request["input"] if i.get("type") == "function_call_output"]
        result = recorded_results[0]
        history: list[Message] = [Message("user", _user_parts(second.request["input"][0]["content"])), reply,
                                  Message.tool(ToolResult(result["call_id"], reply.tool_calls[0].name,
                                                          (Text(result["output"]),)))]
        request = ChatRequest(tuple(history))
        sent = OpenAIResponses().encode(
            request, second.target, stream=False).json
        ours = [_item(i) for i in sent["input"] if i.get("type") in ("reasoning", "function_call")]
        theirs = [_item(i) for i in second.request["input"] if i.get("type") in ("reasoning", "function_call")]
        assert ours == theirs, rel


async def test_reasoning_never_reaches_another_origin(realdata: Path) -> None:
    ex = _one(realdata, f"{FOLDER}/llm__test_openai_responses__test_responses_round_trips_encrypted_reasoning.yaml")
    reply = await replay(ex)
    parts: tuple[Part, ...] = reply.parts
    history = (Message.user("hi"), Message("assistant", parts, reply.provider, reply.model),
               Message.tool(ToolResult(reply.tool_calls[0].id, "lookup_population", (Text("1"),))))
    from support.responses_recordings import make_target

    for other in (make_target("openai", "gpt-6.1-sol", None, reasoning=True),
                  make_target("xai", "grok-4.3", None, reasoning=True)):
        sent = OpenAIResponses().encode(
            ChatRequest(history), other, stream=False).json
        assert not [i for i in sent["input"] if i.get("type") == "reasoning"]
        assert "gAAAAA" not in json.dumps(sent)
