"""Chat Completions message shapes and chunk decoding, shared by every OpenAI-compatible provider.

Kept apart from the adapter class so that the per-provider rules (Mistral's ids and message order,
DeepSeek's reasoning replay, Groq's usage location) read as data-driven branches in one place.
A non-streamed ``message`` is decoded as if it were one big streamed ``delta``: both paths emit
the same events, so a completed turn and a streamed turn cannot disagree about what was said.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ironspire.catalog.quirks import ChatCompletionsModelQuirks, ChatCompletionsQuirks, quirks_of
from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ModelNotFound,
    ProviderError,
    RateLimitError,
    register_secret,
)
from ironspire.messages import (
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
from ironspire.protocols.base import ChatRequest, PromptCache, Target
from ironspire.protocols.common import (
    conversation,
    document_filename,
    document_text,
    foreign_reasoning,
    image_data_url,
    is_own,
    new_tool_id,
    system_text,
    tool_id,
)
from ironspire.protocols.inline_think import ThinkSplitter
from ironspire.transport import classify_http_error, error_message, parse_retry_after

#: Mistral rejects a user turn right after tool results; this stands in for the assistant turn
#: it expects there (the same filler pydantic-ai sends, see the recorded Mistral image exchange).
MISTRAL_BRIDGE = "OK"

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",  # Together
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "model_length": "length",  # Mistral
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
}


def finish_reason(raw: str) -> FinishReason:
    return _FINISH.get(raw, "other")


def provider_quirks(target: Target) -> ChatCompletionsQuirks:
    return quirks_of(target.provider.quirks, ChatCompletionsQuirks)


def model_quirks(target: Target) -> ChatCompletionsModelQuirks:
    return quirks_of(target.model.quirks, ChatCompletionsModelQuirks)


def thinking_on(request: ChatRequest, target: Target) -> bool:
    """Whether a request to a thinking-toggle endpoint runs in thinking mode: the model's default,
    unless the request asks for an effort (on) or for none (off)."""
    default = model_quirks(target).thinking_default
    if default == "off" or request.reasoning == "none":
        return False
    return default == "on" or request.reasoning is not None


# --- encoding --------------------------------------------------------------------------------


def call_arguments(call: ToolCall) -> str:
    """A call's arguments as the JSON string both OpenAI APIs carry."""
    args = call.arguments
    if set(args) == {"_raw"} and isinstance(args["_raw"], str):
        return args["_raw"]  # unparsable arguments go back exactly as the model wrote them
    return json.dumps(dict(args), ensure_ascii=False)


def _image_part(image: Image, target: Target) -> dict[str, Any]:
    url = image_data_url(image)
    if provider_quirks(target).image_url == "string":
        return {"type": "image_url", "image_url": url}
    return {"type": "image_url", "image_url": {"url": url}}


def _file_part(document: Document, index: int, target: Target) -> dict[str, Any]:
    """A document for Chat Completions, which takes files only inline (``file_data``) and only as
    PDF; a text file goes as its text, which is what OpenAI's own docs advise for other files."""
    if document.url is not None and not document.url.startswith("data:"):
        raise BadRequest(
            target.provider.id, "Chat Completions accepts documents only inline, not by URL",
            model=target.model.id, hint="Attach the file itself (base64) instead of its URL.",
        )
    name = document_filename(document, index)
    text = document_text(document)
    if text is not None:
        return {"type": "text", "text": f"[document {name}]\n{text}"}
    if document.media_type.lower() != "application/pdf":
        raise BadRequest(
            target.provider.id, f"Chat Completions accepts PDF documents only, not {document.media_type}",
            model=target.model.id, hint="Convert the file to PDF (or paste its text into the message).",
        )
    return {"type": "file", "file": {"filename": name, "file_data": image_data_url(document)}}


def _user_content(parts: list[Text | Image | Document], target: Target) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, Text):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, Document):
            out.append(_file_part(p, sum(1 for q in parts[:len(out)] if isinstance(q, Document)) + 1, target))
        else:
            out.append(_image_part(p, target))
    return out


