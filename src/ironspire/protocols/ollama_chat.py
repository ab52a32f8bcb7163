"""Ollama's native chat API (``POST /api/chat``), streamed as NDJSON.

The native API is used rather than Ollama's OpenAI-compatible surface because only the native
one reports thinking as its own field on every build, takes tool arguments as objects and lets
us send ``think`` and Modelfile ``options`` (``num_ctx``) directly.

Facts this adapter relies on (PROTOCOLS.md section 5, Ollama docs/api.md):
- ``stream`` defaults to true on the server, so it is always sent explicitly;
- tool calls arrive whole (arguments as a JSON object, never fragments) and often without an id:
  ids are then synthesized from the response's timestamp, the call's position and its content,
  so the same response always decodes to the same ids;
- usage is ``prompt_eval_count`` / ``eval_count`` on the final (``done``) object; a prompt served
  entirely from cache omits ``prompt_eval_count``, which therefore counts as 0;
- errors inside a 200 stream are NDJSON lines ``{"error": "..."}``;
- a history longer than the context window is truncated silently by the server, so
  ``check_context`` refuses such a request before it is sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ironspire.errors import (
    BadRequest,
    CapabilityError,
    ContextWindowExceeded,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    pull_remedy,
)
from ironspire.messages import (
    Accumulator,
    Document,
    Finish,
    FinishReason,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    StreamEvent,
    Text,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolResult,
    Usage,
    UsageEvent,
)
from ironspire.protocols import common, inline_think
from ironspire.protocols.base import ChatRequest, HttpProtocol, Target, WireRequest
from ironspire.protocols.framing import ndjson
from ironspire.protocols.inline_think import ThinkSplitter
from ironspire.protocols.ollama_server import DEFAULT_OLLAMA_URL, ollama_base_url

if TYPE_CHECKING:
    from ironspire.catalog.discovery import DiscoveryResult
    from ironspire.catalog.providers import ProviderSpec
    from ironspire.http import Response

__all__ = ["DEFAULT_OLLAMA_URL", "OllamaChat", "check_context", "estimate_tokens", "ollama_base_url"]

#: request.options keys that belong at the top level of the request body
_TOP_LEVEL = ("format", "keep_alive", "truncate", "shift")
#: request.options keys that are Modelfile parameters (Ollama warns about, and ignores, others)
_MODEL_OPTIONS = frozenset({
    "num_ctx", "num_predict", "num_keep", "num_batch", "num_gpu", "main_gpu", "num_thread", "use_mmap",
    "temperature", "top_k", "top_p", "min_p", "typical_p", "seed", "stop", "repeat_penalty", "repeat_last_n",
    "presence_penalty", "frequency_penalty",
})

#: context estimate (see ``estimate_tokens``)
BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD = 8
IMAGE_TOKENS = 768


# --- context check ---------------------------------------------------------------------------


def _text_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def _part_tokens(part: Any) -> int:
    if isinstance(part, Text):
        return _text_tokens(part.text)
    if isinstance(part, Reasoning):
        return _text_tokens(part.text)
    if isinstance(part, Image):
        return IMAGE_TOKENS
    if isinstance(part, ToolCall):
        return _text_tokens(part.name) + _text_tokens(json.dumps(dict(part.arguments), ensure_ascii=False))
    if isinstance(part, ToolResult):
        return _text_tokens(part.tool_name) + sum(_part_tokens(p) for p in part.content)
    return 0


def estimate_tokens(request: ChatRequest, target: Target) -> int:
    """A deliberately high estimate of the prompt's size in tokens.

    Text counts one token per 3 UTF-8 bytes (English averages about 4 characters per token, and
    CJK text about one token per 3-byte character, so this over-counts rather than under-counts),
    plus 8 tokens of chat-template overhead per message, 768 per image (the larger end of what
    vision encoders use) and the JSON of the tool definitions at the same rate. When the history
    holds an earlier reply from this same model with the server's own count of the prompt
    (``prompt_eval_count``), that exact count replaces the estimate for everything up to and
    including that reply, and only what follows it is estimated.
    """
    messages = list(request.messages)
    known = 0
    start = 0
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if (
            m.role == "assistant" and m.usage is not None and m.usage.input > 0
            and m.provider == target.provider.id and m.model == target.model.id
        ):
            known, start = m.usage.input + m.usage.output, i + 1
            break
    total = known
    if not known:
        if request.system:
            total += _text_tokens(request.system) + MESSAGE_OVERHEAD
        for tool in request.tools:
            total += _text_tokens(json.dumps(
                {"name": tool.name, "description": tool.description, "parameters": dict(tool.parameters)},
                ensure_ascii=False,
            ))
    for m in messages[start:]:
        total += MESSAGE_OVERHEAD + sum(_part_tokens(p) for p in m.parts)
    return total


def context_limit(request: ChatRequest, target: Target) -> int:
    """The window the server will use: ``num_ctx`` when the request sets it, else the model's."""
    num_ctx = request.options.get("num_ctx")
    if isinstance(num_ctx, int) and not isinstance(num_ctx, bool) and num_ctx > 0:
        return num_ctx
    return target.model.context_window


