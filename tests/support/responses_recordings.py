"""The recorded Responses API traffic in ../shared/realdata, in one shape, and an independent
reading of what each recorded answer holds.

The reading below works from the finished items (``response.output_item.done``, the whole
response object) and the terminal event, never from the deltas the decoder assembles, so a
decoder that loses or reorders a delta disagrees with it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from ironspire.catalog.models import Registry, dynamic_model
from ironspire.catalog.providers import CustomEndpoint, builtin
from ironspire.protocols.base import Secrets, Target
from support.recordings import Interaction, load

KEY = "sk-test-0123456789abcdef"
#: where the recordings are, for parametrising at collection time (the ``realdata`` fixture fails
#: the test clearly when they are missing)
REALDATA = Path(os.environ.get("IRONSPIRE_SHARED", Path(__file__).resolve().parents[2].parent / "shared")) / "realdata"
_REGISTRY = Registry()

#: Responses recordings outside openai-responses/ (the Chat Completions replay skips them)
ELSEWHERE = (
    "openai/llm__test_openai_responses__test_responses_tool_use_streaming.yaml",
    "openai/pydantic-ai__test_openai__test_openai_model_thinking_part.yaml",
    "deepseek/pydantic-ai__test_deepseek_responses__test_deepseek_responses_text_stream_.yaml",
    "deepseek/pydantic-ai__test_deepseek_responses__test_deepseek_responses_rejects_interleaved_function_calls.yaml",
)
#: host (or vercel/ai fixture prefix) -> (provider, base URL); custom endpoints are "custom:<name>"
_HOSTS = {
    "api.openai.com": ("openai", None),
    "api.deepseek.com": ("deepseek", None),
    "openrouter.ai": ("custom:openrouter", "https://openrouter.ai/api/v1"),
    "ai__openai": ("openai", None),
    "ai__azure": ("azure-openai", "https://fake-azure-endpoint.openai.azure.com"),
    "ai__xai": ("xai", None),
    "ai__open-responses": ("custom:lmstudio", "http://127.0.0.1:1234/v1"),
}


@dataclass
class Exchange:
    """One recorded request (None for vercel/ai fixtures) and its answer."""

    name: str
    request: dict[str, Any] | None
    status: int
    headers: dict[str, str]
    body: bytes
    stream: bool
    target: Target


def make_target(provider: str, model: str, base: str | None, *, reasoning: bool) -> Target:
    settings: dict[str, str] = {}
    if provider.startswith("custom:"):
        spec = CustomEndpoint(provider.split(":", 1)[1], base or "http://127.0.0.1:9/v1", model).spec()
    else:
        spec = builtin(provider)
    if provider == "azure-openai":
        settings = {"deployment": model, "base_url": base or ""}
    found = _REGISTRY.find(spec.id, model)
    if found is None or found.source != "builtin":
        found = dynamic_model(spec.id, model, reasoning=reasoning)
    return Target(spec, found, base or spec.base_url, Secrets({"api_key": KEY}), settings)


def _target(host_key: str, request: dict[str, Any] | None, fallback_model: str) -> Target:
    provider, base = _HOSTS.get(host_key, (None, None))
    if provider is None:  # an Azure resource: https://<resource>.openai.azure.com/openai/v1/responses
        provider, base = "azure-openai", f"https://{host_key}"
    req = request or {}
    reasoning = bool(req.get("reasoning") or req.get("include"))
    return make_target(provider, str(req.get("model") or fallback_model), base, reasoning=reasoning)


def _split_streams(lines: list[str]) -> list[list[str]]:
    """vercel/ai keeps every step of a run in one file: a new stream starts at response.created."""
    streams: list[list[str]] = []
    for line in lines:
        if json.loads(line).get("type") == "response.created" or not streams:
            streams.append([])
        streams[-1].append(line)
    return streams


def exchanges(realdata: Path, rel: str) -> list[Exchange]:
    path = realdata / rel
    if rel.endswith(".chunks.txt"):
        prefix = path.name.split("__")[0] + "__" + path.name.split("__")[1]
        out = []
        for n, lines in enumerate(_split_streams([ln for ln in path.read_text().splitlines() if ln.strip()])):
            first = json.loads(lines[0]).get("response") or {}
            body = "".join(f"data: {ln}\n\n" for ln in lines).encode()
            out.append(Exchange(f"{rel}#{n}", None, 200, {"content-type": "text/event-stream"}, body, True,
                                _target(prefix, None, str(first.get("model") or "recorded-model"))))
        return out
    if rel.endswith(".json"):
        data = json.loads(path.read_bytes())
        prefix = path.name.split("__")[0] + "__" + path.name.split("__")[1]
        return [Exchange(rel, None, 200, {"content-type": "application/json"}, path.read_bytes(), False,
                         _target(prefix, None, str(data.get("model") or "recorded-model")))]
    out = []
    for n, item in enumerate(i for i in load(path) if i.uri.endswith("/responses")):
        out.append(_from_interaction(f"{rel}#{n}", item))
    return out


def _from_interaction(name: str, item: Interaction) -> Exchange:
    request = item.request_json if isinstance(item.request_json, dict) else None
    headers = {k: v for k, v in item.headers.items() if k in ("content-type", "retry-after", "x-request-id")}
    host = httpx2.URL(item.uri).host
    return Exchange(name, request, item.status, headers, item.body, item.is_stream,
                    _target(host, request, "recorded-model"))


# --- an independent reading --------------------------------------------------------------------


@dataclass
class Holds:
    text: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (call_id, name, parsed arguments)
    summaries: list[str] = field(default_factory=list)  # per reasoning item: its summary (or raw) text
    encrypted: list[str] = field(default_factory=list)  # every encrypted_content, in order
    reasoning_ids: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    status: str | None = None
    incomplete: str | None = None
    error: Any = None
    terminal: bool = False


def _read_items(holds: Holds, items: list[dict[str, Any]]) -> None:
    for item in items:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                holds.text += part.get("text") or part.get("refusal") or ""
        elif kind == "function_call":
            holds.calls.append((item["call_id"], item["name"], json.loads(item.get("arguments") or "{}")))
        elif kind == "reasoning":
            summary = [s["text"] for s in item.get("summary") or []]
            raw = [c["text"] for c in item.get("content") or [] if c.get("type") == "reasoning_text"]
            holds.summaries.append("\n\n".join(summary) or "\n\n".join(raw))
            holds.reasoning_ids.append(item["id"])
            if item.get("encrypted_content"):
                holds.encrypted.append(item["encrypted_content"])


def _read_response(holds: Holds, response: dict[str, Any]) -> None:
    holds.usage = response.get("usage")
    holds.status = response.get("status")
    holds.incomplete = (response.get("incomplete_details") or {}).get("reason")
    holds.error = response.get("error")


def holds(exchange: Exchange) -> Holds:
    out = Holds()
    if not exchange.stream:
        data = json.loads(exchange.body)
        _read_items(out, data.get("output") or [])
        _read_response(out, data)
        out.terminal = True
        return out
    done: dict[int, dict[str, Any]] = {}
    for line in exchange.body.decode().splitlines():
        if not line.startswith("data:") or line.strip() == "data: [DONE]":
            continue
        event = json.loads(line[5:])
        if event.get("type") == "response.output_item.done":
            done[event["output_index"]] = event["item"]
        elif event.get("type") in ("response.completed", "response.incomplete", "response.failed"):
            _read_response(out, event["response"])
            out.terminal = True
        elif event.get("type") == "error":
            out.error = event
    _read_items(out, [done[i] for i in sorted(done)])
    return out
