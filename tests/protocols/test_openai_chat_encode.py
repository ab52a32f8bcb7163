"""What the adapter sends: requests rebuilt from recordings, and each provider's quirks.

For every recorded Chat Completions request, the conversation is rebuilt in neutral form and
re-encoded; the result must be the recorded request (same URL, messages, roles, tools, tool
choice and knobs), apart from fields listed in IGNORED_FIELDS, which we deliberately do not send.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ironspire.catalog.models import Registry, dynamic_model, with_facts
from ironspire.catalog.providers import CustomEndpoint, builtin
from ironspire.catalog.quirks import ChatCompletionsModelQuirks, ChatCompletionsQuirks, quirks_of
from ironspire.errors import CredentialsMissing, redact
from ironspire.messages import Image, Message, Reasoning, Text, ToolCall, ToolResult
from ironspire.protocols.base import ChatRequest, Secrets, Target, Tool
from ironspire.protocols.common import split_data_url
from ironspire.protocols.openai_chat import OpenAIChat
from ironspire.transport import Transport
from support.recordings import Interaction, load

REALDATA = Path(os.environ.get("IRONSPIRE_SHARED", Path(__file__).resolve().parents[2].parent / "shared")) / "realdata"
KEY = "sk-test-0123456789abcdef"
_REGISTRY = Registry()

#: Request fields other clients sent that we deliberately leave out (or send only on request).
IGNORED_FIELDS = {
    "n": "we always want one choice, the server default",
    "top_p": "not a knob of ChatRequest (pass it through ChatRequest.options)",
    "frequency_penalty": "not a knob of ChatRequest; sent as null by pydantic-ai",
    "moderation": "OpenAI moderation add-on, not part of a turn",
    "reasoning_format": "Groq reasoning display; pass through ChatRequest.options",
    "stream": "decided by complete() vs stream(); checked separately",
    "stream_options": "decided by the provider's stream_usage quirk; checked separately",
    "parallel_tool_calls": "server default",
    "top_k": "not a knob", "repetition_penalty": "not a knob", "presence_penalty": "not a knob",
    "min_p": "not a knob", "logit_bias": "not a knob", "logprobs": "not a knob", "echo": "not a knob",
    "safety_model": "not a knob", "response_format": "not a knob",
}


def make_target(provider: str, model: str, base_url: str | None = None, settings: dict[str, str] | None = None,
                secrets: dict[str, str] | None = None) -> Target:
    spec = builtin(provider) if not provider.startswith("custom:") else CustomEndpoint(
        provider.split(":", 1)[1], base_url or "http://127.0.0.1:9/v1", model).spec()
    model_spec = _REGISTRY.find(spec.id, model) or dynamic_model(spec.id, model)
    return Target(spec, model_spec, base_url or spec.base_url,
                  Secrets({"api_key": KEY} if secrets is None else secrets), settings or {})


def encode(request: ChatRequest, target: Target, *, stream: bool = False) -> tuple[str, dict[str, str], Any]:
    wire = OpenAIChat(Transport()).encode(request, target, stream=stream)
    url = str(httpx2.URL(wire.url, params=wire.params)) if wire.params else wire.url
    return url, wire.headers, wire.json


# --- recorded wire -> neutral ------------------------------------------------------------------


def _image(url: str) -> Image:
    inline = split_data_url(url)
    return Image(inline[0], data=inline[1]) if inline else Image("image/jpeg", url=url)


def _parts(content: Any) -> list[Text | Image]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    out: list[Text | Image] = []
    for c in content or []:
        if c["type"] == "text":
            out.append(Text(c["text"]))
        elif c["type"] == "image_url":
            url = c["image_url"] if isinstance(c["image_url"], str) else c["image_url"]["url"]
            out.append(_image(url))
    return out


def neutral(req: dict[str, Any], provider: str) -> ChatRequest:
    """The conversation a recorded request carried, as Ironspire would have stored it."""
    names: dict[str, str] = {}
    messages: list[Message] = []
    for m in req["messages"]:
        role = m["role"]
        if role == "system":
            messages.append(Message.system(m["content"]))
        elif role == "user":
            messages.append(Message("user", tuple(_parts(m["content"]))))
        elif role == "tool":
            result = ToolResult(m["tool_call_id"], names[m["tool_call_id"]], (Text(m["content"]),))
            messages.append(Message.tool(result))
        else:
            parts: list[Any] = []
            for c in m["content"] if isinstance(m.get("content"), list) else []:
                if c.get("type") == "thinking":  # Mistral-shaped reasoning; in these recordings it came from OpenAI
                    parts.append(Reasoning("".join(t["text"] for t in c["thinking"]), provider="openai"))
            own = m.get("reasoning_content") or m.get("reasoning")
            if own:
                parts.append(Reasoning(own, provider=provider))
            parts.extend(_parts(m.get("content")))
            for tc in m.get("tool_calls") or []:
                names[tc["id"]] = tc["function"]["name"]
                parts.append(ToolCall(tc["id"], tc["function"]["name"], json.loads(tc["function"]["arguments"])))
            messages.append(Message("assistant", tuple(parts), provider=provider))
    tools = tuple(
        Tool(t["function"]["name"], t["function"].get("description", ""), t["function"]["parameters"])
        for t in req.get("tools") or []
    )
    choice = req.get("tool_choice")
    force = choice["function"]["name"] if isinstance(choice, dict) else None
    return ChatRequest(
        tuple(messages), tools=tools, tool_choice=None if force else choice, force_tool=force,
        max_tokens=req.get("max_tokens") or req.get("max_completion_tokens"), temperature=req.get("temperature"),
        stop=tuple(req.get("stop") or ()), reasoning=req.get("reasoning_effort"),
        options={k: req[k] for k in PASSED_THROUGH if k in req},
    )


#: Provider-specific fields a caller gives through ChatRequest.options; they must reach the wire as given.
PASSED_THROUGH = ("prompt_cache_key",)


# --- comparison --------------------------------------------------------------------------------


def _norm_content(content: Any) -> list[Any]:
    if content in (None, "", []):
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out = []
    for c in content:
        if c.get("type") == "image_url":  # Mistral takes the URL as a string or as {url}; both are sent in the wild
            url = c["image_url"] if isinstance(c["image_url"], str) else c["image_url"]["url"]
            out.append({"type": "image_url", "url": url})
        elif c.get("type") == "thinking":
            out.append({"type": "thinking"})
        else:
            out.append({"type": c["type"], "text": c["text"]})
    return out


def _norm_message(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m["role"], "content": _norm_content(m.get("content"))}
    if m.get("tool_calls"):
        out["tool_calls"] = [
            {"id": tc["id"], "name": tc["function"]["name"], "arguments": json.loads(tc["function"]["arguments"])}
            for tc in m["tool_calls"]
        ]
    for key in ("tool_call_id", "reasoning_content", "reasoning"):
        if m.get(key):
            out[key] = m[key]
    if m.get("prefix"):
        out["prefix"] = True
    return out


def _norm_tools(tools: Any) -> list[Any]:
    return [{"name": t["function"]["name"], "description": t["function"].get("description") or "",
             "parameters": t["function"]["parameters"]} for t in tools or []]


def normalised(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and v is not None}
    out["messages"] = [_norm_message(m) for m in body["messages"]]
    out["tools"] = _norm_tools(body.get("tools"))
    if not out["tools"]:
        out.pop("tool_choice", None)
    return out


#: Recorded requests whose differences from ours are deliberate, with the reason.
DELIBERATE = {
    "mistral/pydantic-ai__test_mistral__test_mistral_model_thinking_part.yaml":
        "pydantic-ai replays OpenAI's reasoning to Mistral as thinking chunks; foreign reasoning is dropped by policy",
    "groq/pydantic-ai__test_groq__test_tool_use_failed_error.yaml":
        "pydantic-ai sends Groq's `reasoning` back; we replay reasoning only where the provider requires it (DeepSeek)",
    "other/pydantic-ai__test_cerebras__test_cerebras_thinking_part_survives_multiturn.yaml":
        "pydantic-ai sends Cerebras' `reasoning` back; we replay reasoning only where the provider requires it",
}


def _replay_module() -> Any:
    """The replay tests' file selection and targets, so both suites cover the same recordings."""
    try:
        import test_openai_chat_replay as replay
    except ImportError:  # tests/protocols became a package
        from protocols import test_openai_chat_replay as replay  # type: ignore[no-redef]
    return replay


