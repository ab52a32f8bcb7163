"""Every recorded Chat Completions exchange for the OpenAI-compatible providers, replayed through
the real transport and decoder.

Each recorded response is served (status, headers, body) by an httpx2.MockTransport mounted in the
real ``Transport``; the turn the user would get back is compared with what the recording holds.
Expectations come from the recorded body itself (read independently of the decoder, below) and,
for the cases that matter most, from literal values copied out of the recordings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ironspire.catalog.models import Registry, dynamic_model
from ironspire.catalog.providers import CustomEndpoint, builtin
from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ModelNotFound,
    ProviderError,
    RateLimitError,
)
from ironspire.messages import Message
from ironspire.protocols.base import ChatRequest, Secrets, Target
from ironspire.protocols.openai_chat import OpenAIChat
from support.recordings import Interaction, load
from support.replay import ReplayTransport, Server, collect

REALDATA = Path(os.environ.get("IRONSPIRE_SHARED", Path(__file__).resolve().parents[2].parent / "shared")) / "realdata"
DIRS = ("openai", "azure", "mistral", "deepseek", "xai", "groq", "together", "other")

#: Files in those folders that are not Chat Completions exchanges, and why they are not replayed here.
SKIPPED = {
    "openai/llm__test_openai_responses__test_responses_tool_use_streaming.yaml":
        "OpenAI Responses API; replayed in test_openai_responses_replay",
    "azure/openllmetry__test_embeddings__test_azure_openai_embeddings.yaml":
        "embeddings endpoint; only its 401 body is chat-shaped and is replayed in test_recorded_error_bodies",
    "deepseek/pydantic-ai__test_deepseek_responses__test_deepseek_responses_rejects_interleaved_function_calls.yaml":
        "DeepSeek /responses endpoint; replayed in test_openai_responses_replay",
    "deepseek/pydantic-ai__test_deepseek_responses__test_deepseek_responses_text_stream_.yaml":
        "DeepSeek /responses endpoint; replayed in test_openai_responses_replay",
    "xai/pydantic-ai__test_xai__test_xai_request_tool_call.xai.yaml": "xAI gRPC (xai_sdk protobuf)",
    "xai/pydantic-ai__test_xai__test_xai_stream_events_with_reasoning.xai.yaml": "xAI gRPC (xai_sdk protobuf)",
    "together/openllmetry__test_completion__test_together_completion_legacy.yaml": "legacy /v1/completions, not chat",
    "other/ERROR_BODIES_FROM_ISSUE_THREADS.md": "quoted error bodies, not traffic; used in test_quoted_error_bodies",
    "openai/ai__openai__openai-error.1.json": "error body without status; used in test_recorded_error_bodies",
    "openai/ai__openai__reasoning-model-legacy-parameter-error.json":
        "error body without status; used in test_recorded_error_bodies",
}
#: Interactions inside chat cassettes that go to another API.
SKIPPED_URIS = ("/v1/responses",)

# --- targets ---------------------------------------------------------------------------------

_REGISTRY = Registry()
_KEY = "sk-test-0123456789abcdef"


def make_target(provider: str, model: str, base_url: str | None = None, settings: dict[str, str] | None = None,
                ) -> Target:
    if provider.startswith("custom:"):
        spec = CustomEndpoint(provider.split(":", 1)[1], base_url or "http://127.0.0.1:9/v1", model).spec()
    else:
        spec = builtin(provider)
    model_spec = _REGISTRY.find(spec.id, model) or dynamic_model(spec.id, model)
    return Target(spec, model_spec, base_url or spec.base_url, Secrets({"api_key": _KEY}), settings or {})


def target_for(rel: str, item: Interaction) -> Target:
    provider = rel.split("/", 1)[0]
    model = str((item.request_json or {}).get("model") or "recorded-model")
    uri = httpx2.URL(item.uri) if item.uri else None
    if provider == "azure" and uri is not None:
        deployment = uri.path.split("/deployments/")[1].split("/")[0]
        return make_target("azure-openai", deployment, f"https://{uri.host}",
                           {"deployment": deployment, "api_version": uri.params.get("api-version", "2024-10-21")})
    if provider == "other" and uri is not None:
        base = f"https://{uri.host}{uri.path.rsplit('/', 2)[0]}"  # {base}/chat/completions
        return make_target(f"custom:{uri.host.split('.')[-2]}", model, base)
    if provider == "together" and uri is not None and "huggingface" in uri.host:
        return make_target("together", model, "https://router.huggingface.co/together/v1")
    return make_target(provider, model)


# --- serving recordings through the real transport --------------------------------------------


async def run(target: Target, status: int, headers: dict[str, str], body: bytes, *, stream: bool) -> Message:
    adapter = OpenAIChat(ReplayTransport(Server([Interaction("POST", "", {}, None, status, headers, body)])))
    request = ChatRequest((Message.user("replay"),))
    if not stream:
        return await adapter.complete(request, target)
    _, message = await collect(adapter, request, target)
    return message


# --- an independent reading of what a recorded body holds --------------------------------------


@dataclass
class Holds:
    text: str = ""
    reasoning: str = ""
    calls: dict[int, list[Any]] = field(default_factory=dict)  # position -> [id, name, arguments text]
    finish: str | None = None
    usage: dict[str, Any] | None = None


def _read_delta(holds: Holds, delta: dict[str, Any]) -> None:
    content = delta.get("content")
    if isinstance(content, str):
        holds.text += content
    elif isinstance(content, list):
        for chunk in content:
            if chunk.get("type") == "text":
                holds.text += chunk["text"]
            elif chunk.get("type") == "thinking":
                holds.reasoning += "".join(t["text"] for t in chunk["thinking"])
    holds.reasoning += delta.get("reasoning_content") or delta.get("reasoning") or ""
    for pos, tc in enumerate(delta.get("tool_calls") or []):
        key = tc.get("index", pos) if "index" in tc or "function" in tc else pos
        entry = holds.calls.setdefault(key, [tc.get("id"), "", ""])
        fn = tc.get("function") or {}
        entry[1] += fn.get("name") or ""
        entry[2] += fn.get("arguments") or ""


#: Providers whose R1-style models write reasoning into the answer: ``<think>`` opening the
#: answer is reasoning there (see ``inline_think``); elsewhere it stays text.
INLINE_THINK = ("together", "fireworks", "groq", "ollama")


def _inline_think(holds: Holds) -> None:
    head = holds.text.lstrip()
    if head.startswith("<think>") and "</think>" in head:
        thought, answer = head[len("<think>"):].split("</think>", 1)
        holds.reasoning += thought
        holds.text = answer.lstrip()


def holds_of(body: bytes, stream: bool, target: Target | None = None) -> Holds:
    holds = Holds()
    chunks = (
        [json.loads(line[5:]) for line in body.decode().splitlines()
         if line.startswith("data:") and line[5:].strip() != "[DONE]"]
        if stream else [json.loads(body)]
    )
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            _read_delta(holds, choice.get("delta") or choice.get("message") or {})
            holds.finish = choice.get("finish_reason") or holds.finish
        holds.usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage") or holds.usage
    if target is not None and (target.provider.id in INLINE_THINK or target.provider.id.startswith("custom-")):
        _inline_think(holds)
    return holds


NORMALISED = {"stop": "stop", "eos": "stop", "length": "length", "tool_calls": "tool_calls",
              "content_filter": "content_filter"}


def assert_matches(message: Message, holds: Holds) -> None:
    assert message.role == "assistant"
    assert message.text == holds.text
    assert message.reasoning == holds.reasoning
    assert [(c.name, c.arguments) for c in message.tool_calls] == [
        (name, json.loads(args) if args else {}) for _, name, args in holds.calls.values()
    ]
    assert [c.id for c in message.tool_calls] == [cid for cid, _, _ in holds.calls.values()]
    # No finish_reason at all (the stream ended with [DONE]): the reason is inferred.
    inferred = "tool_calls" if holds.calls else "stop"
    assert message.finish_reason == (NORMALISED[holds.finish] if holds.finish else inferred)
    if holds.usage is None:
        assert message.usage is None
        return
    u, raw = message.usage, holds.usage
    assert u is not None
    cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens") or raw.get("prompt_cache_hit_tokens") or 0
    reasoning = (raw.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    assert u.cache_read == cached
    assert u.input + u.cache_read + u.cache_write == raw["prompt_tokens"]
    assert u.reasoning == reasoning
    assert u.output in (raw["completion_tokens"], raw["completion_tokens"] + reasoning)


# --- the cases -------------------------------------------------------------------------------


def _chat_files() -> list[str]:
    out = []
    for d in DIRS:
        for p in sorted((REALDATA / d).iterdir()):
            rel = f"{d}/{p.name}"
            if rel not in SKIPPED:
                out.append(rel)
    return out


def _interactions(realdata: Path, rel: str) -> list[Interaction]:
    path = realdata / rel
    if path.suffix == ".yaml":
        return [i for i in load(path) if not any(u in i.uri for u in SKIPPED_URIS)]
    if path.name.endswith(".chunks.txt"):  # vercel/ai: SSE data payloads with framing stripped
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        sse = "".join(f"data: {line}\n\n" for line in lines) + "data: [DONE]\n\n"
        return [Interaction("POST", "", {}, None, 200, {"content-type": "text/event-stream"}, sse.encode())]
    return [Interaction("POST", "", {}, None, 200, {"content-type": "application/json"}, path.read_bytes())]


#: Recorded failures and the typed error a user gets for each.
ERRORS: dict[tuple[str, int], type[ProviderError]] = {
    ("openai/mirascope__test_authentication_error__openai_gpt_4o_completions.yaml", 0): AuthenticationError,
    ("openai/pydantic-ai__test_model_name_suggestions__test_model_name_suggestion_openai-chat_.yaml", 0): ModelNotFound,
    ("openai/pydantic-ai__test_openai__test_openai_o1_mini_system_role_system_.yaml", 0): BadRequest,
    ("groq/pydantic-ai__test_groq__test_tool_use_failed_error.yaml", 0): BadRequest,
    ("groq/pydantic-ai__test_model_name_suggestions__test_model_name_suggestion_groq_.yaml", 0): ModelNotFound,
    ("other/pydantic-ai__test_openrouter__test_openrouter_errors_raised.yaml", 0): RateLimitError,
    ("other/pydantic-ai__test_openrouter__test_openrouter_errors_raised.yaml", 1): RateLimitError,
    ("other/pydantic-ai__test_openrouter__test_openrouter_errors_raised.yaml", 2): RateLimitError,
}


def _cases() -> list[Any]:
    cases = []
    for rel in _chat_files():
        for n, _ in enumerate(_interactions(REALDATA, rel)):
            cases.append(pytest.param(rel, n, id=f"{rel}#{n}"))
    return cases


def test_every_file_is_replayed_or_skipped_with_a_reason(realdata: Path) -> None:
    files = {f"{d}/{p.name}" for d in DIRS for p in (realdata / d).iterdir()}
    assert set(SKIPPED) <= files, "skip list names a file that does not exist"
    assert len(_chat_files()) == len(files) - len(SKIPPED) >= 35
    assert all(reason.strip() for reason in SKIPPED.values())


@pytest.mark.parametrize(("rel", "n"), _cases())
async def test_replay(realdata: Path, rel: str, n: int) -> None:
    item = _interactions(realdata, rel)[n]
    target = target_for(rel, item)
    stream = item.is_stream
    expected_error = ERRORS.get((rel, n))
    if item.status >= 400 or expected_error:
        assert expected_error is not None, f"unexpected recorded failure {item.status}"
        with pytest.raises(expected_error) as info:
            await run(target, item.status, item.headers, item.body, stream=stream)
        assert info.value.status == item.status
        assert info.value.provider == target.provider.id
        return
    message = await run(target, item.status, item.headers, item.body, stream=stream)
    assert message.provider == target.provider.id and message.model == target.model.id
    assert_matches(message, holds_of(item.body, stream, target))


# --- literal values from the recordings (the behaviour users see) ------------------------------

Check = Callable[[Message], None]


def _first(rel: str, n: int = 0) -> tuple[Target, Interaction]:
    item = _interactions(REALDATA, rel)[n]
    return target_for(rel, item), item


async def test_openai_streamed_tool_call_fragments_and_usage() -> None:
    target, item = _first("openai/pydantic-ai__test_openai__test_run_stream_sync_streams_real_model.yaml")
    msg = await run(target, item.status, item.headers, item.body, stream=True)
    (call,) = msg.tool_calls
    assert (call.id, call.name) == ("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital")
    assert dict(call.arguments) == {"country": "UK"}
    assert msg.finish_reason == "tool_calls"
    assert msg.usage is not None and (msg.usage.input, msg.usage.output) == (53, 15)


async def test_openai_reasoning_tokens_counted_in_output() -> None:
    target, item = _first("openai/pydantic-ai__test_openai__test_openai_model_without_system_prompt.yaml")
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.usage is not None
    assert (msg.usage.input, msg.usage.output, msg.usage.reasoning) == (11, 809, 768)


DEEPSEEK_TOOLS = "deepseek/pydantic-ai__test_deepseek__test_deepseek_deferred_capability_with_thinking.yaml"


async def test_deepseek_reasoning_kept_as_deepseek_reasoning_and_parallel_calls() -> None:
    target, item = _first(DEEPSEEK_TOOLS, 1)
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert [c.name for c in msg.tool_calls] == ["get_player_name", "roll_dice"]
    assert msg.text == "Let me get your name and roll the die!"
    (reasoning,) = [p for p in msg.parts if type(p).__name__ == "Reasoning"]
    assert reasoning.provider == "deepseek"  # type: ignore[union-attr]
    assert msg.reasoning.startswith("Great, now I have access to the dice roll tool.")


async def test_deepseek_cache_hits_are_not_input() -> None:
    target, item = _first(DEEPSEEK_TOOLS, 2)
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.usage is not None
    assert (msg.usage.input, msg.usage.cache_read, msg.usage.output, msg.usage.reasoning) == (80, 896, 61, 25)


async def test_xai_reasoning_and_usage_outside_completion_tokens() -> None:
    target, item = _first("xai/ai__xai__xai-tool-call.json")
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.tool_calls[0].id == "call_93562515"
    assert msg.reasoning.startswith("First, the user is asking about the weather")
    assert msg.usage is not None
    # prompt 291 with 244 cached; completion 26 + reasoning 189 (xAI's total is 506 = 291 + 26 + 189)
    assert (msg.usage.input, msg.usage.cache_read, msg.usage.output, msg.usage.reasoning) == (47, 244, 215, 189)


async def test_xai_streamed_reasoning_content() -> None:
    target, item = _first("xai/ai__xai__xai-text.chunks.txt")
    msg = await run(target, item.status, item.headers, item.body, stream=True)
    assert msg.text == "Hello" and msg.reasoning == "First, the user said"
    assert [type(p).__name__ for p in msg.parts] == ["Reasoning", "Text"]
    assert msg.usage is not None and msg.usage.cache_read == 11


async def test_groq_usage_from_x_groq_in_stream() -> None:
    target, item = _first("groq/openllmetry__test_chat_tracing__test_chat_streaming_legacy.yaml")
    msg = await run(target, item.status, item.headers, item.body, stream=True)
    assert msg.usage is not None and (msg.usage.input, msg.usage.output) == (18, 73)
    assert msg.finish_reason == "stop"


async def test_groq_reasoning_field() -> None:
    target, item = _first("groq/pydantic-ai__test_groq__test_tool_use_failed_error.yaml", 2)
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.reasoning.startswith("We need to respond to user request.")
    assert msg.parts[0].provider == "groq"  # type: ignore[union-attr]


async def test_mistral_thinking_chunks_and_nine_char_ids() -> None:
    target, item = _first(
        "mistral/pydantic-ai__test_thinking_wire_contract__test_reasoning_wire_contract_mistral-small-thinking-high_.yaml")
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.text == "4"
    assert msg.reasoning.startswith("The user is asking for the result of 2+2.")
    target, item = _first("mistral/ai__mistral__mistral-tool-call.json")
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.tool_calls[0].id == "gSIMJiOkT"
    assert dict(msg.tool_calls[0].arguments) == {"location": "San Francisco"}


async def test_mistral_cached_prompt_tokens() -> None:
    target, item = _first("mistral/pydantic-ai__test_mistral__test_mistral_history_uses_prompt_cache.yaml", 1)
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.usage is not None and (msg.usage.input, msg.usage.cache_read) == (44, 224)


async def test_azure_first_stream_chunk_without_choices_and_usage() -> None:
    target, item = _first("azure/crewAI__llms__azure__test_azure_streaming_completion.yaml")
    assert json.loads(item.body.decode().split("\n")[0][5:])["choices"] == []
    msg = await run(target, item.status, item.headers, item.body, stream=True)
    assert msg.text and msg.finish_reason == "stop"
    assert msg.usage is not None and (msg.usage.input, msg.usage.output) == (9, 10)


async def test_azure_content_filter_finish() -> None:
    target, item = _first("azure/openllmetry__test_azure__test_chat_content_filtering.yaml")
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.finish_reason == "content_filter"
    assert msg.parts == ()


async def test_together_r1_inline_think_becomes_reasoning_not_answer() -> None:
    """DeepSeek-R1 through Together writes its reasoning into content; the user sees only the answer."""
    target, item = _first("together/pydantic-ai__test_huggingface__test_hf_model_thinking_part.yaml")
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.text.startswith("Crossing the street safely requires **awareness, caution")
    assert "<think>" not in msg.text and "</think>" not in msg.text
    assert msg.reasoning.startswith('\nOkay, the user asked "How do I cross the street?"')
    (reasoning,) = [p for p in msg.parts if type(p).__name__ == "Reasoning"]
    assert (reasoning.provider, reasoning.signature) == ("together", None)  # type: ignore[union-attr]
    assert type(msg.parts[0]).__name__ == "Reasoning"


async def test_inline_think_setting_turns_the_split_off() -> None:
    rel = "together/pydantic-ai__test_huggingface__test_hf_model_thinking_part.yaml"
    _, item = _first(rel)
    target = make_target("together", "deepseek-ai/DeepSeek-R1", "https://router.huggingface.co/together/v1",
                         {"inline_think": "off"})
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.text.startswith("<think>\nOkay") and msg.reasoning == ""


async def test_together_eos_is_stop() -> None:
    target, item = _first("together/openllmetry__test_chat__test_together_chat_legacy.yaml")
    msg = await run(target, item.status, item.headers, item.body, stream=False)
    assert msg.finish_reason == "stop"
    assert msg.text.startswith(" Why don't we ever hear secrets")


# --- recorded and quoted error bodies ----------------------------------------------------------


async def _fail(target: Target, status: int, body: bytes, headers: dict[str, str] | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await run(target, status, {"content-type": "application/json", **(headers or {})}, body, stream=False)
    return info.value


async def test_recorded_error_bodies(realdata: Path) -> None:
    openai = make_target("openai", "gpt-5.5")
    quota = await _fail(openai, 429, (realdata / "openai/ai__openai__openai-error.1.json").read_bytes())
    assert isinstance(quota, RateLimitError) and "insufficient_quota" in quota.message
    legacy = await _fail(openai, 400, (realdata / "openai/ai__openai__reasoning-model-legacy-parameter-error.json")
                         .read_bytes())
    assert type(legacy) is BadRequest and "max_completion_tokens" in legacy.message
    embeddings = realdata / "azure/openllmetry__test_embeddings__test_azure_openai_embeddings.yaml"
    azure_401 = next(i for i in load(embeddings) if i.status == 401)
    azure = make_target("azure-openai", "gpt-4o", "https://test-resource.openai.azure.com", {"deployment": "gpt-4o"})
    err = await _fail(azure, 401, azure_401.body)
    assert isinstance(err, AuthenticationError) and "Access denied" in err.message


def _quoted(realdata: Path) -> list[str]:
    text = (realdata / "other/ERROR_BODIES_FROM_ISSUE_THREADS.md").read_text()
    return [block.split("```", 1)[0].strip() for block in text.split("```json")[1:]]


async def test_quoted_error_bodies(realdata: Path) -> None:
    from ironspire.errors import ContextWindowExceeded

    bodies = _quoted(realdata)
    openai = make_target("openai", "gpt-4.1")
    for body in bodies[:2]:  # OpenAI context_length_exceeded, compact and pretty-printed
        err = await _fail(openai, 400, body.encode())
        assert isinstance(err, ContextWindowExceeded)
    deepseek_ctx = ('{"error": {"message": "This model\'s maximum context length is 131072 tokens. However, you '
                    'requested 131134 tokens (122942 in the messages, 8192 in the completion). Please reduce the '
                    'length of the messages or completion.", "type": "invalid_request_error", "param": null, '
                    '"code": "invalid_request_error"}}')
    assert isinstance(await _fail(make_target("deepseek", "deepseek-flash"), 400, deepseek_ctx.encode()),
                      ContextWindowExceeded)
    groq_413 = ('{"error": {"message": "Request too large for model llama-3.1-8b-instant in organization org_x '
                'service tier on_demand on tokens per minute (TPM): Limit 6000, Requested 12328", "type": "tokens", '
                '"code": "rate_limit_exceeded"}}')
    assert isinstance(await _fail(make_target("groq", "llama-3.1-8b-instant"), 413, groq_413.encode()), RateLimitError)
    xai_bad_key = '{"error": "Incorrect API key provided: na***ys. You can obtain an API key from https://console.x.ai."}'
    assert isinstance(await _fail(make_target("xai", "grok-4.3"), 400, xai_bad_key.encode()), AuthenticationError)
    mistral_401 = [b for b in bodies if "Unauthorized" in b]
    assert len(mistral_401) == 2
    for body in mistral_401:
        assert isinstance(await _fail(make_target("mistral", "mistral-large-2512"), 401, body.encode()),
                          AuthenticationError)
