"""Issue 17 item 8: a provider's malformed answer never crashes a turn. Real recordings are
mutated (one value anywhere in the JSON replaced by a hostile one: a string where an object
belongs, "abc" as a count, 1e20, a list of strings...) and replayed through the real transport
and each adapter; the outcome is a message or a ProviderError naming the provider, nothing else."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import builtin
from ironspire.errors import ProviderError
from ironspire.messages import Message
from ironspire.protocols import backend_for
from ironspire.protocols.base import ChatRequest, Secrets, Target
from support.recordings import load
from support.replay import ReplayTransport, collect

HOSTILE = st.sampled_from(["x", "abc", "", 1e20, -1, 10**30, 0.5, None, True, [], {}, ["a", "b"], [1, 2],
                           {"text": 5}, "1e999", "\x00"])
#: (protocol, provider, recording): a complete answer and a streamed one per protocol
CASES = [
    ("openai_chat", "openai", "openai/pydantic-ai__test_openai__test_openai_tool_output.yaml"),
    ("openai_chat", "openai", "openai/pydantic-ai__test_openai__test_run_stream_sync_streams_real_model.yaml"),
    ("anthropic_messages", "claude-api",
     "anthropic/pydantic-ai__test_anthropic__test_anthropic_model_instructions.yaml"),
    ("anthropic_messages", "claude-api",
     "anthropic/pydantic-ai__test_anthropic__test_anthropic_model_thinking_part_stream.yaml"),
    ("gemini", "google", "google/pydantic-ai__test_google__test_google_model.yaml"),
    ("gemini", "google", "google/pydantic-ai__test_google__test_google_model_stream.yaml"),
    ("ollama_chat", "ollama", "ollama/openllmetry__test_chat__test_ollama_chat_legacy.yaml"),
    ("ollama_chat", "ollama", "ollama/openllmetry__test_chat__test_ollama_streaming_chat_legacy.yaml"),
    ("bedrock_converse", "bedrock", "bedrock/pydantic-ai__test_bedrock__test_bedrock_model.yaml"),
]


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*at, i))
    return out


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = _replace(node[path[0]], path[1:], value)
    return copy


def _frames(body: bytes) -> tuple[str, list[Any], list[str]]:
    """The body as its JSON documents: one object, SSE data lines, or NDJSON lines."""
    text = body.decode()
    try:
        return "json", [json.loads(text)], []
    except json.JSONDecodeError:
        pass
    lines = text.split("\n")
    if any(line.startswith("data:") for line in lines):
        docs = [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip() != "[DONE]"]
        return "sse", docs, lines
    return "ndjson", [json.loads(line) for line in lines if line.strip()], lines


def _mutated(body: bytes, which: int, where: int, value: Any) -> bytes:
    kind, docs, lines = _frames(body)
    i = which % len(docs)
    paths = _paths(docs[i])
    docs[i] = _replace(docs[i], paths[where % len(paths)], value)
    if kind == "json":
        return json.dumps(docs[0]).encode()
    out, n = [], 0
    for line in lines:
        is_doc = (line.startswith("data:") and line[5:].strip() != "[DONE]") if kind == "sse" else bool(line.strip())
        if is_doc:
            line = ("data: " if kind == "sse" else "") + json.dumps(docs[n])
            n += 1
        out.append(line)
    return "\n".join(out).encode()


def _target(provider: str) -> Target:
    secrets = ({"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
               if provider == "bedrock" else {"api_key": "fuzz-key-0123456789"})
    spec = builtin(provider)
    return Target(spec, ModelSpec(provider, "m", "m", 100_000, 4_000), spec.base_url or "http://127.0.0.1:9",
                  Secrets(secrets), {"region": "us-east-1"} if provider == "bedrock" else {})


@pytest.mark.parametrize(("protocol", "provider", "recording"), CASES, ids=[c[2].split("/")[1][:60] for c in CASES])
def test_mutated_recordings_fail_as_provider_errors(realdata: Path, protocol: str, provider: str,
                                                    recording: str) -> None:
    answer = next(i for i in load(realdata / recording) if i.status == 200)
    streamed = answer.is_stream
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-encoding",
                                                                              "transfer-encoding")}
    target = _target(provider)
    request = ChatRequest(messages=(Message.user("hi"),))

    @settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(which=st.integers(0, 1000), where=st.integers(0, 10_000), value=HOSTILE)
    def check(which: int, where: int, value: Any) -> None:
        body = _mutated(answer.body, which, where, value)

        async def run() -> None:
            transport = ReplayTransport(lambda _r: httpx2.Response(200, headers=headers, content=body))
            backend = backend_for(protocol, transport)
            try:
                if streamed:
                    await collect(backend, request, target)
                else:
                    await backend.complete(request, target)
            except ProviderError as exc:
                assert exc.provider == provider and str(exc).startswith(provider)
            finally:
                await transport.close()

        asyncio.run(run())

    check()


@pytest.mark.parametrize("chunk", [
    {"choices": "x"},
    {"choices": [{"index": 0, "delta": "oops"}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": ["a", "b"]}}]},
    {"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": {"prompt_tokens": "abc"}},
])
async def test_malformed_chat_completions_chunks_are_provider_errors(chunk: dict[str, Any]) -> None:
    """The cases of issue 17, named: each used to raise AttributeError/ValueError or commit an
    empty turn."""
    target = _target("openai")
    for streamed in (True, False):
        if streamed:
            body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            headers = {"content-type": "text/event-stream"}
        else:
            body, headers = json.dumps(chunk).encode(), {"content-type": "application/json"}
        transport = ReplayTransport(lambda _r, b=body, h=headers: httpx2.Response(200, headers=h, content=b))
        backend = backend_for("openai_chat", transport)
        request = ChatRequest(messages=(Message.user("hi"),))
        with pytest.raises(ProviderError, match=r"^openai"):
            if streamed:
                await collect(backend, request, target)
            else:
                await backend.complete(request, target)
        await transport.close()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e12", "1e400", "garbage", "Wed, 99 Foo 2026 99:99:99 GMT"])
def test_a_hostile_retry_after_is_no_hint_or_a_capped_one(value: str) -> None:
    from datetime import timedelta

    from ironspire.errors import RateLimitError
    from ironspire.transport import MAX_RETRY_AFTER, parse_retry_after

    for header in ("retry-after", "retry-after-ms", "x-ratelimit-reset-requests"):
        wait = parse_retry_after({header: value})
        assert wait is None or 0 <= wait <= MAX_RETRY_AFTER
    error = RateLimitError("openai", "slow down", retry_after=float(value) if value[0] in "-in1" else None)
    assert error.retry_after is None or 0 <= error.retry_after <= MAX_RETRY_AFTER
    timedelta(seconds=error.retry_after or 0)  # what the health monitor does with it: no OverflowError
    assert "etry" in error.hint


async def test_the_health_monitor_survives_a_hostile_retry_after() -> None:
    from ironspire.errors import RateLimitError
    from ironspire.health import HealthMonitor, HealthState
    from ironspire.transport import Transport

    monitor = HealthMonitor(Transport(), lambda pid: _target(pid), provider_ids=lambda: ["openai"],
                            is_enabled=lambda pid: True)
    for value in (float("inf"), 1e12, float("nan")):
        monitor.observe("openai", RateLimitError("openai", "slow", retry_after=value), 0.1)
        assert monitor.status("openai").state is HealthState.RATE_LIMITED