def check_context(request: ChatRequest, target: Target) -> None:
    """Refuses a history that Ollama would silently cut down to its context window."""
    limit = context_limit(request, target)
    used = estimate_tokens(request, target)
    if used > limit:
        raise ContextWindowExceeded(
            target.provider.id,
            f"the conversation needs about {used:,} tokens but the context window is {limit:,} tokens; "
            "Ollama would silently drop the oldest messages",
            used=used, limit=limit, model=target.model.id,
            hint="Shorten the conversation, raise `num_ctx` in the agent's options (up to the model's maximum), "
            "or switch the agent to a model with a larger context window.",
        )


# --- the adapter -----------------------------------------------------------------------------


class OllamaChat(HttpProtocol):
    """Ollama's native ``/api/chat``."""

    name = "ollama_chat"
    settings = ("inline_think",)
    stream_framing = "ndjson"

    def base_url(self, spec: ProviderSpec, settings: Mapping[str, str], from_env: str | None) -> str:
        """``OLLAMA_HOST`` is read the way Ollama reads it (port 11434 when none is given), and the
        same rule gives discovery its URL, so listing and chatting ask the same server."""
        return ollama_base_url(settings.get("base_url") or from_env or None)

    def context_check(self, request: ChatRequest, target: Target) -> bool:
        """The stricter check (``num_ctx``, the server's own earlier counts): run at pre-flight it
        refuses before anything is recorded, and cannot disagree with ``encode``'s."""
        check_context(request, target)
        return True

    def probe_request(self, target: Target) -> WireRequest:
        key = target.secrets.get("api_key")
        return WireRequest("GET", target.url("/api/version"), {"Authorization": f"Bearer {key}"} if key else {})

    async def list_models(
        self, target: Target, *, read_timeout: float, connect_timeout: float
    ) -> DiscoveryResult:
        from ironspire.protocols import ollama_server

        return await ollama_server.list_models(self.transport, target, read_timeout=read_timeout,
                                               connect_timeout=connect_timeout)

    # encoding

    def encode(self, request: ChatRequest, target: Target, *, stream: bool) -> WireRequest:
        check_context(request, target)
        body: dict[str, Any] = {
            "model": target.model.id,
            "messages": self._messages(request, target),
            "stream": stream,
        }
        tools = self._tools(request, target)
        if tools:
            body["tools"] = tools
        think = self._think(request, target)
        if think is not None:
            body["think"] = think
        options = self._options(request)
        if options:
            body["options"] = options
        for key in _TOP_LEVEL:
            if key in request.options:
                body[key] = request.options[key]
        accept = "application/x-ndjson" if stream else "application/json"
        return WireRequest("POST", target.url("/api/chat"), {"Content-Type": "application/json", "Accept": accept},
                           json=body)

    def _tools(self, request: ChatRequest, target: Target) -> list[dict[str, Any]]:
        if not request.tools or (request.tool_choice == "none" and request.force_tool is None):
            return []
        if request.force_tool is not None or request.tool_choice == "required":
            raise CapabilityError(
                target.provider.id, target.model.id, "tool_choice",
                "Ollama cannot force a tool call; leave tool choice on auto",
            )
        return [
            {"type": "function",
             "function": {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}}
            for t in request.tools
        ]

    @staticmethod
    def _think(request: ChatRequest, target: Target) -> bool | str | None:
        """``think`` from options (verbatim) or the neutral effort.

        GPT-OSS only honours levels and cannot turn its trace off, so it gets a level ("none"
        becomes "low"); every other model gets a boolean, which all thinking-capable builds accept.
        """
        if "think" in request.options:
            value = request.options["think"]
            return value if isinstance(value, bool | str) else bool(value)
        if request.reasoning is None:
            return None
        if target.model.id.startswith("gpt-oss"):
            return "low" if request.reasoning == "none" else request.reasoning
        return request.reasoning != "none"

    @staticmethod
    def _options(request: ChatRequest) -> dict[str, Any]:
        options: dict[str, Any] = {k: v for k, v in request.options.items() if k in _MODEL_OPTIONS}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.stop:
            options["stop"] = list(request.stop)
        return options

    def _messages(self, request: ChatRequest, target: Target) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        system = common.system_text(request)
        if system:
            out.append({"role": "system", "content": system})
        for message in common.conversation(request):
            out.extend(self._message(message, request, target))
        return out

    def _message(self, message: Message, request: ChatRequest, target: Target) -> Iterator[dict[str, Any]]:
        text: list[str] = []
        thinking: list[str] = []
        images: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, Text):
                text.append(part.text)
            elif isinstance(part, Image):
                images.append(self._image(part, target))
            elif isinstance(part, Document):
                raise CapabilityError(target.provider.id, target.model.id, "documents",
                                      "Ollama's chat API takes no files; paste the text into the message instead")
            elif isinstance(part, Reasoning):
                if common.is_own(part, target):
                    if part.text:
                        thinking.append(part.text)
                else:
                    text.extend(p.text for p in common.foreign_reasoning(part, request) if isinstance(p, Text))
            elif isinstance(part, ToolCall):
                calls.append({
                    "id": common.tool_id(part.id, "any"),
                    "type": "function",
                    "function": {"index": len(calls), "name": part.name, "arguments": dict(part.arguments)},
                })
            elif isinstance(part, ToolResult):
                content = common.tool_results_text(part)
                if part.is_error and not content.lower().startswith("error"):
                    content = f"Error: {content}"
                results.append({
                    "role": "tool", "content": content, "tool_name": part.tool_name,
                    "tool_call_id": common.tool_id(part.call_id, "any"),
                })
        # results answer the previous assistant turn, so they go before any text sent beside them
        yield from results
        role = "assistant" if message.role == "assistant" else "user"
        if text or images or calls or thinking:
            msg: dict[str, Any] = {"role": role, "content": "".join(text)}
            if thinking:
                msg["thinking"] = "".join(thinking)
            if images:
                msg["images"] = images
            if calls:
                msg["tool_calls"] = calls
            yield msg

    @staticmethod
    def _image(image: Image, target: Target) -> str:
        try:
            _, data = common.image_inline(image)
        except BadRequest:
            raise BadRequest(
                target.provider.id, "Ollama accepts only inline images (base64), not image URLs",
                model=target.model.id, hint="Attach the image file itself instead of a URL.",
            ) from None
        return data

    # decoding

    def decode(self, body: bytes, target: Target) -> Message:
        state = _DecodeState(target)
        acc = Accumulator(target.provider.id, target.model.id)
        text = body.decode("utf-8", "replace")
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                payload = json.loads(line)
            except json.JSONDecodeError:
                raise ProviderUnavailable(
                    target.provider.id, f"malformed response: {line[:200]!r}", model=target.model.id
                ) from None
            acc.feed(state.events(payload))
        state.require_done("response ended early")
        return acc.message()

    async def decode_stream(self, response: Response, target: Target) -> AsyncIterator[StreamEvent]:
        state = _DecodeState(target)
        async for payload in ndjson(response, target.provider.id):
            for event in state.events(payload):
                yield event
        state.require_done("stream ended early")

    def error(self, status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError:
        from ironspire.transport import classify_http_error, error_message

        message, _, _ = error_message(body)
        specific = classify_message(message, target, status=status, raw=body.decode("utf-8", "replace")[:2000])
        if specific is not None:
            return specific
        return classify_http_error(status, headers, body, target)


def classify_message(message: str, target: Target, *, status: int | None = None,
                     raw: str | None = None) -> ProviderError | None:
    """Typed errors for Ollama's own messages; None when the text says nothing specific."""
    low = message.lower()
    pid, model = target.provider.id, target.model.id
    if "not found" in low and "model" in low:
        err = ModelNotFound(pid, model, status=status, raw=raw)
        err.remedy = pull_remedy(pid, model)  # its text says `ollama pull MODEL`
        return err
    if "does not support" in low:
        return BadRequest(pid, message, model=model, status=status, raw=raw,
                          hint="Choose a model with that capability (`ironspire models list --provider ollama`).")
    if "context length" in low or "context window" in low or "context size" in low:
        return ContextWindowExceeded(pid, message, limit=target.model.context_window, model=model,
                                     status=status, raw=raw)
    return None


_DONE_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "load": "other", "unload": "other"}


