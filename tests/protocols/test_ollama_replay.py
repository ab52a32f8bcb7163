"""Every file of realdata/ollama replayed through the real Transport and the Ollama decoder.

Sources, and what kind of evidence each is:
- openllmetry__test_chat__test_ollama_chat_legacy.yaml          TRAFFIC: /api/chat, stream=false
- openllmetry__test_chat__test_ollama_streaming_chat_legacy.yaml TRAFFIC: /api/chat NDJSON stream
- openllmetry__test_generation__...streaming_generation_legacy   TRAFFIC: /api/generate (not chat;
  only its NDJSON framing and final metrics object are shared with /api/chat)
- mirascope__test_ollama_provider__ollama_gemma3_4b.yaml        TRAFFIC: the OpenAI-compatible
  /v1/chat/completions surface, which this adapter does not use (request shape compared only)
- ollama__docs__api.md, ollama__docs__openapi.yaml, ollama__docs__api__errors.mdx,
  ollama__docs__api__streaming.mdx, ollama__docs__capabilities__thinking.mdx,
  ollama__docs__capabilities__tool-calling.mdx                   DOCS: examples, not traffic.
  They are the only source for native tool calls, thinking requests and in-stream errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from ironspire.catalog.models import dynamic_model
from ironspire.catalog.providers import builtin
from ironspire.errors import BadRequest, ModelNotFound, ProviderUnavailable
from ironspire.messages import (
    Accumulator,
    Finish,
    Image,
    Message,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from ironspire.protocols.base import ChatRequest, Target, Tool
from ironspire.protocols.ollama_chat import OllamaChat
from support.recordings import load
from support.replay import ReplayTransport, chunks
from support.replay import collect as collect_stream

BASE = "http://127.0.0.1:11434"


# --- plumbing --------------------------------------------------------------------------------


def target(model: str = "llama3", context: int = 8192) -> Target:
    return Target(builtin("ollama"), dynamic_model("ollama", model, context_window=context), BASE)


def serve(status: int, body: bytes, *, ndjson: bool, chunk: int | None = None) -> tuple[OllamaChat, list[Any]]:
    """An adapter whose transport answers every request with ``body``; returns it and the sent bodies."""
    sent: list[Any] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        assert request.url.path == "/api/chat"
        ctype = "application/x-ndjson" if ndjson else "application/json; charset=utf-8"
        content: Any = body if chunk is None else chunks(body, chunk)
        return httpx2.Response(status, headers={"content-type": ctype}, content=content)

    return OllamaChat(ReplayTransport(handler)), sent


async def collect(adapter: OllamaChat, request: ChatRequest, tgt: Target) -> list[StreamEvent]:
    try:
        events, _ = await collect_stream(adapter, request, tgt)
        return events
    finally:
        await adapter.transport.close()


async def complete(adapter: OllamaChat, request: ChatRequest, tgt: Target) -> Message:
    try:
        return await adapter.complete(request, tgt)
    finally:
        await adapter.transport.close()


def ask(text: str, **kw: Any) -> ChatRequest:
    return ChatRequest(messages=(Message.user(text),), **kw)


def without_unset(body: dict[str, Any]) -> dict[str, Any]:
    """ollama-python sends format "", options {} and keep_alive null for "not set"."""
    return {k: v for k, v in body.items() if v not in ("", {}, None)}


# --- documentation examples -----------------------------------------------------------------


def _blocks(section: str) -> Iterator[tuple[str, str]]:
    """(label, code) for each fenced block in a docs section; label is the nearest ##### heading."""
    label = ""
    for m in re.finditer(r"^##### ([^\n]+)$|^```(\w*)\n(.*?)^```", section, re.S | re.M):
        if m.group(1):
            label = m.group(1).strip()
        else:
            yield label, m.group(3)


def _curl_json(code: str) -> Any:
    body = code.split("-d '", 1)[1].rsplit("'", 1)[0]
    body = re.sub(r"^\s*//.*$", "", body, flags=re.M)  # the docs annotate some requests with // comments
    return json.loads(body)


