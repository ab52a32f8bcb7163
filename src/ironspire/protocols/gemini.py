"""Google Gemini ``generateContent`` / ``streamGenerateContent`` (AI Studio API key).

Gemini differs from the chat-completions family in ways that shape this module:

* roles are only ``user`` and ``model``; tool results are ``functionResponse`` parts in a user
  turn and are paired with their call by function *name*, so ``ToolResult.tool_name`` is sent;
* function calls may arrive without ids, so ids are synthesized (``common.new_tool_id``);
* ``finishReason`` is ``STOP`` even when the model called functions;
* opaque ``thoughtSignature`` values ride on any part. They are kept where they came from:
  on a thought part's Reasoning, on ``ToolCall.signature`` for a function call, and for a
  signature on a visible text part (or on an empty part of its own) as a text-less Reasoning
  placed right after that text. Encoding folds such a Reasoning back onto the part before it.
  Signatures are replayed only to the same provider *and model* that produced them, because
  Gemini validates them per model. Gemini 3 rejects a replayed function call that has no
  signature, so for history that came from elsewhere the first call of each model turn
  carries Google's documented placeholder ``skip_thought_signature_validator``.

``ChatRequest.options``: generationConfig fields by their neutral names (``GENERATION_OPTIONS``),
``safety_settings``/``labels``, ``cached_content`` (the name of an explicit cache,
``cachedContents/...``; also the provider setting ``cached_content``), and ``options["gemini"]``
as raw request fields. Anything else is another protocol's and is ignored. Prompt caching is
otherwise Gemini's own (implicit caching); its counts arrive as ``cachedContentTokenCount``.

Streams come in two wire forms: ``?alt=sse`` (what we request; CRLF-separated events, handled
by the SSE decoder) and, from proxies or clients that omit ``alt``, one JSON array written
incrementally. Both are decoded, since both occur in real traffic.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ironspire.errors import (
    AuthenticationError,
    BadRequest,
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
from ironspire.protocols.base import ChatRequest, HttpProtocol, ProbeOutcome, Target, WireRequest, error_text
from ironspire.protocols.common import (
    conversation,
    foreign_reasoning,
    image_inline,
    is_own,
    new_tool_id,
    system_text,
    tool_results_text,
)
from ironspire.protocols.framing import sse_json

if TYPE_CHECKING:
    from ironspire.http import Response

#: the user turn put before a history that opens with the model
LEADING_USER_TEXT = "(continuing an earlier conversation)"
#: Google's documented placeholder for function calls replayed without their real signature.
SKIP_SIGNATURE = "skip_thought_signature_validator"

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "LANGUAGE": "other",
    "OTHER": "other",
    "IMAGE_OTHER": "other",
    "NO_IMAGE": "other",
    "FINISH_REASON_UNSPECIFIED": "other",
}
_THINKING_BUDGET = {"none": 0, "low": 1024, "medium": 8192, "high": 24576}

#: ``ChatRequest.options`` keys that are Gemini generationConfig fields, by their neutral
#: (OpenAI-style, as the other adapters read them) name. Only these and the top-level ones below
#: reach the wire, so options meant for another protocol cannot break a request after a switch.
GENERATION_OPTIONS = {
    "top_p": "topP", "top_k": "topK", "seed": "seed", "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty", "candidate_count": "candidateCount",
    "response_mime_type": "responseMimeType", "response_schema": "responseSchema",
    "response_json_schema": "responseJsonSchema", "response_logprobs": "responseLogprobs",
}
#: options that are top-level request fields; ``cached_content`` is handled on its own
TOP_LEVEL_OPTIONS = {"safety_settings": "safetySettings", "labels": "labels"}
#: ``options[OPTIONS_KEY]`` is a dict of request fields sent as given (the caller vouches for them)
OPTIONS_KEY = "gemini"


def _generation_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {GENERATION_OPTIONS[k]: v for k, v in options.items() if k in GENERATION_OPTIONS}


def _top_level_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {TOP_LEVEL_OPTIONS[k]: v for k, v in options.items() if k in TOP_LEVEL_OPTIONS}
_GEMINI_MAJOR = re.compile(r"(?:^|/)gemini-(\d+)")
_TOKEN_COUNTS = re.compile(r"input token count \((\d+)\).*?allowed \((\d+)\)", re.IGNORECASE | re.DOTALL)


def needs_signatures(model_id: str) -> bool:
    """Whether the model rejects replayed function calls without a thought signature (Gemini 3+)."""
    m = _GEMINI_MAJOR.search(model_id)
    return m is not None and int(m.group(1)) >= 3


def _native(part: Reasoning | ToolCall, target: Target) -> bool:
    """A signature is only valid for the provider and model that issued it."""
    return is_own(part, target) and part.model == target.model.id


class Gemini(HttpProtocol):
    name = "gemini"
    settings = ("cached_content",)
    stream_framing = "sse"

    def probe_request(self, target: Target) -> WireRequest:
        return WireRequest("GET", target.url("/models"), {"x-goog-api-key": target.secret("api_key")},
                           params={"pageSize": "1"})

    def probe_meaning(
        self, status: int, headers: Mapping[str, str], body: bytes, target: Target
    ) -> ProbeOutcome | None:
        if status == 400 and b"API_KEY_INVALID" in body:  # Gemini says a bad key with a 400
            return ProbeOutcome("invalid_key", error_text(body))
        return None

    # --- encoding -----------------------------------------------------------------------------

    def encode(self, request: ChatRequest, target: Target, *, stream: bool) -> WireRequest:
        key = target.secret("api_key")
        register_secret(key)
        model = target.model.id
        path = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        method = "streamGenerateContent" if stream else "generateContent"
        body: dict[str, Any] = {"contents": self._contents(request, target)}
        system = system_text(request)
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": t.name, "description": t.description, "parametersJsonSchema": dict(t.parameters)}
                for t in request.tools
            ]}]
            tool_config = self._tool_config(request)
            if tool_config:
                body["toolConfig"] = tool_config
        generation = self._generation_config(request, target)
        generation.update(_generation_options(request.options))
        if generation:
            body["generationConfig"] = generation
        body.update(_top_level_options(request.options))
        cached = request.options.get("cached_content") or target.settings.get("cached_content")
        if cached:
            # An explicit cache already holds the system instruction and tools it was made with;
            # Gemini refuses a request that sends them again beside it.
            body["cachedContent"] = str(cached)
            for key in ("systemInstruction", "tools", "toolConfig"):
                body.pop(key, None)
        extra = request.options.get(OPTIONS_KEY)
        if isinstance(extra, Mapping):
            body.update({k: v for k, v in extra.items() if k != "contents"})
        return WireRequest(
            "POST",
            target.url(f"/{path}:{method}"),
            {"x-goog-api-key": key, "Content-Type": "application/json"},
            json=body,
            params={"alt": "sse"} if stream else None,
        )

    @staticmethod
    def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
        if request.force_tool:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [request.force_tool]}}
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(request.tool_choice or "")
        return {"functionCallingConfig": {"mode": mode}} if mode else None

    @staticmethod
    def _generation_config(request: ChatRequest, target: Target) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.stop:
            config["stopSequences"] = list(request.stop)
        thinking: dict[str, Any] = {}
        if request.reasoning is not None and target.model.reasoning:
            if needs_signatures(target.model.id):
                thinking["thinkingLevel"] = "minimal" if request.reasoning == "none" else request.reasoning
            else:
                thinking["thinkingBudget"] = _THINKING_BUDGET[request.reasoning]
        if target.model.reasoning and request.reasoning != "none":
            thinking["includeThoughts"] = True
        if thinking:
            config["thinkingConfig"] = thinking
        return config

    def _contents(self, request: ChatRequest, target: Target) -> list[dict[str, Any]]:
        names = {p.id: p.name for m in request.messages for p in m.parts if isinstance(p, ToolCall)}
        contents: list[dict[str, Any]] = []
        previous_role: str | None = None
        for message in conversation(request):
            if message.role == "assistant":
                role, parts = "model", self._model_parts(message, request, target)
            else:
                role, parts = "user", self._user_parts(message, names, target)
            if not parts:
                continue
            # Parallel calls must be answered in one turn, so consecutive tool messages merge.
            if message.role == "tool" and previous_role == "tool" and contents:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
            previous_role = message.role
        if contents and contents[0]["role"] == "model":
            # A history that opens with the model (after a switch or an import) would put a
            # function call first, which Gemini refuses: a call must follow a user turn.
            contents.insert(0, {"role": "user", "parts": [{"text": LEADING_USER_TEXT}]})
        return contents

    @staticmethod
    def _user_parts(message: Message, names: Mapping[str, str], target: Target) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for p in message.parts:
            if isinstance(p, Text) and p.text:
                parts.append({"text": p.text})
            elif isinstance(p, Image | Document):
                parts.append(_image_part(p))
            elif isinstance(p, ToolResult):
                parts.append({"functionResponse": _function_response(p, names, target)})
        return parts

    @staticmethod
    def _model_parts(message: Message, request: ChatRequest, target: Target) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        first_call: dict[str, Any] | None = None
        for p in message.parts:
            if isinstance(p, Text):
                if p.text:
                    parts.append({"text": p.text})
            elif isinstance(p, Image):
                parts.append(_image_part(p))
            elif isinstance(p, ToolCall):
                call: dict[str, Any] = {"functionCall": {"name": p.name, "args": dict(p.arguments), "id": p.id}}
                if p.signature and _native(p, target):
                    call["thoughtSignature"] = p.signature
                if first_call is None:
                    first_call = call
                parts.append(call)
            elif isinstance(p, Reasoning):
                if not _native(p, target):
                    parts.extend({"text": t.text} for t in foreign_reasoning(p, request) if isinstance(t, Text))
                elif p.text:
                    thought: dict[str, Any] = {"text": p.text, "thought": True}
                    if p.signature:
                        thought["thoughtSignature"] = p.signature
                    parts.append(thought)
                elif p.signature:
                    # A signature that rode on the visible part before it: put it back there.
                    if parts and "thoughtSignature" not in parts[-1]:
                        parts[-1]["thoughtSignature"] = p.signature
                    else:
                        parts.append({"text": "", "thoughtSignature": p.signature})
        if first_call is not None and "thoughtSignature" not in first_call and needs_signatures(target.model.id):
            first_call["thoughtSignature"] = SKIP_SIGNATURE
        return parts

    # --- decoding -----------------------------------------------------------------------------

    def decode(self, body: bytes, target: Target) -> Message:
        data = self.json_body(body, target)
        chunks = data if isinstance(data, list) else [data]
        state = _StreamState(target)
        acc = Accumulator(target.provider.id, target.model.id)
        for chunk in chunks:
            acc.feed(state.events(chunk, self))
        return acc.feed(state.close(ended=True)).message()

    async def decode_stream(self, response: Response, target: Target) -> AsyncIterator[StreamEvent]:
        state = _StreamState(target)
        if "event-stream" in response.headers.get("content-type", ""):
            async for _, chunk in sse_json(response, target.provider.id):
                for event in state.events(chunk, self):
                    yield event
            closing = state.close()
        else:
            async for chunk in _json_array(response, target):  # raises unless the array was closed
                for event in state.events(chunk, self):
                    yield event
            closing = state.close(ended=True)
        for event in closing:
            yield event

    # --- errors -------------------------------------------------------------------------------

    def error(self, status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError:
        from ironspire.transport import classify_http_error, is_context_overflow, parse_duration, parse_retry_after

        err = _error_object(body)
        if err is None:
            return classify_http_error(status, headers, body, target)
        pid, model = target.provider.id, target.model.id
        message = str(err.get("message") or "no error text")
        code = str(err.get("status") or "")
        raw = body.decode("utf-8", "replace")[:2000]
        details = [d for d in err.get("details") or () if isinstance(d, dict)]
        reasons = {str(d.get("reason")) for d in details if d.get("reason")}
        if "API_KEY_INVALID" in reasons or status in (401, 403) or code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return AuthenticationError(pid, message, model=model, status=status, raw=raw)
        if status == 429 or code == "RESOURCE_EXHAUSTED":
            delay = next(
                (parse_duration(str(d["retryDelay"])) for d in details if "retryDelay" in d), None
            )
            if delay is None:
                delay = parse_retry_after(headers)
            return RateLimitError(pid, message, retry_after=delay, model=model, status=status, raw=raw)
        if status == 404 or code == "NOT_FOUND":
            return ModelNotFound(pid, model, status=status, raw=raw)
        if is_context_overflow(message, code):
            m = _TOKEN_COUNTS.search(message)
            used, limit = (int(m.group(1)), int(m.group(2))) if m else (None, target.model.context_window)
            return ContextWindowExceeded(pid, message, used=used, limit=limit, model=model, status=status, raw=raw)
        if status >= 500 or code in ("INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
            return ProviderUnavailable(pid, message, model=model, status=status, raw=raw)
        return BadRequest(pid, message, model=model, status=status, raw=raw)


def _image_part(image: Image | Document) -> dict[str, Any]:
    """Images and documents alike: a Files API / Cloud Storage URI by reference, else inline bytes."""
    if image.url is not None and image.url.startswith(("gs://", "https://generativelanguage.googleapis.com/")):
        return {"fileData": {"mimeType": image.media_type, "fileUri": image.url}}
    media, data = image_inline(image)
    return {"inlineData": {"mimeType": media, "data": data}}


def _function_response(result: ToolResult, names: Mapping[str, str], target: Target) -> dict[str, Any]:
    """Gemini wants an object, so a tool's text goes under "result" (or "error" when it failed)."""
    name = result.tool_name or names.get(result.call_id, "")
    multimodal = needs_signatures(target.model.id)  # Gemini 3 takes images inside function responses
    text = result.text() if multimodal else tool_results_text(result)
    out: dict[str, Any] = {
        "id": result.call_id,
        "name": name,
        "response": {"error" if result.is_error else "result": text},
    }
    images = [p for p in result.content if isinstance(p, Image)]
    if multimodal and images:
        out["parts"] = [_image_part(i) for i in images]
    return out