def _requests() -> list[Any]:
    replay = _replay_module()
    SKIPPED, SKIPPED_URIS = replay.SKIPPED, replay.SKIPPED_URIS

    out = []
    for d in ("openai", "azure", "mistral", "deepseek", "groq", "together", "other"):
        for p in sorted((REALDATA / d).glob("*.yaml")):
            rel = f"{d}/{p.name}"
            if rel in SKIPPED:
                continue
            for n, item in enumerate(load(p)):
                if item.request_json and not any(u in item.uri for u in SKIPPED_URIS):
                    out.append(pytest.param(rel, n, id=f"{rel}#{n}"))
    return out


def _target(rel: str, item: Interaction) -> Target:
    target: Target = _replay_module().target_for(rel, item)
    return target


@pytest.mark.parametrize(("rel", "n"), _requests())
def test_encoder_reproduces_recorded_request(rel: str, n: int) -> None:
    item = load(REALDATA / rel)[n]
    recorded: dict[str, Any] = item.request_json
    target = _target(rel, item)
    request = neutral(recorded, target.provider.id)
    url, _, body = encode(request, target, stream=bool(recorded.get("stream")))
    assert url == str(httpx2.URL(item.uri).copy_with(fragment=None))
    want, got = normalised(recorded), normalised(body)
    if target.provider.id == "azure-openai":
        want.pop("model", None)  # classic Azure URLs name the deployment; the body's model is ignored
    if rel in DELIBERATE:
        for m in want["messages"]:
            m.pop("reasoning", None)
            m["content"] = [c for c in m["content"] if c["type"] != "thinking"]
    assert got == want, DELIBERATE.get(rel, "")
    if recorded.get("stream") and quirks_of(target.provider.quirks, ChatCompletionsQuirks).stream_usage:
        assert body["stream_options"] == {"include_usage": True}