class Docs:
    def __init__(self, root: Path) -> None:
        self.api = (root / "ollama__docs__api.md").read_text(encoding="utf-8")
        self.root = root

    def section(self, title: str) -> str:
        """A "####" example under "Generate a chat completion" (the generate section reuses titles)."""
        chat = self.api.index("## Generate a chat completion\n")
        start = self.api.index(f"#### {title}\n", chat)
        end = self.api.find("\n#### ", start + 1)
        return self.api[start:end]

    def request(self, title: str) -> Any:
        return next(_curl_json(code) for label, code in _blocks(self.section(title)) if label == "Request")

    def responses(self, title: str) -> list[Any]:
        return [json.loads(code) for label, code in _blocks(self.section(title)) if label == "Response"]

    def openapi(self) -> Any:
        return yaml.safe_load((self.root / "ollama__docs__openapi.yaml").read_text(encoding="utf-8"))

    def mdx(self, name: str) -> str:
        return (self.root / name).read_text(encoding="utf-8")


@pytest.fixture
def docs(realdata: Path) -> Docs:
    return Docs(realdata / "ollama")


def ndjson_body(*objects: Any) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


# --- recorded traffic ------------------------------------------------------------------------


async def test_cassette_non_streamed_chat(realdata: Path) -> None:
    [rec] = load(realdata / "ollama/openllmetry__test_chat__test_ollama_chat_legacy.yaml")
    adapter, sent = serve(rec.status, rec.body, ndjson=False)
    reply = await complete(adapter, ask("Tell me a joke about OpenTelemetry"), target("llama3"))

    assert reply.text == rec.json["message"]["content"]
    assert reply.text.startswith("A joke about OpenTelemetry!\n\nWhy did the OpenTelemetry agent go to therapy?")
    assert reply.usage == Usage(input=17, output=66)
    assert reply.finish_reason == "stop"
    assert (reply.provider, reply.model) == ("ollama", "llama3")
    assert sent == [without_unset(rec.request_json)]
    assert sent[0]["stream"] is False


async def test_cassette_streamed_chat_in_odd_chunks(realdata: Path) -> None:
    [rec] = load(realdata / "ollama/openllmetry__test_chat__test_ollama_streaming_chat_legacy.yaml")
    lines = [json.loads(x) for x in rec.body.decode().splitlines() if x.strip()]
    adapter, sent = serve(rec.status, rec.body, ndjson=True, chunk=7)  # lines split across network reads
    events = await collect(adapter, ask("Tell me a joke about OpenTelemetry"), target("llama3"))

    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert texts[:3] == ["Why", " did", " the"]
    assert "".join(texts) == "".join(x["message"]["content"] for x in lines)
    reply = Accumulator("ollama", "llama3").feed(events).message()
    assert reply.text.endswith("brought a smile to your face!)")
    assert reply.usage == Usage(input=17, output=50)
    assert events[-1] == Finish("stop", "stop")
    assert sent == [without_unset(rec.request_json)]
    assert sent[0]["stream"] is True


async def test_cassette_streamed_chat_cut_before_done_is_an_error(realdata: Path) -> None:
    [rec] = load(realdata / "ollama/openllmetry__test_chat__test_ollama_streaming_chat_legacy.yaml")
    cut = b"\n".join(rec.body.splitlines()[:-3]) + b"\n"  # the final done object never arrives
    adapter, _ = serve(200, cut, ndjson=True)
    with pytest.raises(ProviderUnavailable, match="stream ended early"):
        await collect(adapter, ask("Tell me a joke about OpenTelemetry"), target("llama3"))


async def test_cassette_generate_stream_shares_framing_and_final_metrics(realdata: Path) -> None:
    # /api/generate puts text in "response", not "message": the chat decoder takes only the parts
    # both endpoints share, the NDJSON framing and the final metrics object.
    [rec] = load(realdata / "ollama/openllmetry__test_generation__test_ollama_streaming_generation_legacy.yaml")
    assert rec.uri.endswith("/api/generate")
    final = json.loads(rec.body.decode().strip().splitlines()[-1])
    message = OllamaChat(ReplayTransport(lambda r: httpx2.Response(500))).decode(rec.body, target("llama3"))
    assert message.usage == Usage(input=final["prompt_eval_count"], output=final["eval_count"]) == Usage(17, 71)
    assert message.finish_reason == "stop"


def test_cassette_openai_compatible_surface_has_the_same_messages(realdata: Path) -> None:
    # mirascope recorded Ollama's /v1/chat/completions; the native request carries the same
    # conversation in the same message shape, but goes to /api/chat with stream set explicitly.
    [rec] = load(realdata / "ollama/mirascope__test_ollama_provider__ollama_gemma3_4b.yaml")
    assert rec.uri == "http://localhost:11434/v1/chat/completions"
    wire = OllamaChat(ReplayTransport(lambda r: httpx2.Response(500))).encode(
        ask("What is 4200 + 42?"), target("gemma3:4b"), stream=False
    )
    assert wire.url == BASE + "/api/chat"
    assert wire.json["messages"] == rec.request_json["messages"]
    assert wire.json["model"] == rec.request_json["model"] == "gemma3:4b"
    assert wire.json["stream"] is False