class _DecodeState:
    """Turns Ollama chat objects into neutral events; shared by the streamed and whole paths."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.calls = 0
        self.done = False
        # models or builds without native thinking write R1-style <think> into content: on by default
        self._think = ThinkSplitter() if inline_think.enabled(target, default=True) else None

    def events(self, payload: Any) -> Iterator[StreamEvent]:
        target = self.target
        if not isinstance(payload, dict):
            raise ProviderUnavailable(target.provider.id, f"unexpected stream value: {str(payload)[:200]!r}",
                                      model=target.model.id)
        if "error" in payload:
            message = payload["error"]
            message = message if isinstance(message, str) else json.dumps(message)
            raise classify_message(message, target) or ProviderUnavailable(
                target.provider.id, message, model=target.model.id
            )
        msg = payload.get("message") or {}
        thinking = msg.get("thinking")
        if thinking:
            yield ReasoningDelta(thinking)
        content = msg.get("content")
        if content:
            if self._think is None:
                yield TextDelta(content)
            else:
                yield from self._think.feed(content)
        for call in msg.get("tool_calls") or ():
            yield from self._call(call, payload.get("created_at", ""))
        if payload.get("done"):
            self.done = True
            if self._think is not None:
                yield from self._think.close()
            if "prompt_eval_count" in payload or "eval_count" in payload:
                yield UsageEvent(Usage(input=int(payload.get("prompt_eval_count") or 0),
                                       output=int(payload.get("eval_count") or 0)))
            else:  # a final object without counts (older builds, some proxies): unknown, not zero
                yield UsageEvent(Usage.unknown())
            raw = payload.get("done_reason")
            reason: FinishReason = "stop" if raw is None else _DONE_REASONS.get(raw, "other")
            if reason == "stop" and self.calls:
                reason = "tool_calls"
            yield Finish(reason, raw)

    def _call(self, call: Any, created_at: str) -> Iterator[StreamEvent]:
        fn = call.get("function") or {}
        name = str(fn.get("name", ""))
        args = fn.get("arguments")
        raw_args = args if isinstance(args, str) else json.dumps(args if args is not None else {}, ensure_ascii=False)
        index = self.calls
        self.calls += 1
        call_id = call.get("id") or common.new_tool_id(f"ollama|{created_at}|{index}|{name}|{raw_args}")
        yield ToolCallStart(index, str(call_id), name)
        yield ToolCallDelta(index, raw_args)
        yield ToolCallEnd(index)

    def require_done(self, what: str) -> None:
        if not self.done:
            raise ProviderUnavailable(self.target.provider.id, what, model=self.target.model.id)