# --- per-provider quirks -----------------------------------------------------------------------

HELLO = ChatRequest((Message.user("hi"),), system="Be brief.", max_tokens=50, temperature=0.3, stop=("END",))


def test_openai_basics_and_auth() -> None:
    url, headers, body = encode(HELLO, make_target("openai", "gpt-4.1"), stream=True)
    assert url == "https://api.openai.com/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    assert (body["temperature"], body["stop"], body["stream"]) == (0.3, ["END"], True)
    assert body["stream_options"] == {"include_usage": True}
    assert KEY not in redact(f"failed with {headers}")


def test_openai_reasoning_model_drops_sampling_and_uses_developer_role() -> None:
    _, _, body = encode(HELLO, make_target("openai", "o3"))
    assert "temperature" not in body and "stop" not in body
    assert body["messages"][0] == {"role": "developer", "content": "Be brief."}
    assert body["max_completion_tokens"] == 50


def test_chat_never_turns_reasoning_down_for_tools() -> None:
    """GPT-6 models with tools go to the Responses API (see tests/workspace/test_responses_routing.py);
    forced onto Chat Completions they are sent what was asked, not silently degraded."""
    tools = (Tool("f", "", {"type": "object", "properties": {}}),)
    _, _, body = encode(ChatRequest((Message.user("x"),), tools=tools, reasoning="high"),
                        make_target("openai", "gpt-6-luna"))
    assert body["reasoning_effort"] == "high"
    _, _, body = encode(ChatRequest((Message.user("x"),), tools=tools), make_target("openai", "gpt-6-luna"))
    assert "reasoning_effort" not in body


def test_other_providers_use_max_tokens() -> None:
    for pid, model in (("deepseek", "deepseek-flash"), ("mistral", "mistral-large-2512"), ("together", "x/y")):
        _, _, body = encode(HELLO, make_target(pid, model))
        assert body["max_tokens"] == 50 and "max_completion_tokens" not in body, pid


