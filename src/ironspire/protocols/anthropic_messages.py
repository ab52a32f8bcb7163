"""The Anthropic Messages API (``claude-api``): neutral history in, Messages wire format out.

Decisions a reader needs before changing this module:

* One decoder for both paths. A streamed response is a sequence of SSE events; a complete
  response is replayed through the same ``EventDecoder`` as synthetic events, so the two cannot
  drift. The Claude CLI adapter reuses ``EventDecoder`` too, because with partial messages the
  CLI forwards these very events.
* Thinking blocks are echoed back byte-for-byte and in their original order, but only to
  Anthropic (``common.is_own``); a thinking block without a signature (a stream cut before
  ``signature_delta``) cannot be verified by the API and is dropped on replay.
* Thinking blocks are replayed only to the model that produced them: Anthropic binds a block to
  its model (another model's block is a 400), and dropping one from an earlier turn is harmless.
* Forced tool use on models with the ``no_forced_tool`` quirk raises CapabilityError instead of
  silently becoming ``auto``: a caller that forces a tool wants structured output and should
  learn that it will not get it, rather than receive free text. ``tool_choice="required"`` is
  forced use too (``any``) and is treated the same way. Manual (budget) thinking rejects forced
  use as well; adaptive thinking accepts it (the model then skips thinking).
* A tool loop carried on from another provider (the history ends with tool results, and the
  assistant message that opened the loop has no thinking block of ours) cannot continue with
  thinking on: Anthropic requires the opening assistant message of the turn in progress to
  start with a thinking block. Where the model lets thinking be turned down, this request goes
  out with thinking off (``disabled``, or ``between_tools`` on models that reject ``disabled``)
  and without thinking blocks in that turn. Models whose thinking is always on get the loop
  instead as plain text (``[called tool NAME with {json}]`` / ``[result of NAME: ...]``), which
  closes it, so they answer in a fresh turn of their own with the tools still offered.
* A trailing assistant turn (prefill) on a ``no_prefill`` model raises BadRequest before any
  request is sent; the API would reject it anyway, with a less helpful message.
* ``options["thinking_budget"]`` overrides the token budget that ``reasoning`` picks on models
  that take the budget form of thinking (Claude 3.x and 4.0-4.6); newer ones take ``adaptive``.
  ``reasoning="none"`` sends ``disabled``, ``between_tools`` on models with that quirk (Sonnet
  5.5 rejects ``disabled``), and nothing on models whose thinking is always on.
* Prompt caching uses explicit breakpoints, which every Claude model accepts: on the system
  prompt, the last tool, the last block of the conversation and the last message the user marked
  ``cache_here``. It is on for a request when ``options["cache"]`` says so, else when the provider
  setting ``prompt_cache`` does (for every agent on the provider: ``ironspire providers set
  claude-api prompt_cache 5m``), else when the neutral ``ChatRequest.cache`` (the workspace setting
  ``prompt_cache``) does (``common.prompt_cache``). ``"5m"``/``"1h"`` (or a dict with ``ttl``) set
  the breakpoint's TTL, ``"24h"`` asks for the longest (1h); any other true value uses the
  default TTL; ``options["cache"]=False`` turns it off for one request.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ironspire.catalog.quirks import MessagesModelQuirks, quirks_of
from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    CapabilityError,
    ContextWindowExceeded,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    register_secret,
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
from ironspire.protocols.base import ChatRequest, HttpProtocol, PromptCache, Target, WireRequest
from ironspire.protocols.common import (
    capped_ttl,
    conversation,
    document_text,
    foreign_reasoning,
    image_inline,
    is_cache_mark,
    is_own,
    prompt_cache,
    split_data_url,
    system_text,
    tool_id,
)
from ironspire.protocols.framing import sse_json
from ironspire.transport import classify_http_error, error_message, is_context_overflow, parse_retry_after

if TYPE_CHECKING:
    from ironspire.http import Response

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
_THINKING_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}
# Families that predate adaptive thinking and only take {"type": "enabled", "budget_tokens"}.
_BUDGET_THINKING = re.compile(r"^claude-(?:3-|(?:opus|sonnet|haiku)-4(?:-[0-6])?(?:-\d{8})?$)")

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicMessages(HttpProtocol):
    name = "anthropic_messages"
    stream_framing = "sse"
    settings = ("prompt_cache", "anthropic_beta")

    def probe_request(self, target: Target) -> WireRequest:
        """``GET /v1/models?limit=1``: authenticated, free, and one item long."""
        base = target.base_url.rstrip("/")
        path = "/models" if base.endswith("/v1") else "/v1/models"
        headers = {"x-api-key": target.secret("api_key"), "anthropic-version": "2023-06-01"}
        return WireRequest("GET", base + path, headers, params={"limit": "1"})

    def encode(self, request: ChatRequest, target: Target, *, stream: bool) -> WireRequest:
        key = target.secret("api_key")
        register_secret(key)
        headers = {
            "x-api-key": key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        }
        if beta := target.settings.get("anthropic_beta"):
            headers["anthropic-beta"] = beta
        body = encode_body(request, target, stream=stream)
        return WireRequest("POST", target.url("/v1/messages"), headers, json=body)

    def decode(self, body: bytes, target: Target) -> Message:
        data = self.json_body(body, target)
        if not isinstance(data, dict):
            raise ProviderUnavailable(target.provider.id, "response is not a JSON object", model=target.model.id)
        if data.get("type") == "error":
            raise stream_error(data, target)
        decoder = EventDecoder(target)
        acc = Accumulator(target.provider.id, target.model.id)
        for event in message_as_events(data):
            acc.feed(decoder.feed(event))
        return acc.message()

    async def decode_stream(self, response: Response, target: Target) -> AsyncIterator[StreamEvent]:
        decoder = EventDecoder(target)
        async for _name, payload in sse_json(response, target.provider.id):
            for event in decoder.feed(payload):
                yield event
            if decoder.done:
                return
        raise ProviderUnavailable(target.provider.id, "stream ended early", model=target.model.id)

    def error(self, status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError:
        message, code, _ = error_message(body)
        raw = body.decode("utf-8", "replace")[:2000]
        pid, model = target.provider.id, target.model.id
        if status == 429:
            retry = parse_retry_after(headers)
            if retry is None:
                retry = ratelimit_reset(headers)
            return RateLimitError(pid, message, retry_after=retry, model=model, status=status, raw=raw)
        if status == 529 or code == "overloaded_error":
            return ProviderUnavailable(pid, f"overloaded: {message}", model=model, status=status, raw=raw)
        if status == 404 and code == "not_found_error" and "model" in message.lower():
            return model_not_found(target, status=status, raw=raw)
        if status == 403 or code == "permission_error":
            return AuthenticationError(
                pid, message, model=model, status=status, raw=raw,
                hint="The API key is valid but not allowed to do this; check its workspace and permissions "
                "in the Anthropic Console.",
            )
        if status == 402 or code == "billing_error":
            return BadRequest(pid, message, model=model, status=status, raw=raw,
                              hint="Check the plan and billing of this key in the Anthropic Console.")
        if status in (400, 413) and is_context_overflow(message, code):
            used, limit = _overflow_numbers(message)
            return ContextWindowExceeded(pid, message, used=used, limit=limit or target.model.context_window,
                                         model=model, status=status, raw=raw)
        return classify_http_error(status, headers, body, target)


def model_quirks(target: Target) -> MessagesModelQuirks:
    """The model's typed quirks (the defaults for a model that declares none)."""
    return quirks_of(target.model.quirks, MessagesModelQuirks)