def _assistant(message: Message, request: ChatRequest, target: Target, style: str) -> dict[str, Any] | None:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    own_reasoning: list[str] = []
    for part in message.parts:
        if isinstance(part, Text):
            texts.append(part.text)
        elif isinstance(part, ToolCall):
            calls.append({
                "id": tool_id(part.id, style), "type": "function",
                "function": {"name": part.name, "arguments": call_arguments(part)},
            })
        elif isinstance(part, Reasoning):
            # Chat Completions reasoning carries no signature; a signed part of this provider comes
            # from another of its APIs (Responses' encrypted reasoning), valid for its model only
            if is_own(part, target) and (part.signature is None or part.model == target.model.id):
                own_reasoning.append(part.text)
            else:
                texts.extend(p.text for p in foreign_reasoning(part, request) if isinstance(p, Text))
    text = "".join(texts)
    if not text and not calls:
        return None
    # With tool calls and no text the content is "" rather than null: OpenAI takes both (the
    # recorded Azure exchange sends ""), but llama.cpp's server rejects null and its chat
    # templates fail on a missing content.
    out: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        out["tool_calls"] = calls
    # DeepSeek's thinking mode refuses a follow-up after tool calls unless the turn's reasoning
    # comes back; no other provider accepts the field (Mistral answers 422), so only it gets it.
    # In thinking mode it wants the field on every tool-call turn, also on turns another
    # provider produced (which have no reasoning of DeepSeek's to return): it accepts "".
    field = provider_quirks(target).reasoning_replay_field
    if field and (any(own_reasoning) or (calls and thinking_on(request, target))):
        out[field] = "".join(own_reasoning)
    return out


def _tool_turns(results: list[ToolResult], target: Target, style: str) -> list[dict[str, Any]]:
    """One ``tool`` message per result; images (which ``tool`` messages cannot hold) follow in a user turn."""
    out: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for result in results:
        pictures = [p for p in result.content if isinstance(p, Image)]
        text = result.text() or (f"[{len(pictures)} image(s) follow]" if pictures else "")
        out.append({"role": "tool", "tool_call_id": tool_id(result.call_id, style), "content": text})
        if pictures:
            images.append({"type": "text", "text": f"Image(s) returned by {result.tool_name}:"})
            images.extend(_image_part(p, target) for p in pictures)
    if images:
        out.append({"role": "user", "content": images})
    return out


def encode_messages(request: ChatRequest, target: Target, *, system_role: str = "system") -> list[dict[str, Any]]:
    strict = provider_quirks(target).strict_order
    style = "mistral" if provider_quirks(target).tool_id_style == "alnum9" else "openai"
    out: list[dict[str, Any]] = []
    if strict:
        # Mistral refuses a system message after an assistant or tool turn: gather them up front.
        system = system_text(request)
        if system:
            out.append({"role": system_role, "content": system})
        history = conversation(request)
    else:
        if request.system:
            out.append({"role": system_role, "content": request.system})
        history = conversation(request, keep_system=True)  # system messages stay where they were
    for message in history:
        if message.role == "system":
            out.append({"role": system_role, "content": message.text})
            continue
        results = [p for p in message.parts if isinstance(p, ToolResult)]
        if results:
            out.extend(_tool_turns(results, target, style))
        if message.role == "assistant":
            turn = _assistant(message, request, target, style)
            if turn is not None:
                out.append(turn)
            continue
        content = [p for p in message.parts if isinstance(p, Text | Image | Document)]
        if content:
            out.append({"role": "user", "content": _user_content(content, target)})
    return mistral_order(out) if strict else out