def test_tools_tool_choice_and_forced_tool() -> None:
    tools = (Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),)
    req = ChatRequest((Message.user("x"),), tools=tools, tool_choice="required")
    _, _, body = encode(req, make_target("openai", "gpt-4.1"))
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    assert body["tool_choice"] == "required"
    _, _, body = encode(req, make_target("mistral", "mistral-large-2512"))
    assert body["tool_choice"] == "any"
    forced = ChatRequest((Message.user("x"),), tools=tools, tool_choice="none", force_tool="get_weather")
    _, _, body = encode(forced, make_target("groq", "llama-3.3-70b-versatile"))
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    _, _, body = encode(ChatRequest((Message.user("x"),)), make_target("mistral", "mistral-large-2512"))
    assert "tools" not in body and "tool_choice" not in body  # Mistral rejects an empty tools list


CALLS = Message("assistant", (
    Text("Checking."),
    ToolCall("call_abc_0123456789_very_long_openai_style_id_x", "get_weather", {"city": "Paris"}, provider="openai"),
    ToolCall("toolu_01D7FLrfh4GYq7yT1ULFeyMV", "get_time", {}, provider="anthropic"),
), provider="openai")
RESULTS = Message.tool(
    ToolResult("call_abc_0123456789_very_long_openai_style_id_x", "get_weather", (Text("sunny"),)),
    ToolResult("toolu_01D7FLrfh4GYq7yT1ULFeyMV", "get_time", (Text("noon"),)),
)


def test_parallel_calls_and_one_tool_message_per_result() -> None:
    req = ChatRequest((Message.user("weather and time?"), CALLS, RESULTS))
    _, _, body = encode(req, make_target("openai", "gpt-4.1"))
    assistant, r1, r2 = body["messages"][1:]
    assert assistant["content"] == "Checking."
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert all(len(i) <= 40 for i in ids)
    assert ids[1] == "toolu_01D7FLrfh4GYq7yT1ULFeyMV"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert [(r1["role"], r1["tool_call_id"], r1["content"]), (r2["role"], r2["tool_call_id"], r2["content"])] == [
        ("tool", ids[0], "sunny"), ("tool", ids[1], "noon")]


def test_mistral_ids_and_message_order() -> None:
    history = (Message.user("weather?"), CALLS, RESULTS, Message.system("Answer in French."), Message.user("now?"),
               Message.assistant("Il fait"))
    _, _, body = encode(ChatRequest(history, system="Be brief."), make_target("mistral", "mistral-large-2512"))
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant", "user", "assistant"]
    assert body["messages"][0]["content"] == "Be brief.\n\nAnswer in French."
    ids = [c["id"] for c in body["messages"][2]["tool_calls"]]
    assert all(len(i) == 9 and i.isalnum() for i in ids)
    assert [m["tool_call_id"] for m in body["messages"][3:5]] == ids  # calls and results still pair
    assert body["messages"][-1] == {"role": "assistant", "content": "Il fait", "prefix": True}
    assert "stream_options" not in encode(ChatRequest(history), make_target("mistral", "m"), stream=True)[2]


def test_images_as_data_urls_and_mistral_strings() -> None:
    img = Image("image/png", data="iVBORw0KGgo=")
    req = ChatRequest((Message.user("what is this?", img),))
    _, _, body = encode(req, make_target("openai", "gpt-4.1"))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    _, _, body = encode(req, make_target("mistral", "mistral-large-2512"))
    assert body["messages"][0]["content"][1] == {"type": "image_url", "image_url": "data:image/png;base64,iVBORw0KGgo="}


def test_image_tool_results_follow_as_user_turn() -> None:
    call = Message("assistant", (ToolCall("FI5qQGzDE", "get_image", {}),))
    result = Message.tool(ToolResult("FI5qQGzDE", "get_image", (Image("image/png", data="AAAA"),)))
    _, _, body = encode(ChatRequest((Message.user("x"), call, result)), make_target("mistral", "pixtral"))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "assistant", "user"]
    assert body["messages"][-1]["content"][1] == {"type": "image_url", "image_url": "data:image/png;base64,AAAA"}