def _error_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else None


def usage_from(meta: Mapping[str, Any]) -> Usage:
    """promptTokenCount includes cached tokens; candidatesTokenCount excludes thoughts."""
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    cached = int(meta.get("cachedContentTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(
        input=max(prompt - cached, 0),
        output=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cache_read=cached,
        reasoning=thoughts,
    )


class _StreamState:
    """What must be remembered across chunks: call numbering, the last usage, the finish."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.calls = 0
        self.usage: Usage | None = None
        self.finish: str | None = None
        self.blocked: str | None = None

    def events(self, chunk: Any, protocol: Gemini) -> Iterator[StreamEvent]:
        if not isinstance(chunk, dict):
            raise ProviderUnavailable(self.target.provider.id, f"unexpected stream item: {str(chunk)[:200]!r}")
        if "error" in chunk:
            err = chunk["error"]
            code = err.get("code") if isinstance(err, dict) else None
            status = code if isinstance(code, int) else 500
            raise protocol.error(status, {}, json.dumps(chunk).encode(), self.target)
        if isinstance(chunk.get("usageMetadata"), dict):
            self.usage = usage_from(chunk["usageMetadata"])
        feedback = chunk.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            self.blocked = str(feedback["blockReason"])
        candidates = chunk.get("candidates") or []
        if not candidates:
            return
        candidate = candidates[0]
        seed = chunk.get("responseId") or uuid.uuid4().hex
        for part in (candidate.get("content") or {}).get("parts") or ():
            yield from self._part(part, seed)
        if candidate.get("finishReason"):
            self.finish = str(candidate["finishReason"])

    def _part(self, part: Mapping[str, Any], seed: str) -> Iterator[StreamEvent]:
        signature = part.get("thoughtSignature")
        if "functionCall" in part:
            call = part["functionCall"] or {}
            index = self.calls
            self.calls += 1
            call_id = call.get("id") or new_tool_id(f"{seed}:{index}:{call.get('name', '')}")
            yield ToolCallStart(index, call_id, str(call.get("name", "")), signature)
            yield ToolCallDelta(index, json.dumps(call.get("args") or {}))
            yield ToolCallEnd(index)
        elif part.get("thought"):
            yield ReasoningDelta(str(part.get("text") or ""), signature=signature)
        else:
            text = part.get("text")
            if text:
                yield TextDelta(str(text))
            if signature:
                yield ReasoningDelta(signature=signature)

    def close(self, *, ended: bool = False) -> Iterator[StreamEvent]:
        """The final usage and finish. With ``alt=sse`` the last chunk's finishReason is the only
        proof the answer is complete; ``ended`` says the response itself ended (a whole body, or
        the closing ``]`` of the JSON-array stream), and then a missing reason is inferred."""
        if self.finish is None and self.blocked is None and not ended:
            raise ProviderUnavailable(self.target.provider.id, "stream ended early", model=self.target.model.id)
        if self.usage is not None:
            yield UsageEvent(self.usage)
        if self.blocked is not None and self.finish is None:
            yield Finish("content_filter", self.blocked)
            return
        raw = self.finish or "STOP"
        reason: FinishReason = _FINISH.get(raw, "other")
        if reason == "stop" and self.calls:
            reason = "tool_calls"
        yield Finish(reason, raw)


async def _json_array(response: Response, target: Target) -> AsyncIterator[Any]:
    """Items of a JSON array written incrementally (streamGenerateContent without alt=sse)."""
    decoder = json.JSONDecoder()
    buf = ""
    opened = closed = False
    async for text in response.aiter_text():
        buf += text
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            if not opened:
                if buf[0] != "[":
                    raise ProviderUnavailable(target.provider.id, f"malformed stream: {buf[:200]!r}")
                opened, buf = True, buf[1:]
            elif buf[0] == ",":
                buf = buf[1:]
            elif buf[0] == "]":
                closed, buf = True, buf[1:]
            else:
                try:
                    item, end = decoder.raw_decode(buf)
                except json.JSONDecodeError:
                    break  # an item cut between network chunks: wait for the rest
                buf = buf[end:]
                yield item
    if buf.strip() or not closed:
        raise ProviderUnavailable(target.provider.id, "stream ended early", model=target.model.id)