# --- docs: responses -------------------------------------------------------------------------


async def test_docs_non_streamed_reply_without_done_reason(docs: Docs) -> None:
    [body] = docs.responses("Chat request (No streaming)")
    assert "done_reason" not in body
    adapter, sent = serve(200, json.dumps(body).encode(), ndjson=False)
    reply = await complete(adapter, ask("why is the sky blue?"), target("llama3.2"))
    assert reply.text == "Hello! How are you today?"
    assert reply.usage == Usage(input=26, output=298)
    assert reply.finish_reason == "stop"
    assert sent == [docs.request("Chat request (No streaming)")]


async def test_docs_non_streamed_tool_call_without_id(docs: Docs) -> None:
    title = "Chat request (No streaming, with tools)"
    [body] = docs.responses(title)
    doc_request = docs.request(title)
    fn = doc_request["tools"][0]["function"]
    tools = (Tool(fn["name"], fn["description"], fn["parameters"]),)
    adapter, sent = serve(200, json.dumps(body).encode(), ndjson=False)
    reply = await complete(adapter, ask("what is the weather in tokyo?", tools=tools), target("llama3.2"))

    [call] = reply.tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Tokyo"})
    assert re.fullmatch(r"[A-Za-z0-9]{9}", call.id)  # synthesized, valid for every provider
    assert reply.finish_reason == "tool_calls"
    assert reply.usage == Usage(input=169, output=18)
    assert sent == [doc_request]
    # the same response always gets the same id, so a re-decoded history still pairs up
    again = OllamaChat(ReplayTransport(lambda r: httpx2.Response(500))).decode(json.dumps(body).encode(),
                                                                              target("llama3.2"))
    assert again.tool_calls[0].id == call.id


async def test_docs_streamed_tool_call(docs: Docs) -> None:
    title = "Chat request (Streaming with tools)"
    chunk, final = docs.responses(title)
    doc_request = docs.request(title)
    fn = doc_request["tools"][0]["function"]
    adapter, sent = serve(200, ndjson_body(chunk, final), ndjson=True)
    events = await collect(
        adapter, ask("what is the weather in tokyo?", tools=(Tool(fn["name"], fn["description"], fn["parameters"]),)),
        target("llama3.2"),
    )
    reply = Accumulator("ollama", "llama3.2").feed(events).message()
    assert [(c.name, dict(c.arguments)) for c in reply.tool_calls] == [("get_weather", {"city": "Tokyo"})]
    assert events[-1] == Finish("tool_calls", "stop")  # Ollama says stop; calls make it tool_calls
    assert reply.usage == Usage(input=169, output=15)
    assert sent == [doc_request]


async def test_docs_tool_call_with_two_arguments(docs: Docs) -> None:
    title = "Chat request (with tools)"
    [body] = docs.responses(title)
    doc_request = docs.request(title)
    fn = doc_request["tools"][0]["function"]
    adapter, sent = serve(200, json.dumps(body).encode(), ndjson=False)
    reply = await complete(
        adapter, ask("What is the weather today in Paris?", tools=(Tool(fn["name"], fn["description"],
                                                                        fn["parameters"]),)),
        target("llama3.2"),
    )
    [call] = reply.tool_calls
    assert dict(call.arguments) == {"format": "celsius", "location": "Paris, FR"}
    assert reply.usage == Usage(input=122, output=33)
    assert sent == [doc_request]