def test_deepseek_reasoning_goes_back_to_deepseek_only() -> None:
    turn = Message("assistant", (Reasoning("think", provider="deepseek"), Text("hi"),
                                 ToolCall("call_00_x", "f", {})), provider="deepseek")
    result = Message.tool(ToolResult("call_00_x", "f", (Text("1"),)))
    req = ChatRequest((Message.user("x"), turn, result))
    _, _, body = encode(req, make_target("deepseek", "deepseek-v4-pro"))
    assert body["messages"][1]["reasoning_content"] == "think"
    assert body["thinking"] == {"type": "enabled"}
    for pid, model in (("openai", "gpt-4.1"), ("mistral", "m"), ("groq", "g"), ("xai", "grok-4.3")):
        _, _, body = encode(req, make_target(pid, model))
        assert "reasoning_content" not in body["messages"][1], pid
        assert body["messages"][1]["content"] == "hi", pid
    _, _, body = encode(ChatRequest(req.messages, foreign_reasoning="text"), make_target("openai", "gpt-4.1"))
    assert body["messages"][1]["content"] == "<thinking>think</thinking>hi"
    _, _, body = encode(ChatRequest((Message.user("x"),)), make_target("deepseek", "deepseek-flash"))
    assert body["thinking"] == {"type": "disabled"}


def test_interrupted_tool_call_gets_a_result() -> None:
    req = ChatRequest((Message.user("x"), Message("assistant", (ToolCall("call_1", "f", {}),)), Message.user("y")))
    _, _, body = encode(req, make_target("openai", "gpt-4.1"))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "user"]


def test_azure_deployment_url_api_version_and_api_key() -> None:
    target = make_target("azure-openai", "gpt-4o", "https://res.openai.azure.com",
                         {"deployment": "prod-4o", "api_version": "2025-04-01-preview"})
    url, headers, body = encode(HELLO, target)
    assert url == "https://res.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2025-04-01-preview"
    assert headers["api-key"] == KEY and "Authorization" not in headers
    assert "model" not in body
    default = make_target("azure-openai", "gpt-4o", "https://res.openai.azure.com/openai/", {"deployment": "d"})
    assert encode(HELLO, default)[0].endswith("/openai/deployments/d/chat/completions?api-version=2024-10-21")


def test_azure_v1_path_form() -> None:
    target = make_target("azure-openai", "gpt-4o", "https://res.openai.azure.com/openai/v1", {"deployment": "prod-4o"})
    url, headers, body = encode(HELLO, target, stream=True)
    assert url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert body["model"] == "prod-4o" and headers["api-key"] == KEY
    assert body["stream_options"] == {"include_usage": True}


def test_custom_endpoint_key_is_optional() -> None:
    url, headers, body = encode(HELLO, make_target("custom:Lab", "llama-3", "http://127.0.0.1:8080/v1", secrets={}))
    assert url == "http://127.0.0.1:8080/v1/chat/completions"
    assert "Authorization" not in headers and body["model"] == "llama-3"
    _, headers, _ = encode(HELLO, make_target("custom:Lab", "llama-3", "http://127.0.0.1:8080/v1"))
    assert headers["Authorization"] == f"Bearer {KEY}"
    with pytest.raises(CredentialsMissing, match="GROQ_API_KEY"):
        encode(HELLO, make_target("groq", "x", secrets={}))


def test_base_url_override() -> None:
    target = make_target("groq", "llama", "http://127.0.0.1:4000/groq")
    assert encode(HELLO, target)[0] == "http://127.0.0.1:4000/groq/chat/completions"


def test_model_quirk_from_registry_facts() -> None:
    model = with_facts(dynamic_model("together", "x"), quirks=ChatCompletionsModelQuirks(
        max_tokens_field="max_completion_tokens", sampling=False))
    target = Target(builtin("together"), model, builtin("together").base_url, Secrets({"api_key": KEY}))
    _, _, body = encode(HELLO, target)
    assert body["max_completion_tokens"] == 50 and "temperature" not in body
