"""What the Ollama adapter sends: request body rules, cross-provider history, the context guard,
and where the server is (OLLAMA_HOST normalised the way Ollama's own client reads it)."""

from __future__ import annotations

from typing import Any

import pytest

from ironspire.catalog.models import dynamic_model
from ironspire.catalog.providers import builtin
from ironspire.errors import BadRequest, CapabilityError, ContextWindowExceeded
from ironspire.http import Client
from ironspire.messages import Image, Message, Reasoning, Text, ToolCall, ToolResult, Usage
from ironspire.protocols import backend_for
from ironspire.protocols.base import ChatRequest, Target, Tool
from ironspire.protocols.ollama_chat import OllamaChat, check_context, estimate_tokens, ollama_base_url
from ironspire.transport import RetryPolicy, Transport

WEATHER = Tool("get_weather", "Weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}})


class RefusingTransport(Transport):
    """Fails the test if anything is sent: used where the adapter must stop before the network."""

    def __init__(self) -> None:
        super().__init__(RetryPolicy(attempts=1))

    def client(self, target: Target) -> Client:
        raise AssertionError("a request was sent")


def target(model: str = "llama3.2", context: int = 8192) -> Target:
    return Target(builtin("ollama"), dynamic_model("ollama", model, context_window=context), "http://127.0.0.1:11434")


def encode(request: ChatRequest, tgt: Target | None = None, *, stream: bool = False) -> dict[str, Any]:
    wire = OllamaChat(RefusingTransport()).encode(request, tgt or target(), stream=stream)
    assert wire.method == "POST" and wire.url == "http://127.0.0.1:11434/api/chat"
    body: dict[str, Any] = wire.json
    return body


def test_registered_under_its_protocol_name() -> None:
    assert isinstance(backend_for("ollama_chat", RefusingTransport()), OllamaChat)
    assert OllamaChat.stream_framing == "ndjson"


@pytest.mark.parametrize("stream", [True, False])
def test_stream_is_always_explicit_and_no_credentials_are_sent(stream: bool) -> None:
    wire = OllamaChat(RefusingTransport()).encode(ChatRequest((Message.user("hi"),)), target(), stream=stream)
    assert wire.json["stream"] is stream
    assert "authorization" not in {k.lower() for k in wire.headers}


def test_options_and_top_level_knobs() -> None:
    body = encode(ChatRequest(
        (Message.user("hi"),), temperature=0.2, max_tokens=300, stop=("END", "###"),
        options={"num_ctx": 16384, "seed": 7, "format": "json", "keep_alive": "10m", "reasoning_effort": "x"},
    ))
    assert body["options"] == {"num_ctx": 16384, "seed": 7, "temperature": 0.2, "num_predict": 300,
                               "stop": ["END", "###"]}
    assert body["format"] == "json" and body["keep_alive"] == "10m"
    assert "reasoning_effort" not in str(body)  # not an Ollama option: not sent at all
    assert "options" not in encode(ChatRequest((Message.user("hi"),)))


def test_system_prompt_and_system_messages_lead_the_conversation() -> None:
    body = encode(ChatRequest((Message.system("Be brief."), Message.user("hi")), system="You are Ada."))
    assert body["messages"] == [
        {"role": "system", "content": "You are Ada.\n\nBe brief."},
        {"role": "user", "content": "hi"},
    ]


def test_tools_and_tool_choice() -> None:
    body = encode(ChatRequest((Message.user("weather?"),), tools=(WEATHER,)))
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city", "parameters": dict(WEATHER.parameters)}}]
    assert "tools" not in encode(ChatRequest((Message.user("weather?"),), tools=(WEATHER,), tool_choice="none"))
    for request in (
        ChatRequest((Message.user("weather?"),), tools=(WEATHER,), force_tool="get_weather"),
        ChatRequest((Message.user("weather?"),), tools=(WEATHER,), tool_choice="required"),
    ):
        with pytest.raises(CapabilityError, match="cannot force a tool call"):
            encode(request)


def test_history_from_another_provider() -> None:
    """A turn produced by Anthropic (signed thinking, toolu_ id) continues on Ollama."""
    call = ToolCall("toolu_01D7FLrfh4GYq7yT1ULFeyMV", "get_weather", {"city": "Oslo", "days": 2})
    history = (
        Message.user("weather in Oslo?"),
        Message("assistant", (
            Reasoning("I should call the tool.", signature="sig", provider="claude-api", model="claude-x"),
            Text("Let me check."), call,
        ), provider="claude-api"),
        Message.tool(ToolResult(call.id, "get_weather", (Text("rain"),))),
    )
    body = encode(ChatRequest(history, tools=(WEATHER,)))
    assert body["messages"][1] == {
        "role": "assistant", "content": "Let me check.",
        "tool_calls": [{"id": call.id, "type": "function",
                        "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}}],
    }  # foreign reasoning dropped; arguments stay an object
    assert body["messages"][2] == {"role": "tool", "content": "rain", "tool_name": "get_weather",
                                   "tool_call_id": call.id}
    as_text = encode(ChatRequest(history, tools=(WEATHER,), foreign_reasoning="text"))
    assert as_text["messages"][1]["content"] == "<thinking>I should call the tool.</thinking>Let me check."


def test_own_thinking_is_replayed_as_thinking() -> None:
    history = (
        Message.user("17 × 23?"),
        Message("assistant", (Reasoning("17×23 = 391", provider="ollama", model="qwen3"), Text("391")),
                provider="ollama", model="qwen3"),
        Message.user("and doubled?"),
    )
    body = encode(ChatRequest(history), target("qwen3"))
    assert body["messages"][1] == {"role": "assistant", "content": "391", "thinking": "17×23 = 391"}


def test_tool_results_come_before_text_in_the_same_user_turn_and_errors_say_so() -> None:
    history = (
        Message.user("go"),
        Message("assistant", (ToolCall("c1", "get_weather", {"city": "Rome"}),)),
        Message("user", (ToolResult("c1", "get_weather", (Text("timeout"),), is_error=True), Text("try again"))),
    )
    messages = encode(ChatRequest(history))["messages"]
    assert messages[2] == {"role": "tool", "content": "Error: timeout", "tool_name": "get_weather",
                           "tool_call_id": "c1"}
    assert messages[3] == {"role": "user", "content": "try again"}


def test_image_url_is_refused_with_a_clear_message() -> None:
    history = (Message.user("what is this?", Image("image/png", url="https://example.com/cat.png")),)
    with pytest.raises(BadRequest, match="only inline images") as info:
        encode(ChatRequest(history), target("llava"))
    assert "instead of a URL" in str(info.value)


@pytest.mark.parametrize(("model", "reasoning", "options", "think"), [
    ("qwen3", "high", {}, True),
    ("qwen3", "none", {}, False),
    ("gpt-oss:20b", "medium", {}, "medium"),
    ("gpt-oss:20b", "none", {}, "low"),  # GPT-OSS cannot turn its trace off
    ("qwen3", "low", {"think": "max"}, "max"),  # explicit option wins
])
def test_think_flag(model: str, reasoning: Any, options: dict[str, Any], think: Any) -> None:
    body = encode(ChatRequest((Message.user("hi"),), reasoning=reasoning, options=options), target(model))
    assert body["think"] == think


def test_no_think_flag_unless_asked() -> None:
    assert "think" not in encode(ChatRequest((Message.user("hi"),)), target("qwen3"))


# --- context guard ---------------------------------------------------------------------------


def _long_history(chars: int) -> tuple[Message, ...]:
    return (Message.user("x" * chars),)


def test_history_over_the_window_is_refused_before_sending() -> None:
    adapter = OllamaChat(RefusingTransport())
    request = ChatRequest(_long_history(30_000))  # about 10 000 estimated tokens
    with pytest.raises(ContextWindowExceeded) as info:
        adapter.encode(request, target(context=8192), stream=True)
    err = info.value
    assert err.limit == 8192 and err.used is not None and err.used > 8192
    assert "8,192" in str(err) and f"{err.used:,}" in str(err)
    assert "silently" in str(err)


async def test_complete_refuses_without_touching_the_network() -> None:
    with pytest.raises(ContextWindowExceeded):
        await OllamaChat(RefusingTransport()).complete(ChatRequest(_long_history(30_000)), target(context=4096))


def test_num_ctx_option_is_the_window_ollama_will_use() -> None:
    request = ChatRequest(_long_history(30_000), options={"num_ctx": 32768})
    check_context(request, target(context=8192))  # fits the larger window the request asks for
    small = ChatRequest(_long_history(3_000), options={"num_ctx": 512})
    with pytest.raises(ContextWindowExceeded, match="512"):
        check_context(small, target(context=8192))


def test_estimate_is_conservative_for_english_and_cjk() -> None:
    english = "The quick brown fox jumps over the lazy dog. " * 100  # ~1000 real tokens
    cjk = "你好世界" * 250  # 1000 characters, roughly one token each
    assert estimate_tokens(ChatRequest((Message.user(english),)), target()) > 1000
    assert estimate_tokens(ChatRequest((Message.user(cjk),)), target()) >= 1000
    with_image = ChatRequest((Message.user("see", Image("image/png", data="AAAA")),))
    assert estimate_tokens(with_image, target()) >= 768


def test_server_counts_replace_the_estimate_for_what_it_already_read() -> None:
    """An earlier reply from this model says exactly how long the history was (prompt_eval_count)."""
    earlier = Message("assistant", (Text("ok"),), provider="ollama", model="llama3.2",
                      usage=Usage(input=7000, output=500))
    history = (Message.user("y" * 30), earlier, Message.user("next"))
    used = estimate_tokens(ChatRequest(history), target())
    assert 7500 < used < 7600
    with pytest.raises(ContextWindowExceeded):
        check_context(ChatRequest(history), target(context=7200))
    foreign = Message("assistant", (Text("ok"),), provider="openai", model="gpt-x", usage=Usage(7000, 500))
    assert estimate_tokens(ChatRequest((Message.user("y" * 30), foreign, Message.user("next"))), target()) < 100


# --- where the server is ---------------------------------------------------------------------


@pytest.mark.parametrize(("env", "expected"), [
    (None, "http://localhost:11434"),
    ("", "http://localhost:11434"),
    ("0.0.0.0", "http://0.0.0.0:11434"),
    ("gpu-box", "http://gpu-box:11434"),
    ("gpu-box:8080", "http://gpu-box:8080"),
    ("'127.0.0.1:9999' ", "http://127.0.0.1:9999"),
    ("http://gpu-box", "http://gpu-box:80"),
    ("https://ollama.example.com", "https://ollama.example.com:443"),
    ("https://ollama.example.com:8443/", "https://ollama.example.com:8443"),
    ("http://proxy:80/ollama/", "http://proxy:80/ollama"),
    ("[::1]:11500", "http://[::1]:11500"),
    ("::1", "http://[::1]:11434"),
    ("gpu-box:99999", "http://gpu-box:11434"),
])
def test_ollama_host_is_read_like_ollama_does(monkeypatch: pytest.MonkeyPatch, env: str | None,
                                              expected: str) -> None:
    if env is not None:
        monkeypatch.setenv("OLLAMA_HOST", env)
    assert ollama_base_url(None) == expected


def test_configured_url_wins_over_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "elsewhere:1")
    assert ollama_base_url("http://gpu-box:11434/") == "http://gpu-box:11434"
    assert ollama_base_url("http://gpu-box:11434/v1") == "http://gpu-box:11434"  # the OpenAI-compat path
    assert ollama_base_url("gpu-box") == "http://gpu-box:11434"