async def test_docs_history_with_tool_result(docs: Docs) -> None:
    title = "Chat request (With history, with tools)"
    [body] = docs.responses(title)
    doc_request = docs.request(title)
    fn = doc_request["tools"][0]["function"]
    call = ToolCall("call_from_anthropic_01", "get_weather", {"city": "Toronto"}, provider="claude-api")
    history = (
        Message.user("what is the weather in Toronto?"),
        Message("assistant", (call,)),
        Message.tool(ToolResult(call.id, "get_weather", (_text("11 degrees celsius"),))),
    )
    adapter, sent = serve(200, json.dumps(body).encode(), ndjson=False)
    reply = await complete(
        adapter, ChatRequest(history, tools=(Tool(fn["name"], fn["description"], fn["parameters"]),)),
        target("llama3.2"),
    )
    assert reply.text == "The current temperature in Toronto is 11°C."
    assert reply.usage == Usage(input=94, output=11)
    # same request as the docs, plus the ids newer servers use to pair results with calls
    [ours] = sent
    assert ours["messages"][1]["tool_calls"][0]["id"] == "call_from_anthropic_01"
    assert ours["messages"][2]["tool_call_id"] == "call_from_anthropic_01"
    assert _strip_ids(ours, bare_calls=True) == doc_request


async def test_docs_image_request_and_reply(docs: Docs) -> None:
    title = "Chat request (with images)"
    [body] = docs.responses(title)
    doc_request = docs.request(title)
    b64 = doc_request["messages"][0]["images"][0]
    history = (Message.user("what is in this image?", Image("image/png", data=b64)),)
    adapter, sent = serve(200, json.dumps(body).encode(), ndjson=True)
    events = await collect(adapter, ChatRequest(history), target("llava"))
    reply = Accumulator("ollama", "llava").feed(events).message()
    assert reply.text.startswith(" The image features a cute, little pig")
    assert reply.usage == Usage(input=26, output=83)
    assert sent == [{**doc_request, "stream": True}]  # the docs rely on the server's default


async def test_docs_image_as_data_url_is_sent_bare() -> None:
    adapter, sent = serve(200, b'{"message":{"role":"assistant","content":"ok"},"done":true}', ndjson=False)
    history = (Message.user("what is this?", Image("image/png", url="data:image/png;base64,iVBORw0KGgo=")),)
    await complete(adapter, ChatRequest(history), target("llava"))
    assert sent[0]["messages"][0]["images"] == ["iVBORw0KGgo="]


async def test_docs_streamed_reply_and_structured_output(docs: Docs) -> None:
    first, final = docs.responses("Chat request (Streaming)")
    adapter, _ = serve(200, ndjson_body(first, final), ndjson=True)
    events = await collect(adapter, ask("why is the sky blue?"), target("llama3.2"))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["The"]
    assert Accumulator().feed(events).message().usage == Usage(26, 282)

    [body] = docs.responses("Chat request (Structured outputs)")
    adapter, _ = serve(200, json.dumps(body).encode(), ndjson=False)
    reply = await complete(adapter, ask("Ollama is 22 years old..."), target("llama3.1"))
    assert json.loads(reply.text) == {"age": 22, "available": False}


async def test_docs_load_reply_is_not_a_normal_stop(docs: Docs) -> None:
    [body] = docs.responses("Load a model")
    message = OllamaChat(ReplayTransport(lambda r: httpx2.Response(500))).decode(json.dumps(body).encode(),
                                                                                target("llama3.2"))
    assert message.finish_reason == "other"
    assert message.parts == ()