def mistral_order(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Applies Mistral's message-order rules: nothing but assistant/tool after a tool turn, and the
    conversation ends on user/tool or on an assistant turn marked as a prefix to continue."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if out and out[-1]["role"] == "tool" and m["role"] == "user":
            out.append({"role": "assistant", "content": MISTRAL_BRIDGE})
        out.append(m)
    if out and out[-1]["role"] == "assistant" and not out[-1].get("tool_calls"):
        out[-1] = {**out[-1], "prefix": True}
    return out


# --- request options --------------------------------------------------------------------------

#: ``ChatRequest.options`` keys that are Chat Completions fields. Only these reach the wire, so
#: options meant for another protocol (Anthropic ``cache``/``thinking_budget``, Ollama ``think``/
#: ``num_ctx``) cannot break a request after an agent switches provider. The sampling names are
#: the ones Ollama's adapter reads too (``seed``, ``top_p``...), so one options dict travels.
WIRE_OPTIONS = frozenset({
    "top_p", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "n", "user", "response_format", "parallel_tool_calls", "service_tier", "store", "metadata",
    "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "verbosity", "prediction", "modalities",
    "reasoning_format", "random_seed", "safe_prompt", "prompt_mode",
})
#: ``options[OPTIONS_KEY]`` is a dict sent as given, for fields this list lacks (the caller vouches
#: that the endpoint takes them); it cannot replace the fields that make the request what it is.
OPTIONS_KEY = "openai_chat"
_CORE_FIELDS = frozenset({"model", "messages", "stream"})
#: reasoning models reject these with temperature (``no_sampling``)
_SAMPLING = frozenset({"top_p", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs"})
_REASONING_FORMAT = frozenset({"reasoning_format"})
_LOGPROBS = frozenset({"logprobs", "logit_bias", "top_logprobs"})
_STRICT_SCHEMA_EXTRAS = frozenset({"random_seed", "safe_prompt", "prompt_mode"})
#: Mistral answers 422 to any field outside its schema
_STRICT_SCHEMA = frozenset({
    "top_p", "presence_penalty", "frequency_penalty", "n", "response_format", "parallel_tool_calls",
    "prediction", "prompt_cache_key", *_STRICT_SCHEMA_EXTRAS,  # prompt_cache_key: the recorded Mistral cache exchange
})


def wire_options(options: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """The request's options this target's Chat Completions endpoint accepts, by name."""
    out = {k: v for k, v in options.items() if k in WIRE_OPTIONS}
    pq = provider_quirks(target)
    if not model_quirks(target).sampling:
        out = {k: v for k, v in out.items() if k not in _SAMPLING}
    if pq.strict_options:
        if "seed" in out:
            out.setdefault("random_seed", out["seed"])  # Mistral's name for it
        out = {k: v for k, v in out.items() if k in _STRICT_SCHEMA}
    else:
        out = {k: v for k, v in out.items() if k not in _STRICT_SCHEMA_EXTRAS}
    if not pq.logprobs_options:
        out = {k: v for k, v in out.items() if k not in _LOGPROBS}
    if not pq.reasoning_format_option:
        out = {k: v for k, v in out.items() if k not in _REASONING_FORMAT}
    extra = options.get(OPTIONS_KEY)
    if isinstance(extra, Mapping):
        out.update({k: v for k, v in extra.items() if k not in _CORE_FIELDS})
    return out


def cache_fields(cache: PromptCache | None, target: Target) -> dict[str, Any]:
    """The neutral cache request in this provider's Chat Completions fields, where it takes them
    (``ChatCompletionsQuirks.prompt_cache_fields``: OpenAI and Azure the key and retention "24h",
    Mistral the key); DeepSeek and xAI cache by themselves and get neither."""
    takes = provider_quirks(target).prompt_cache_fields
    if cache is None or not takes:
        return {}
    out: dict[str, Any] = {}
    if cache.key and "prompt_cache_key" in takes:
        out["prompt_cache_key"] = cache.key
    if cache.ttl == "24h" and "prompt_cache_retention" in takes:
        out["prompt_cache_retention"] = "24h"
    return out


# --- decoding --------------------------------------------------------------------------------


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """Neutral usage; ``input`` excludes cached tokens, ``output`` includes reasoning.

    xAI counts reasoning outside ``completion_tokens`` (its total is prompt + completion +
    reasoning); that is detected from the total rather than assumed per provider.
    """
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    p_details = raw.get("prompt_tokens_details") or {}
    c_details = raw.get("completion_tokens_details") or {}
    cached = int(p_details.get("cached_tokens") or raw.get("prompt_cache_hit_tokens") or 0)
    written = int(p_details.get("cache_write_tokens") or 0)
    reasoning = int(c_details.get("reasoning_tokens") or 0)
    total = raw.get("total_tokens")
    output = completion
    if reasoning and total is not None and int(total) == prompt + completion + reasoning:
        output = completion + reasoning
    return Usage(max(prompt - cached - written, 0), output, cached, written, reasoning)


#: per chunk: a tuple, not ``list | tuple`` (a union object built for every chunk of every stream)
_SEQUENCE = (list, tuple)


class ChunkDecoder:
    """Turns chat-completion chunks (or one whole response) into neutral stream events.

    Reasoning is what the server marks as such (``reasoning_content``, ``reasoning``, Mistral
    thinking chunks) and, with ``think`` on, a ``<think>...</think>`` block that opens the answer
    text (DeepSeek-R1 style models on Together and others, see the recorded Together exchange);
    ``inline_think`` says when that is on and why it cannot catch ordinary prose.
    ``finished`` is set by a finish_reason or by the end marker (``end``), the two things that
    prove the model finished rather than the connection dropping.
    """

    def __init__(self, *, think: bool = False) -> None:
        self._calls: dict[Any, int] = {}
        self._open: set[int] = set()
        self._think = ThinkSplitter() if think else None
        self.finished = False

    # Each chunk's events are collected in one list (``out``) rather than through a generator
    # per part: a stream decodes tens of chunks per second per agent, and a fleet thousands.

    def _reasoning(self, delta: Mapping[str, Any], out: list[StreamEvent]) -> None:
        for key in ("reasoning_content", "reasoning"):
            value = delta.get(key)
            if isinstance(value, str) and value:
                out.append(ReasoningDelta(value))
                return

    def _answer(self, text: str, out: list[StreamEvent]) -> None:
        if self._think is None:
            out.append(TextDelta(text))
        else:
            out.extend(self._think.feed(text))

    def _content(self, content: Any, out: list[StreamEvent]) -> None:
        if isinstance(content, str):
            if content:
                self._answer(content, out)
            return
        for chunk in content if isinstance(content, list) else ():
            if not isinstance(chunk, dict):
                continue
            kind = chunk.get("type")
            if kind == "text" and chunk.get("text"):
                self._answer(chunk["text"], out)
            elif kind == "thinking":  # Mistral (Magistral): thinking chunks inside content
                inner = chunk.get("thinking")
                pieces = [inner] if isinstance(inner, str) else [
                    t.get("text", "") for t in inner or () if isinstance(t, dict)
                ]
                text = "".join(pieces)
                if text:
                    out.append(ReasoningDelta(text))

    def _tool_calls(self, calls: Any, seed: str, out: list[StreamEvent]) -> None:
        for tc in calls if isinstance(calls, list) else ():
            fn = tc.get("function") or {}
            # Keyed by index; servers that omit it are keyed by id, and calls with neither are
            # whole calls in one piece, each one new.
            key = tc.get("index")
            if key is None:
                key = tc.get("id") or object()
            idx = self._calls.get(key)
            if idx is None:
                idx = self._calls[key] = len(self._calls)
                self._open.add(idx)
                out.append(ToolCallStart(idx, tc.get("id") or new_tool_id(f"{seed}:{idx}"), fn.get("name") or ""))
            args = fn.get("arguments")
            if isinstance(args, dict | list):
                args = json.dumps(args)
            if isinstance(args, str) and args:
                out.append(ToolCallDelta(idx, args))

    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._think is not None:
            out.extend(self._think.close())
        out.extend(ToolCallEnd(idx) for idx in sorted(self._open))
        self._open.clear()
        return out

    def events(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        choices = chunk.get("choices") or ()
        if not isinstance(choices, _SEQUENCE):
            raise ValueError(f"choices is {type(choices).__name__}, not a list")
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            self._reasoning(delta, out)
            self._content(delta.get("content"), out)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                out.append(TextDelta(refusal))
            calls = delta.get("tool_calls")
            if calls:
                self._tool_calls(calls, str(chunk.get("id") or ""), out)
            raw = choice.get("finish_reason")
            if raw:
                out.extend(self.close())
                self.finished = True
                out.append(Finish(finish_reason(str(raw)), str(raw)))
        usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if isinstance(usage, dict):
            out.append(UsageEvent(usage_from(usage)))
        return out

    def end(self) -> list[StreamEvent]:
        """The stream's end marker (``[DONE]``, or a whole response body) arrived.

        Some servers (OpenRouter relaying Kimi K2) finish with usage and ``[DONE]`` but never a
        non-null finish_reason; the turn is complete all the same, so the reason is inferred:
        tool_calls when calls were made, else stop.
        """
        already = self.finished
        out = self.close()
        if not already:
            self.finished = True
            out.append(Finish("tool_calls" if self._calls else "stop"))
        return out


def in_band_status(err: Any) -> int:
    """An HTTP-like status for an error that arrived inside a 200 body or stream."""
    if isinstance(err, dict):
        for key in ("status", "code"):
            value = err.get(key)
            number = value if isinstance(value, int) else int(str(value)) if str(value).isdigit() else 0
            if 400 <= number < 600:
                return number
        words = f"{err.get('code') or ''} {err.get('type') or ''}".lower()
    else:
        words = str(err).lower()
    if "rate_limit" in words or "quota" in words:
        return 429
    if "auth" in words or "api_key" in words:
        return 401
    if "not_found" in words:
        return 404
    if any(w in words for w in ("invalid_request", "context_length", "tool_use_failed", "content_filter")):
        return 400
    return 500


# --- what every OpenAI API shares: auth, Azure's base, error classification ------------------


def is_azure(target: Target) -> bool:
    return provider_quirks(target).url_form == "azure"


def auth_headers(target: Target) -> dict[str, str]:
    """Azure's ``api-key`` header or a Bearer key; custom endpoints may have no key at all."""
    if is_azure(target):
        key = target.secret("api_key")
        register_secret(key)
        return {"api-key": key}
    optional = target.provider.group == "custom"  # local servers often take no key at all
    key = target.secrets.get("api_key", "") if optional else target.secret("api_key")
    if not key:
        return {}
    register_secret(key)
    return {"Authorization": f"Bearer {key}"}


def azure_base(target: Target) -> str:
    """The Azure resource URL as configured (``https://<resource>.openai.azure.com[/openai[/v1]]``)."""
    return (target.base_url or target.setting("base_url")).rstrip("/")


_BAD_KEY = ("incorrect api key", "invalid api key", "invalid_api_key")


def classify_error(status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError:
    """A typed error from an OpenAI-style error body (Chat Completions and Responses share them):
    content filter, unknown model or deployment (Responses answers 400 ``model_not_found``), a bad
    key (xAI answers 400), exhausted quota, then the generic HTTP rules."""
    message, code, data = error_message(body)
    pid, model = target.provider.id, target.model.id
    raw = body.decode("utf-8", "replace")[:2000]
    err = data.get("error") if isinstance(data, dict) else None
    inner = (err or {}).get("innererror") if isinstance(err, dict) else None
    code_l = (code or "").lower()
    low = message.lower()
    filtered = isinstance(inner, dict) and inner.get("code") == "ResponsibleAIPolicyViolation"
    if code_l == "content_filter" or filtered:
        return BadRequest(
            pid, f"blocked by the content filter: {message}", model=model, status=status, raw=raw,
            hint="The provider's content filter rejected the prompt; rephrase it or change the deployment's "
            "content-filter policy.",
        )
    if code_l in ("model_not_found", "deploymentnotfound") or (status == 404 and "deployment" in low):
        return ModelNotFound(pid, model, status=status, raw=raw)
    if status in (400, 401, 403) and any(k in low or k in code_l for k in _BAD_KEY):
        return AuthenticationError(pid, message, model=model, status=status, raw=raw)  # xAI answers 400
    if code_l == "insufficient_quota" or (err and "insufficient_quota" in str(err)):
        return RateLimitError(
            pid, f"{message} (insufficient_quota)", model=model, status=status, raw=raw,
            hint="The account has no credit left; add billing credit. Retrying will not help.",
        )
    if status == 413 and "rate_limit" in code_l:  # Groq: request larger than the per-minute budget
        return RateLimitError(pid, message, retry_after=parse_retry_after(headers), model=model, status=status,
                              raw=raw)
    return classify_http_error(status, headers, body, target)