# --- encoding ---------------------------------------------------------------------------------


def encode_body(request: ChatRequest, target: Target, *, stream: bool) -> dict[str, Any]:
    model = target.model
    quirks = model_quirks(target)
    body: dict[str, Any] = {"model": model.id, "max_tokens": max_tokens(request, target)}
    cache = _cache_control(prompt_cache(request, target))

    system = system_text(request)
    if system:
        body["system"] = [{"type": "text", "text": system, "cache_control": cache}] if cache else system

    marks: list[dict[str, Any]] = []
    messages = encode_messages(request, target, marks)
    if messages and messages[-1]["role"] == "assistant":
        if not quirks.prefill:
            raise BadRequest(
                target.provider.id,
                "this model does not accept a conversation that ends with an assistant turn (prefill)",
                model=model.id,
                hint="End the conversation with a user message.",
            )
        _strip_trailing_whitespace(messages[-1])
    thinking = _thinking(request, target)
    thinking, messages = _continue_tool_loop(messages, thinking, target)
    if cache and messages:
        # up to 4 breakpoints: system, tools, the newest block and (when marked) the user's own
        messages[-1]["content"][-1]["cache_control"] = cache
        for block in _surviving(marks, messages)[-1:]:
            block["cache_control"] = cache
    body["messages"] = messages

    if thinking:
        body["thinking"] = thinking
        if thinking["type"] == "enabled":
            body["max_tokens"] = max(body["max_tokens"], thinking["budget_tokens"] + 1024)
        if thinking["type"] == "adaptive" and request.reasoning in _THINKING_BUDGET:
            body["output_config"] = {"effort": request.reasoning}

    if request.stop:
        body["stop_sequences"] = list(request.stop)
    sampling_allowed = quirks.sampling and not (thinking and thinking["type"] != "disabled")
    if request.temperature is not None and sampling_allowed:
        body["temperature"] = min(max(request.temperature, 0.0), 1.0)

    if request.tools:
        tools: list[dict[str, Any]] = []
        for tool in request.tools:
            spec: dict[str, Any] = {"name": tool.name, "input_schema": dict(tool.parameters)}
            if tool.description:
                spec["description"] = tool.description
            tools.append(spec)
        if cache:
            tools[-1]["cache_control"] = cache
        body["tools"] = tools
        choice = _tool_choice(request, target, thinking is not None and thinking["type"] == "enabled")
        if choice:
            body["tool_choice"] = choice
    if stream:
        body["stream"] = True
    return body