async def test_openapi_chat_example(docs: Docs) -> None:
    spec = docs.openapi()
    body = spec["paths"]["/api/chat"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    adapter, _ = serve(200, json.dumps(body).encode(), ndjson=False)
    reply = await complete(adapter, ask("why is the sky blue?"), target("gemma4"))
    assert reply.text == "Hello! How can I help you today?"
    assert reply.usage == Usage(input=11, output=18)
    assert reply.finish_reason == "stop"


# --- docs: thinking --------------------------------------------------------------------------


def test_docs_thinking_requests(docs: Docs) -> None:
    thinking_doc = docs.mdx("ollama__docs__capabilities__thinking.mdx")
    qwen = _curl_json(re.search(r"```shell\n(.*?)```", thinking_doc, re.S).group(1))  # type: ignore[union-attr]
    adapter = OllamaChat(ReplayTransport(lambda r: httpx2.Response(500)))
    wire = adapter.encode(ask("How many letter r are in strawberry?", reasoning="high"), target("qwen3"), stream=False)
    assert wire.json == qwen  # think: true, stream: false

    samples = docs.openapi()["paths"]["/api/chat"]["post"]["x-codeSamples"]
    gpt_oss = _curl_json(next(s["source"] for s in samples if s["label"] == "Thinking"))
    wire = adapter.encode(ask("What is 1+1?", reasoning="low"), target("gpt-oss"), stream=True)
    assert wire.json == {**gpt_oss, "stream": True}  # GPT-OSS takes levels only


async def test_streamed_thinking_becomes_reasoning_from_ollama() -> None:
    # The docs give no recorded thinking stream; these lines follow ChatStreamEvent in openapi.yaml
    # (message.thinking beside message.content) with the docs' "What is 17 × 23?" example.
    body = ndjson_body(
        {"model": "qwen3", "created_at": "t0", "message": {"role": "assistant", "content": "", "thinking": "17×23"},
         "done": False},
        {"model": "qwen3", "created_at": "t1", "message": {"role": "assistant", "content": "", "thinking": " = 391"},
         "done": False},
        {"model": "qwen3", "created_at": "t2", "message": {"role": "assistant", "content": "391"}, "done": False},
        {"model": "qwen3", "created_at": "t3", "message": {"role": "assistant", "content": ""}, "done": True,
         "done_reason": "stop", "prompt_eval_count": 20, "eval_count": 9},
    )
    adapter, sent = serve(200, body, ndjson=True)
    events = await collect(adapter, ask("What is 17 × 23?", reasoning="medium"), target("qwen3"))
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["17×23", " = 391"]
    reply = Accumulator("ollama", "qwen3").feed(events).message()
    assert reply.reasoning == "17×23 = 391" and reply.text == "391"
    assert (reply.parts[0].provider, reply.parts[0].model) == ("ollama", "qwen3")  # type: ignore[union-attr]
    assert sent[0]["think"] is True


async def test_inline_think_in_content_becomes_reasoning_from_ollama() -> None:
    """deepseek-r1 on a build (or with ``think`` unset) that leaves <think> in content, split mid-tag."""
    body = ndjson_body(
        {"model": "deepseek-r1", "created_at": "t0", "message": {"role": "assistant", "content": "<thi"},
         "done": False},
        {"model": "deepseek-r1", "created_at": "t1", "message": {"role": "assistant", "content": "nk>17×23 = 391</"},
         "done": False},
        {"model": "deepseek-r1", "created_at": "t2", "message": {"role": "assistant", "content": "think>\n\n391"},
         "done": False},
        {"model": "deepseek-r1", "created_at": "t3", "message": {"role": "assistant", "content": ""}, "done": True,
         "done_reason": "stop", "prompt_eval_count": 20, "eval_count": 9},
    )
    adapter, _ = serve(200, body, ndjson=True)
    events = await collect(adapter, ask("What is 17 × 23?"), target("deepseek-r1"))
    reply = Accumulator("ollama", "deepseek-r1").feed(events).message()
    assert reply.reasoning == "17×23 = 391" and reply.text == "391"
    assert reply.parts[0].provider == "ollama"  # type: ignore[union-attr]


# --- docs: tool-calling requests -------------------------------------------------------------


def _tool_calling_requests(docs: Docs) -> list[Any]:
    doc = docs.mdx("ollama__docs__capabilities__tool-calling.mdx")
    return [_curl_json(code) for code in re.findall(r"```shell\n(.*?)```", doc, re.S) if "-d '" in code]


def test_docs_single_tool_result_request(docs: Docs) -> None:
    requests = _tool_calling_requests(docs)
    doc = next(r for r in requests if len(r["messages"]) == 3)
    call = ToolCall("c1", "get_temperature", {"city": "New York"})
    history = (
        Message.user("What is the temperature in New York?"),
        Message("assistant", (call,)),
        Message.tool(ToolResult("c1", "get_temperature", (_text("22°C"),))),
    )
    wire = OllamaChat(ReplayTransport(lambda r: httpx2.Response(500))).encode(ChatRequest(history), target("qwen3"),
                                                                             stream=False)
    assert _strip_ids(wire.json) == _docs_assistant_content(doc)


def test_docs_parallel_tool_results_request(docs: Docs) -> None:
    requests = _tool_calling_requests(docs)
    doc = next(r for r in requests if len(r["messages"]) == 6)
    calls = tuple(
        ToolCall(f"c{i}", c["function"]["name"], c["function"]["arguments"])
        for i, c in enumerate(doc["messages"][1]["tool_calls"])
    )
    results = tuple(
        ToolResult(f"c{i}", m["tool_name"], (_text(m["content"]),)) for i, m in enumerate(doc["messages"][2:])
    )
    history = (Message.user(doc["messages"][0]["content"]), Message("assistant", calls), Message.tool(*results))
    wire = OllamaChat(ReplayTransport(lambda r: httpx2.Response(500))).encode(ChatRequest(history), target("qwen3"),
                                                                             stream=False)
    assert [c["function"]["index"] for c in wire.json["messages"][1]["tool_calls"]] == [0, 1, 2, 3]
    assert _strip_ids(wire.json) == _docs_assistant_content(doc)


# --- docs and server source: errors ----------------------------------------------------------


async def test_docs_error_line_inside_a_200_stream(docs: Docs) -> None:
    doc = docs.mdx("ollama__docs__api__errors.mdx")
    stream_example = re.findall(r"```json\n(.*?)```", doc, re.S)[-1]
    adapter, _ = serve(200, stream_example.encode(), ndjson=True)
    with pytest.raises(ProviderUnavailable, match="an error was encountered while running the model"):
        await collect(adapter, ask("hi"), target("gemma4"))


async def test_docs_error_body_with_http_status(docs: Docs) -> None:
    doc = docs.mdx("ollama__docs__api__errors.mdx")
    body = re.findall(r"```json\n(.*?)```", doc, re.S)[0].encode()  # {"error": "the model failed to ..."}
    adapter, _ = serve(500, body, ndjson=False)
    with pytest.raises(ProviderUnavailable, match="the model failed to generate a response") as info:
        await complete(adapter, ask("hi"), target("gemma4"))
    assert info.value.status == 500
    adapter, _ = serve(400, body, ndjson=False)
    with pytest.raises(BadRequest):
        await complete(adapter, ask("hi"), target("gemma4"))


async def test_model_not_found_says_how_to_pull_it() -> None:
    # server/routes.go: c.JSON(404, {"error": fmt.Sprintf("model %q not found, try pulling it first", name)})
    adapter, _ = serve(404, b'{"error":"model \\"llama3.3\\" not found, try pulling it first"}', ndjson=False)
    with pytest.raises(ModelNotFound) as info:
        await complete(adapter, ask("hi"), target("llama3.3"))
    assert "ollama pull llama3.3" in str(info.value)
    assert info.value.status == 404

    adapter, _ = serve(200, b'{"error":"model \\"llama3.3\\" not found, try pulling it first"}\n', ndjson=True)
    with pytest.raises(ModelNotFound, match=r"ollama pull llama3\.3"):
        await collect(adapter, ask("hi"), target("llama3.3"))


async def test_capability_refusal_is_a_bad_request_with_advice() -> None:
    # PROTOCOLS.md 5.1: models lacking a capability answer 400 `"<model>" does not support thinking`
    adapter, _ = serve(400, b'{"error":"\\"llama3.2\\" does not support thinking"}', ndjson=False)
    with pytest.raises(BadRequest, match="does not support thinking") as info:
        await complete(adapter, ask("hi", reasoning="high"), target("llama3.2"))
    assert "models list" in info.value.hint


# --- helpers ---------------------------------------------------------------------------------


def _text(s: str) -> Any:
    from ironspire.messages import Text

    return Text(s)


def _strip_ids(body: dict[str, Any], *, bare_calls: bool = False) -> dict[str, Any]:
    """Our request without the call ids (the docs' examples predate them); ``bare_calls`` also
    drops the ``type``/``index`` the tool-calling page shows but the older api.md example omits."""
    out = json.loads(json.dumps(body))
    for m in out["messages"]:
        m.pop("tool_call_id", None)
        for c in m.get("tool_calls", ()):
            c.pop("id", None)
            if bare_calls:
                c.pop("type", None)
                c["function"].pop("index", None)
    return out


def _docs_assistant_content(doc: dict[str, Any]) -> dict[str, Any]:
    """The docs omit an assistant message's empty content; the schema requires it, so we send ""."""
    out = json.loads(json.dumps(doc))
    for m in out["messages"]:
        m.setdefault("content", "")
    return out


async def test_final_object_without_counts_is_unknown_usage() -> None:
    body = ndjson_body(
        {"model": "llama3", "created_at": "t0", "message": {"role": "assistant", "content": "hi"}, "done": False},
        {"model": "llama3", "created_at": "t1", "message": {"role": "assistant", "content": ""}, "done": True,
         "done_reason": "stop"},
    )
    adapter, _ = serve(200, body, ndjson=True)
    events = await collect(adapter, ask("hello"), target("llama3"))
    reply = Accumulator("ollama", "llama3").feed(events).message()
    assert reply.text == "hi" and reply.usage is not None and reply.usage.state == "unknown"