def max_tokens(request: ChatRequest, target: Target) -> int:
    """The API requires max_tokens: the caller's value, else a default, never above the model's cap."""
    ceiling = target.model.max_output_tokens or DEFAULT_MAX_TOKENS
    wanted = request.max_tokens if request.max_tokens else DEFAULT_MAX_TOKENS
    return max(1, min(wanted, ceiling))


def _cache_control(cache: PromptCache | None) -> dict[str, Any] | None:
    if cache is None:
        return None
    control: dict[str, Any] = {"type": "ephemeral"}
    ttl = capped_ttl(cache)
    if ttl:
        control["ttl"] = ttl
    return control


def _surviving(marks: list[dict[str, Any]], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The marked blocks still in the request (a foreign tool loop sent as text drops some);
    thinking blocks cannot carry cache_control."""
    present = {id(b) for m in messages for b in m["content"]}
    return [b for b in marks if id(b) in present and b["type"] not in _THINKING_BLOCKS]


def _thinking(request: ChatRequest, target: Target) -> dict[str, Any] | None:
    effort = request.reasoning
    if effort is None or not target.model.reasoning:
        return None
    if effort == "none":
        return _thinking_off(target)
    if _BUDGET_THINKING.match(target.model.id):
        budget = request.options.get("thinking_budget") or _THINKING_BUDGET[effort]
        return {"type": "enabled", "budget_tokens": max(int(budget), 1024)}
    return {"type": "adaptive"}


def _thinking_off(target: Target) -> dict[str, Any] | None:
    """The lowest thinking setting the model accepts; None when it cannot be lowered at all."""
    thinking = model_quirks(target).thinking
    if thinking == "always_on":
        return None
    return {"type": "between_tools"} if thinking == "between_tools" else {"type": "disabled"}


def _thinks(thinking: Mapping[str, Any] | None, target: Target) -> bool:
    """Whether the request will run with (up-front) thinking on."""
    if thinking is not None:
        return thinking["type"] in ("enabled", "adaptive")
    return model_quirks(target).thinks


_THINKING_BLOCKS = ("thinking", "redacted_thinking")


def _continue_tool_loop(
    messages: list[dict[str, Any]], thinking: dict[str, Any] | None, target: Target
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Thinking settings and messages for a tool loop that another provider (or model) began.

    The turn in progress starts after the last user message with content of its own; it is a
    tool loop when the conversation ends with tool results. If thinking is on, Anthropic wants
    that turn's first assistant message to open with one of our thinking blocks; a foreign one
    cannot have it (see the module docstring for what happens instead).
    """
    start = _loop_start(messages)
    if start is None or not _thinks(thinking, target) or messages[start]["content"][0]["type"] in _THINKING_BLOCKS:
        return thinking, messages
    off = _thinking_off(target)
    if off is not None:
        return off, _without_thinking(messages, start)
    return thinking, _loop_as_text(messages, start)


def _loop_start(messages: list[dict[str, Any]]) -> int | None:
    """Index of the assistant message that opened the tool loop in progress, if one is."""
    if not messages or messages[-1]["role"] != "user":
        return None
    if any(b["type"] != "tool_result" for b in messages[-1]["content"]):
        return None
    for i in range(len(messages) - 2, -1, -1):
        m = messages[i]
        if m["role"] == "user" and any(b["type"] != "tool_result" for b in m["content"]):
            return i + 1
    return 0 if messages[0]["role"] == "assistant" else None


def _without_thinking(messages: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    out = messages[:start]
    for m in messages[start:]:
        blocks = [b for b in m["content"] if b["type"] not in _THINKING_BLOCKS] if m["role"] == "assistant" \
            else m["content"]
        _append(out, m["role"], blocks)
    return out


def _loop_as_text(messages: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    names = {b["id"]: b["name"] for m in messages[start:] for b in m["content"] if b["type"] == "tool_use"}
    out = messages[:start]
    for m in messages[start:]:
        blocks: list[dict[str, Any]] = []
        for b in m["content"]:
            if b["type"] == "tool_use":
                args = json.dumps(b["input"], ensure_ascii=False, sort_keys=True)
                blocks.append({"type": "text", "text": f"[called tool {b['name']} with {args}]"})
            elif b["type"] == "tool_result":
                blocks.extend(_result_as_text(b, names.get(b["tool_use_id"], "tool")))
            elif b["type"] not in _THINKING_BLOCKS:
                blocks.append(b)
        _append(out, m["role"], blocks)
    return out


def _result_as_text(block: Mapping[str, Any], name: str) -> Iterator[dict[str, Any]]:
    content = block.get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    text = "".join(p["text"] for p in parts if p["type"] == "text")
    label = "error from" if block.get("is_error") else "result of"
    yield {"type": "text", "text": f"[{label} {name}: {text}]"}
    yield from (p for p in parts if p["type"] == "image")


def _append(out: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Adds blocks as a message, merging into the previous one of the same role."""
    if not blocks:
        return
    if out and out[-1]["role"] == role:
        out[-1] = {"role": role, "content": [*out[-1]["content"], *blocks]}
    else:
        out.append({"role": role, "content": list(blocks)})


def _tool_choice(request: ChatRequest, target: Target, thinking: bool) -> dict[str, Any] | None:
    forced: dict[str, Any] | None = None
    if request.force_tool:
        forced = {"type": "tool", "name": request.force_tool}
    elif request.tool_choice == "required":
        forced = {"type": "any"}
    if forced is not None:
        if not model_quirks(target).forced_tool:
            raise CapabilityError(target.provider.id, target.model.id, "forced tool use",
                                  "the model rejects tool_choice other than auto/none; let it choose (auto)")
        if thinking:
            raise CapabilityError(target.provider.id, target.model.id, "forced tool use with extended thinking",
                                  "turn reasoning off for this request or let the model choose")
        return forced
    if request.tool_choice in ("auto", "none"):
        return {"type": request.tool_choice}
    return None


def encode_messages(
    request: ChatRequest, target: Target, marks: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Wire messages, strictly alternating user/assistant, tool results first in their user turn.

    ``marks`` collects the last block of each message marked ``cache_here``."""
    out: list[dict[str, Any]] = []
    for message in conversation(request):
        role = "assistant" if message.role == "assistant" else "user"
        blocks = list(_assistant_blocks(message, request, target) if role == "assistant" else _user_blocks(message))
        if not blocks:
            continue
        if marks is not None and is_cache_mark(message):
            marks.append(blocks[-1])
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for m in out:
        if m["role"] == "user":
            m["content"].sort(key=lambda b: b["type"] != "tool_result")
    return out


def _user_blocks(message: Message) -> Iterator[dict[str, Any]]:
    for part in message.parts:
        if isinstance(part, Text):
            if part.text.strip():
                yield {"type": "text", "text": part.text}
        elif isinstance(part, Image):
            yield image_block(part)
        elif isinstance(part, Document):
            yield document_block(part)
        elif isinstance(part, ToolResult):
            yield tool_result_block(part)
        # Reasoning and tool calls never belong to a user turn; nothing else exists.


def _assistant_blocks(message: Message, request: ChatRequest, target: Target) -> Iterator[dict[str, Any]]:
    for part in message.parts:
        if isinstance(part, Text):
            if part.text.strip():
                yield {"type": "text", "text": part.text}
        elif isinstance(part, Reasoning):
            if is_own(part, target) and part.model in (None, target.model.id):
                if part.redacted:
                    yield {"type": "redacted_thinking", "data": part.redacted}
                elif part.signature:
                    yield {"type": "thinking", "thinking": part.text, "signature": part.signature}
                # no signature: the stream was cut before the block closed; unverifiable, dropped
            else:
                for replacement in foreign_reasoning(part, request):
                    if isinstance(replacement, Text):
                        yield {"type": "text", "text": replacement.text}
        elif isinstance(part, ToolCall):
            yield {
                "type": "tool_use",
                "id": tool_id(part.id, "anthropic"),
                "name": part.name,
                "input": dict(part.arguments),
            }
        elif isinstance(part, Image):
            yield image_block(part)


def image_block(image: Image) -> dict[str, Any]:
    if image.data is not None:
        return {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}}
    assert image.url is not None
    inline = split_data_url(image.url)
    if inline is not None:
        media, data = inline
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": image.url}}


def document_block(document: Document, provider: str = "claude-api") -> dict[str, Any]:
    """A ``document`` block: PDFs as a base64 (or URL) source, inline text files as a text source."""
    text = document_text(document) if document.data is not None or (document.url or "").startswith("data:") \
        else None
    if text is not None:
        source: dict[str, Any] = {"type": "text", "media_type": "text/plain", "data": text}
    elif document.data is not None or (document.url or "").startswith("data:"):
        media, data = image_inline(document)
        if media.lower() != "application/pdf":
            raise BadRequest(provider, f"document blocks take PDF or plain text, not {media}",
                             hint="Convert the file to PDF (or paste its text into the message).")
        source = {"type": "base64", "media_type": media, "data": data}
    else:
        assert document.url is not None
        source = {"type": "url", "url": document.url}
    block: dict[str, Any] = {"type": "document", "source": source}
    if document.name:
        block["title"] = document.name
    return block


def tool_result_block(result: ToolResult) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in result.content:
        if isinstance(part, Text):
            if part.text:
                content.append({"type": "text", "text": part.text})
        else:
            content.append(image_block(part))
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id(result.call_id, "anthropic")}
    if all(c["type"] == "text" for c in content):
        block["content"] = "".join(c["text"] for c in content)
    else:
        block["content"] = content
    if result.is_error:
        block["is_error"] = True
    return block


def _strip_trailing_whitespace(message: dict[str, Any]) -> None:
    """A final assistant (prefill) text block may not end in whitespace."""
    last = message["content"][-1]
    if last["type"] == "text":
        last["text"] = last["text"].rstrip()


# --- decoding ---------------------------------------------------------------------------------


def message_as_events(data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """A complete Messages response as the stream events that would have produced it."""
    yield {"type": "message_start", "message": {**data, "content": []}}
    for index, block in enumerate(data.get("content") or []):
        yield {"type": "content_block_start", "index": index, "content_block": block}
        yield {"type": "content_block_stop", "index": index}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": data.get("stop_reason"), "stop_sequence": data.get("stop_sequence")},
        "usage": data.get("usage") or {},
    }
    yield {"type": "message_stop"}


class EventDecoder:
    """Turns Anthropic stream events into neutral events; ``done`` once ``message_stop`` arrives.

    Usage is merged across ``message_start`` and ``message_delta`` (the latter is cumulative and
    may repeat or omit input/cache counts), keeping the latest non-null value of each field.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.done = False
        self.message_id: str | None = None
        self.stop_reason: str | None = None
        self._usage: dict[str, int] = {}
        self._blocks: dict[int, str] = {}

    def feed(self, event: Mapping[str, Any]) -> list[StreamEvent]:
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event.get("index", 0), event.get("delta") or {})
        if kind == "content_block_start":
            return list(self._start(event.get("index", 0), event.get("content_block") or {}))
        if kind == "content_block_stop":
            index = event.get("index", 0)
            return [ToolCallEnd(index)] if self._blocks.pop(index, None) == "tool_use" else []
        if kind == "message_start":
            message = event.get("message") or {}
            self.message_id = message.get("id")
            self.done = False
            return self._merge_usage(message.get("usage"))
        if kind == "message_delta":
            delta = event.get("delta") or {}
            if delta.get("stop_reason"):
                self.stop_reason = delta["stop_reason"]
            return self._merge_usage(event.get("usage"))
        if kind == "message_stop":
            self.done = True
            raw = self.stop_reason
            return [Finish(STOP_REASONS.get(raw, "other") if raw else "stop", raw)]
        if kind == "error":
            raise stream_error(event, self.target)
        return []  # ping and event types added after this was written

    def _start(self, index: int, block: Mapping[str, Any]) -> Iterator[StreamEvent]:
        kind = block.get("type", "")
        self._blocks[index] = kind
        if kind == "text":
            if block.get("text"):
                yield TextDelta(block["text"])
        elif kind == "thinking":
            # Open the part even when empty so a following signature_delta closes this block.
            yield ReasoningDelta(block.get("thinking") or "", signature=block.get("signature") or None)
        elif kind == "redacted_thinking":
            yield ReasoningDelta(redacted=block.get("data") or "")
        elif kind == "tool_use":
            yield ToolCallStart(index, block.get("id") or "", block.get("name") or "")
            if block.get("input"):
                yield ToolCallDelta(index, json.dumps(block["input"]))
        # server_tool_use and server tool results run on Anthropic's side: nothing to replay.

    def _delta(self, index: int, delta: Mapping[str, Any]) -> list[StreamEvent]:
        # a list, not a generator: this runs for every chunk of every stream
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if text else []
        if kind == "input_json_delta":
            if self._blocks.get(index) == "tool_use" and delta.get("partial_json"):
                return [ToolCallDelta(index, delta["partial_json"])]
        elif kind == "thinking_delta":
            if delta.get("thinking"):
                return [ReasoningDelta(delta["thinking"])]
        elif kind == "signature_delta" and delta.get("signature"):
            return [ReasoningDelta(signature=delta["signature"])]
        return []

    def _merge_usage(self, raw: Any) -> list[StreamEvent]:
        if not isinstance(raw, Mapping):
            return []
        for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
            if isinstance(raw.get(name), int):
                self._usage[name] = raw[name]
        details = raw.get("output_tokens_details")
        if isinstance(details, Mapping) and isinstance(details.get("thinking_tokens"), int):
            self._usage["thinking_tokens"] = details["thinking_tokens"]
        return [UsageEvent(self.usage)]

    @property
    def usage(self) -> Usage:
        u = self._usage
        return Usage(
            input=u.get("input_tokens", 0),
            output=u.get("output_tokens", 0),
            cache_read=u.get("cache_read_input_tokens", 0),
            cache_write=u.get("cache_creation_input_tokens", 0),
            reasoning=u.get("thinking_tokens", 0),
        )


# --- errors -----------------------------------------------------------------------------------


def stream_error(payload: Mapping[str, Any], target: Target) -> ProviderError:
    """The typed error for an ``error`` event (or error body) that arrived with HTTP 200."""
    err = payload.get("error") if isinstance(payload.get("error"), Mapping) else payload
    assert isinstance(err, Mapping)
    kind = str(err.get("type") or "")
    message = str(err.get("message") or kind or "error event in stream")
    raw = json.dumps(payload)[:2000]
    pid, model = target.provider.id, target.model.id
    if kind in ("overloaded_error", "api_error", "timeout_error"):
        return ProviderUnavailable(pid, f"{kind}: {message}", model=model, raw=raw)
    if kind == "rate_limit_error":
        return RateLimitError(pid, message, model=model, raw=raw)
    if kind in ("authentication_error", "permission_error"):
        return AuthenticationError(pid, message, model=model, raw=raw)
    if kind == "not_found_error" and "model" in message.lower():
        return model_not_found(target, raw=raw)
    if is_context_overflow(message, kind):
        used, limit = _overflow_numbers(message)
        return ContextWindowExceeded(pid, message, used=used, limit=limit or target.model.context_window,
                                     model=model, raw=raw)
    if kind in ("invalid_request_error", "request_too_large", "billing_error"):
        return BadRequest(pid, message, model=model, raw=raw)
    return ProviderError(pid, f"{kind or 'error'}: {message}", model=model, raw=raw)


def model_not_found(target: Target, *, status: int | None = None, raw: str | None = None) -> ModelNotFound:
    import difflib

    from ironspire.catalog.models import Registry

    known = [m.id for m in Registry().list(provider=target.provider.id)]
    suggestions = difflib.get_close_matches(target.model.id, known, n=3)
    return ModelNotFound(target.provider.id, target.model.id, suggestions=suggestions, status=status, raw=raw)


_OVERFLOW_NUMBERS = (
    re.compile(r"prompt is too long:\s*(\d+)\s*tokens\s*>\s*(\d+)"),
    re.compile(r"exceed context limit:\s*(\d+)\s*\+\s*(\d+)\s*>\s*(\d+)"),
)


def _overflow_numbers(message: str) -> tuple[int | None, int | None]:
    """(tokens used, context limit) from Anthropic's overflow messages, where it states them."""
    m = _OVERFLOW_NUMBERS[0].search(message)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = _OVERFLOW_NUMBERS[1].search(message)
    if m:
        return int(m.group(1)) + int(m.group(2)), int(m.group(3))
    return None, None


_RESET_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")


def ratelimit_reset(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until the exhausted Anthropic limit resets (``anthropic-ratelimit-*-reset``, RFC 3339).

    Prefers the limits whose ``-remaining`` is 0, since those are the ones that refused the request.
    """
    now = time.time() if now is None else now
    exhausted: list[float] = []
    others: list[float] = []
    for kind in _RESET_KINDS:
        raw = headers.get(f"anthropic-ratelimit-{kind}-reset")
        if not raw:
            continue
        try:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        wait = max(at - now, 0.0)
        (exhausted if headers.get(f"anthropic-ratelimit-{kind}-remaining") == "0" else others).append(wait)
    if exhausted:
        return max(exhausted)
    return min(others) if others else None

