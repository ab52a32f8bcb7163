"""The OpenAI Responses API (``POST {base}/responses``): OpenAI's reasoning models with tools,
Azure's ``/openai/v1/responses``, xAI, and the "Open Responses" servers that copy it.

It differs from Chat Completions in what matters most for agents: a reasoning model can use
tools with its reasoning on, and its reasoning comes back as ``reasoning`` items that can be
returned on the next request. Requests are always stateless (``store: false``); the reasoning
is carried by us, as the encrypted payload the provider asked for
(``include: ["reasoning.encrypted_content"]``), on a Reasoning part scoped to the provider and
model that made it. The payload is the reasoning item exactly as it must be sent back, kept in
``Reasoning.signature``; ``Reasoning.text`` holds its readable summary (or, where a server
sends it, its raw reasoning text), which is what another provider may see under the
foreign-reasoning policy.

What is shared with Chat Completions (auth, Azure's base URL, error classification, history
repair, tool-id rules) comes from ``_openai_wire`` and ``common``. A provider speaks both APIs
(the ``api`` setting or ``ModelSpec.api`` picks one per request), so its typed quirks are the
Chat Completions ones, and only three of them mean anything here: ``ChatCompletionsQuirks.url_form``
(Azure: ``/openai/v1/responses``, ``api-key`` header), ``ChatCompletionsQuirks.prompt_cache_fields``
(where ``ChatRequest.cache`` becomes ``prompt_cache_key``/``prompt_cache_retention``) and
``ChatCompletionsModelQuirks.sampling`` (reasoning models reject temperature and ``top_p``).
Documents go as ``input_file`` items (inline ``file_data`` or a ``file_url``).

``ChatRequest.options``: only Responses fields are sent (``RESPONSES_OPTIONS``); Chat
Completions' ``response_format`` and ``verbosity`` are moved to ``text.format`` /
``text.verbosity`` so one options dict travels between the two; ``options["openai_responses"]``
is a dict sent as given, except for the fields that make the request what it is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ironspire.errors import BadRequest, CapabilityError, ModelNotFound, ProviderError, ProviderUnavailable, Remedy
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
from ironspire.protocols._openai_wire import (
    auth_headers,
    azure_base,
    cache_fields,
    call_arguments,
    classify_error,
    in_band_status,
    is_azure,
    model_quirks,
)
from ironspire.protocols.base import ChatRequest, HttpProtocol, ProbeOutcome, Target, WireRequest
from ironspire.protocols.common import (
    conversation,
    document_filename,
    foreign_reasoning,
    image_data_url,
    new_tool_id,
    tool_id,
)
from ironspire.protocols.framing import sse_json

if TYPE_CHECKING:
    from ironspire.catalog.discovery import DiscoveryResult
    from ironspire.http import Response

#: ``ChatRequest.options`` keys that are Responses fields; nothing else reaches the wire.
RESPONSES_OPTIONS = frozenset({
    "top_p", "user", "metadata", "service_tier", "parallel_tool_calls", "prompt_cache_key",
    "prompt_cache_retention", "safety_identifier", "truncation", "max_tool_calls", "top_logprobs", "text",
})
OPTIONS_KEY = "openai_responses"
#: what makes the request this request (and keeps it stateless): never taken from options
_CORE_FIELDS = frozenset({"model", "input", "instructions", "stream", "store", "include", "previous_response_id"})
#: reasoning models reject sampling controls (``no_sampling``)
_SAMPLING = frozenset({"top_p", "top_logprobs"})

_INCOMPLETE: dict[str, FinishReason] = {"max_output_tokens": "length", "content_filter": "content_filter"}


class OpenAIResponses(HttpProtocol):
    name = "openai_responses"
    stream_framing = "sse"
    #: the provider setting that chose this API (``api responses``); read by routing
    settings = ("api",)

    # --- health and listing --------------------------------------------------------------

    def probe_request(self, target: Target) -> WireRequest:
        """``GET /models`` beside the ``/responses`` requests go to (Azure: under ``/openai/v1``)."""
        root = endpoint(target)[0].removesuffix("/responses")
        key = target.secrets.get("api_key")
        headers = ({"api-key": key} if is_azure(target) else {"Authorization": f"Bearer {key}"}) if key else {}
        return WireRequest("GET", root + "/models", headers)

    def probe_meaning(
        self, status: int, headers: Mapping[str, str], body: bytes, target: Target
    ) -> ProbeOutcome | None:
        if status == 404:
            return ProbeOutcome("reachable", "the server answers but lists no models (HTTP 404); "
                                "the key was not verified")
        return None

    async def list_models(
        self, target: Target, *, read_timeout: float, connect_timeout: float
    ) -> DiscoveryResult:
        """The same ``GET /models`` Chat Completions endpoints answer."""
        if not target.provider.lists_models:
            return await super().list_models(target, read_timeout=read_timeout, connect_timeout=connect_timeout)
        from ironspire.protocols._openai_listing import list_models

        return await list_models(self.transport, target, read_timeout=read_timeout, connect_timeout=connect_timeout)

    # --- request -------------------------------------------------------------------------

    def encode(self, request: ChatRequest, target: Target, *, stream: bool) -> WireRequest:
        url, body_model = endpoint(target)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        headers.update(auth_headers(target))
        model = target.model
        sampling = model_quirks(target).sampling
        if request.stop:
            refused = CapabilityError(target.provider.id, model.id, "stop sequences",
                                      "the Responses API has no stop parameter")
            refused.remedy = _chat_remedy(target, "Remove the stop sequences, or send this provider's requests to "
                                          "Chat Completions")
            raise refused
        body: dict[str, Any] = {"model": body_model}
        if request.system:
            body["instructions"] = request.system
        body["input"] = encode_input(request, target)
        if stream:
            body["stream"] = True
        body["store"] = False
        if _reasons(request, target):
            body["include"] = ["reasoning.encrypted_content"]
        if request.max_tokens is not None:
            body["max_output_tokens"] = request.max_tokens
        if request.temperature is not None and sampling:
            body["temperature"] = request.temperature
        if request.tools:
            # strict would make the server rewrite (or refuse) schemas with optional properties
            body["tools"] = [
                {"type": "function", "name": t.name, "description": t.description,
                 "parameters": dict(t.parameters), "strict": False}
                for t in request.tools
            ]
            if request.force_tool:
                body["tool_choice"] = {"type": "function", "name": request.force_tool}
            elif request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
        reasoning = _reasoning(request, target)
        if reasoning:
            body["reasoning"] = reasoning
        body.update(cache_fields(request.cache, target))  # explicit options below win
        body.update(wire_options(request.options, target))
        return WireRequest("POST", url, headers, json=body)

    # --- response ------------------------------------------------------------------------

    def decode(self, body: bytes, target: Target) -> Message:
        data = self.json_body(body, target)
        if isinstance(data, dict) and data.get("error") and data.get("status") in (None, "failed"):
            raise self._in_band(data["error"], target)
        if not isinstance(data, dict) or not isinstance(data.get("output"), list):
            raise ProviderUnavailable(target.provider.id, "response is not a Responses object (no output list)",
                                      model=target.model.id)
        decoder = ResponseDecoder(self, target)
        acc = Accumulator(target.provider.id, target.model.id)
        acc.feed(decoder.whole(data))
        return acc.message()

    async def decode_stream(self, response: Response, target: Target) -> AsyncIterator[StreamEvent]:
        decoder = ResponseDecoder(self, target)
        async for name, payload in sse_json(response, target.provider.id):
            if isinstance(payload, dict):
                for event in decoder.event(payload, name):
                    yield event
        if not decoder.finished:
            raise ProviderUnavailable(
                target.provider.id, "the stream ended before response.completed", model=target.model.id,
                hint="The connection was cut mid-answer; nothing was recorded. Try again.",
            )

    # --- errors --------------------------------------------------------------------------

    def error(self, status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError:
        err = classify_error(status, headers, body, target)
        if status in (404, 405) and not isinstance(err, ModelNotFound):
            # OpenAI answers an unknown model with 400; a bare 404 here is a server without the endpoint
            return BadRequest(
                target.provider.id, f"{endpoint(target)[0]} is not served ({err.args[0] if err.args else status})",
                model=target.model.id, status=status, raw=body.decode("utf-8", "replace")[:2000],
                remedy=_chat_remedy(target, "This server does not speak the Responses API; use Chat Completions"),
            )
        return err

    def _in_band(self, err: Any, target: Target) -> ProviderError:
        """An error that arrived in a 200 body or stream (``error`` event, ``response.failed``)."""
        err = err if isinstance(err, dict) else {"message": str(err)}
        return self.error(_error_status(err), {}, json.dumps({"error": err}).encode(), target)


def _chat_remedy(target: Target, why: str) -> Remedy:
    pid = target.provider.id
    return Remedy("set_setting", {"provider": pid, "name": "api", "value": "chat"},
                  f"{why}: `ironspire providers set {pid} api chat`.")


def endpoint(target: Target) -> tuple[str, str]:
    """(URL, body ``model``); Azure's v1 API names the deployment in the body."""
    if not is_azure(target):
        return target.url("/responses"), target.model.id
    base = azure_base(target)
    if not base.endswith("/openai/v1"):
        base = (base if base.endswith("/openai") else base + "/openai") + "/v1"
    return base + "/responses", target.settings.get("deployment") or target.model.id


def _reasons(request: ChatRequest, target: Target) -> bool:
    """Whether this turn runs a reasoning model: the catalogue says so, or the request asks for an
    effort (a discovered Azure deployment or custom model is not known to reason until then)."""
    return target.model.reasoning or request.reasoning not in (None, "none")


def _reasoning(request: ChatRequest, target: Target) -> dict[str, Any]:
    if not _reasons(request, target):
        return {}
    effort = request.reasoning
    out: dict[str, Any] = {}
    if effort is not None:
        out["effort"] = effort
    if effort != "none":
        out["summary"] = str(request.options.get("reasoning_summary") or "auto")
    return out


def wire_options(options: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """The request's options that are Responses fields, with Chat Completions' output-format
    names moved to where Responses wants them."""
    out = {k: v for k, v in options.items() if k in RESPONSES_OPTIONS}
    text = dict(out.pop("text", None) or {})
    fmt = options.get("response_format")
    if isinstance(fmt, Mapping) and "format" not in text:
        if fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), Mapping):
            text["format"] = {"type": "json_schema", **fmt["json_schema"]}
        else:
            text["format"] = dict(fmt)
    if options.get("verbosity") and "verbosity" not in text:
        text["verbosity"] = options["verbosity"]
    if text:
        out["text"] = text
    if not model_quirks(target).sampling:
        out = {k: v for k, v in out.items() if k not in _SAMPLING}
    extra = options.get(OPTIONS_KEY)
    if isinstance(extra, Mapping):
        out.update({k: v for k, v in extra.items() if k not in _CORE_FIELDS})
    return out


# --- input items ------------------------------------------------------------------------------


def is_origin(part: Reasoning, target: Target) -> bool:
    """Encrypted reasoning can be read only by the provider and model that wrote it."""
    return part.provider == target.provider.id and part.model == target.model.id and bool(part.signature)


def reasoning_item(part: Reasoning) -> dict[str, Any] | None:
    """The stored reasoning item, if it can be sent back statelessly (it carries its encrypted
    content or its raw text; an id alone would point at an item the server did not keep)."""
    try:
        item = json.loads(part.signature or "")
    except json.JSONDecodeError:
        return None
    if not isinstance(item, dict) or item.get("type") != "reasoning":
        return None
    if not item.get("encrypted_content") and not item.get("content"):
        return None
    return item


def _image(image: Image) -> dict[str, Any]:
    return {"type": "input_image", "image_url": image_data_url(image)}


def _file(document: Document, index: int) -> dict[str, Any]:
    """An ``input_file``: inline as ``file_data`` (a data URL) with its name, or by ``file_url``;
    the Responses API reads PDFs, text, office files and spreadsheets this way."""
    if document.url is not None and not document.url.startswith("data:"):
        return {"type": "input_file", "file_url": document.url}
    return {"type": "input_file", "filename": document_filename(document, index),
            "file_data": image_data_url(document)}


def _user_content(parts: list[Text | Image | Document]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for i, p in enumerate(parts):
        if isinstance(p, Text):
            out.append({"type": "input_text", "text": p.text})
        elif isinstance(p, Document):
            out.append(_file(p, sum(1 for q in parts[:i] if isinstance(q, Document)) + 1))
        else:
            out.append(_image(p))
    return out


def _result(result: ToolResult) -> dict[str, Any]:
    pictures = [p for p in result.content if isinstance(p, Image)]
    output: str | list[dict[str, Any]] = result.text()
    if pictures:
        output = [{"type": "input_text", "text": p.text} if isinstance(p, Text) else _image(p)
                  for p in result.content]
    return {"type": "function_call_output", "call_id": tool_id(result.call_id, "responses"), "output": output}


def _assistant(message: Message, request: ChatRequest, target: Target) -> Iterator[dict[str, Any]]:
    """The turn's parts as input items in the order they were produced, so a reasoning item
    stays right before the function call it led to."""
    texts: list[str] = []

    def flush() -> Iterator[dict[str, Any]]:
        if texts:
            yield {"role": "assistant", "content": "".join(texts)}
            texts.clear()

    for part in message.parts:
        if isinstance(part, Text):
            texts.append(part.text)
        elif isinstance(part, Reasoning):
            item = reasoning_item(part) if is_origin(part, target) else None
            if item is not None:
                yield from flush()
                yield item
            elif not is_origin(part, target):
                texts.extend(p.text for p in foreign_reasoning(part, request) if isinstance(p, Text))
        elif isinstance(part, ToolCall):
            yield from flush()
            yield {"type": "function_call", "call_id": tool_id(part.id, "responses"), "name": part.name,
                   "arguments": call_arguments(part)}
    yield from flush()


def encode_input(request: ChatRequest, target: Target) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in conversation(request, keep_system=True):  # system messages stay where they were
        if message.role == "system":
            out.append({"role": "system", "content": message.text})
            continue
        out.extend(_result(p) for p in message.parts if isinstance(p, ToolResult))
        if message.role == "assistant":
            out.extend(_assistant(message, request, target))
            continue
        content = [p for p in message.parts if isinstance(p, Text | Image | Document)]
        if content:
            out.append({"role": "user", "content": _user_content(content)})
    return out


# --- decoding ---------------------------------------------------------------------------------


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """Neutral usage: ``input`` without cached tokens, ``output`` with reasoning. A server that
    counts reasoning outside ``output_tokens`` is recognised by its total, as for Chat Completions."""
    prompt = int(raw.get("input_tokens") or 0)
    output = int(raw.get("output_tokens") or 0)
    cached = int((raw.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((raw.get("output_tokens_details") or {}).get("reasoning_tokens") or 0)
    total = raw.get("total_tokens")
    if reasoning and total is not None and int(total) == prompt + output + reasoning:
        output += reasoning
    return Usage(max(prompt - cached, 0), output, cached, 0, reasoning)


def _error_status(err: Mapping[str, Any]) -> int:
    code = str(err.get("code") or err.get("type") or "").lower()
    if "context_length" in code or code in ("invalid_prompt", "invalid_request_error", "invalid_image"):
        return 400
    return in_band_status(err)


def _texts(parts: Any, kind: str) -> list[str]:
    return [str(p.get("text") or "") for p in parts or () if isinstance(p, dict) and p.get("type") == kind]


class _OpenReasoning:
    """A reasoning item being streamed: what its deltas carried so far."""

    __slots__ = ("id", "raw", "summary")

    def __init__(self, item_id: Any) -> None:
        self.id = item_id
        self.summary: dict[int, str] = {}
        self.raw: dict[int, str] = {}


def _kept(item_id: Any, summary: list[str], raw: list[str] | None, encrypted: Any) -> str:
    """The reasoning item as it must be sent back, which is the Reasoning part's opaque payload."""
    kept: dict[str, Any] = {"type": "reasoning", "id": item_id,
                            "summary": [{"type": "summary_text", "text": t} for t in summary]}
    if raw:
        kept["content"] = [{"type": "reasoning_text", "text": t} for t in raw]
    if encrypted:
        kept["encrypted_content"] = encrypted
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":"))


class ResponseDecoder:
    """Turns Responses stream events, or one whole response, into neutral stream events.

    A whole response is read as the stream that would have carried it (each output item
    added, then done, then the terminal event), so both paths emit the same events. Each
    ``*.done`` event fills in what its deltas did not carry, so a server that streams less
    (or nothing but the finished items) gives the same turn.

    Items normally finish in order, but not always: OpenRouter sends a reasoning item's
    ``output_item.done`` after the message that followed it. A reasoning part must close
    before the next part starts (the Accumulator keeps parts in the order they began), so
    when another item begins while reasoning is still open, that reasoning is closed with what
    its deltas carried, and its late ``done`` adds nothing.
    """

    def __init__(self, protocol: OpenAIResponses, target: Target) -> None:
        self.protocol, self.target = protocol, target
        self.finished = False
        self._calls: set[int] = set()  # output indexes of function calls started
        self._open: set[int] = set()
        self._streamed: set[int] = set()  # output indexes whose content arrived before their item's done
        self._text_parts: set[tuple[int, int]] = set()  # (output index, content index) of text seen
        self._reasoning: dict[int, _OpenReasoning] = {}
        self._closed: set[int] = set()  # reasoning items already given their payload
        self._any_call = False
        self._ids: dict[str, int] = {}  # item id -> output index
        self._last = 0

    def whole(self, data: Mapping[str, Any]) -> Iterator[StreamEvent]:
        for index, item in enumerate(data.get("output") or ()):
            yield from self.event({"type": "response.output_item.added", "output_index": index, "item": item})
            yield from self.event({"type": "response.output_item.done", "output_index": index, "item": item})
        status = data.get("status")
        kind = {"incomplete": "response.incomplete", "failed": "response.failed"}.get(str(status),
                                                                                     "response.completed")
        yield from self.event({"type": kind, "response": data})

    def event(self, payload: Mapping[str, Any], name: str = "") -> Iterator[StreamEvent]:
        kind = str(payload.get("type") or name)
        index = self._index(kind, payload)
        if kind == "error":
            raise self.protocol._in_band(payload.get("error") or payload, self.target)
        part = (index, int(payload.get("content_index") or 0))
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            yield from self._close_reasoning(None)
            self._streamed.add(index)
            self._text_parts.add(part)
            if payload.get("delta"):
                yield TextDelta(str(payload["delta"]))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            state = self._reasoning.setdefault(index, _OpenReasoning(payload.get("item_id")))
            if index in self._closed or not payload.get("delta"):
                return
            self._streamed.add(index)
            delta = str(payload["delta"])
            key = int(payload.get("summary_index") or payload.get("content_index") or 0)
            parts = state.summary if kind == "response.reasoning_summary_text.delta" else state.raw
            if not parts.get(key) and (state.summary or state.raw):
                yield ReasoningDelta("\n\n")  # a new summary part, as a paragraph of the same reasoning
            parts[key] = parts.get(key, "") + delta
            yield ReasoningDelta(delta)
        elif kind == "response.function_call_arguments.delta":
            yield from self._close_reasoning(None)
            self._streamed.add(index)
            yield from self._start(index, {})
            if payload.get("delta"):
                yield ToolCallDelta(index, str(payload["delta"]))
        elif kind in ("response.output_text.done", "response.refusal.done"):
            text = payload.get("text") if kind == "response.output_text.done" else payload.get("refusal")
            if part not in self._text_parts and text:
                yield from self._close_reasoning(None)
                self._streamed.add(index)  # the item's own done then adds nothing
                self._text_parts.add(part)
                yield TextDelta(str(text))
        elif kind == "response.function_call_arguments.done":
            if index not in self._streamed and payload.get("arguments"):
                yield from self._close_reasoning(None)
                yield from self._start(index, {})
                self._streamed.add(index)
                yield ToolCallDelta(index, str(payload["arguments"]))
        elif kind == "response.output_item.added":
            item = payload.get("item") or {}
            yield from self._close_reasoning(None)
            if item.get("type") == "reasoning":
                self._reasoning.setdefault(index, _OpenReasoning(item.get("id")))
            elif item.get("type") == "function_call":
                yield from self._start(index, item)
        elif kind == "response.output_item.done":
            yield from self._done(index, payload.get("item") or {})
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = dict(payload.get("response") or {})
            if kind == "response.failed" and not response.get("error"):
                response["error"] = payload.get("error")  # some servers put it on the event itself
            yield from self._close_reasoning(None)
            yield from self._end(kind, response)

    def _index(self, kind: str, payload: Mapping[str, Any]) -> int:
        """The event's output index; where a server leaves it out, the item's id says which item
        (a new item is the next index, anything else belongs to the item last seen)."""
        item_id = payload.get("item_id") or (payload.get("item") or {}).get("id")
        raw = payload.get("output_index")
        if raw is not None:
            index = int(raw)
        elif item_id is not None and str(item_id) in self._ids:
            index = self._ids[str(item_id)]
        elif kind == "response.output_item.added":
            index = max(self._ids.values(), default=-1) + 1
        else:
            index = self._last
        if item_id is not None:
            self._ids.setdefault(str(item_id), index)
        if raw is not None or item_id is not None:
            self._last = index
        return index

    def _close_reasoning(self, keep: int | None) -> Iterator[StreamEvent]:
        """Closes the reasoning items still open (but ``keep``, the one finishing now): anything
        else that starts or arrives means their part of the answer is over."""
        for index in sorted(self._reasoning):
            if index != keep and index not in self._closed:
                self._closed.add(index)
                state = self._reasoning[index]
                summary = [state.summary[k] for k in sorted(state.summary)]
                raw = [state.raw[k] for k in sorted(state.raw)]
                yield ReasoningDelta("", signature=_kept(state.id, summary, raw, None))

    def _start(self, index: int, item: Mapping[str, Any]) -> Iterator[StreamEvent]:
        if index in self._calls:
            return
        self._calls.add(index)
        self._open.add(index)
        self._any_call = True
        call_id = item.get("call_id") or item.get("id") or new_tool_id(f"{self.target.model.id}:{index}")
        yield ToolCallStart(index, str(call_id), str(item.get("name") or ""))

    def _done(self, index: int, item: Mapping[str, Any]) -> Iterator[StreamEvent]:
        kind = item.get("type")
        streamed = index in self._streamed
        if kind == "message":
            if not streamed:
                yield from self._close_reasoning(None)
                for part in item.get("content") or ():
                    if isinstance(part, dict):
                        text = part.get("text") if part.get("type") == "output_text" else part.get("refusal")
                        if text:
                            yield TextDelta(str(text))
        elif kind == "function_call":
            yield from self._close_reasoning(None)
            yield from self._start(index, item)
            if not streamed and item.get("arguments"):
                args = item["arguments"]
                yield ToolCallDelta(index, args if isinstance(args, str) else json.dumps(args))
            if index in self._open:
                self._open.discard(index)
                yield ToolCallEnd(index)
        elif kind == "reasoning" and index not in self._closed:
            yield from self._close_reasoning(index)
            self._closed.add(index)
            summary = _texts(item.get("summary"), "summary_text")
            raw = _texts(item.get("content"), "reasoning_text")
            if not streamed and (summary or raw):
                yield ReasoningDelta("\n\n".join(summary) or "\n\n".join(raw))
            content = raw if item.get("content") else None
            yield ReasoningDelta("", signature=_kept(item.get("id"), summary, content, item.get("encrypted_content")))
        # built-in tool items (web_search_call, ...) are the provider's own work: nothing to replay

    def _end(self, kind: str, response: Mapping[str, Any]) -> Iterator[StreamEvent]:
        if kind == "response.failed":
            raise self.protocol._in_band(response.get("error") or {"message": "the response failed"}, self.target)
        for index in sorted(self._open):
            yield ToolCallEnd(index)
        self._open.clear()
        usage = response.get("usage")
        if isinstance(usage, dict):
            yield UsageEvent(usage_from(usage))
        self.finished = True
        details = response.get("incomplete_details") or {}
        if kind == "response.incomplete" or response.get("status") == "incomplete":
            raw = str(details.get("reason") or "incomplete")
            yield Finish(_INCOMPLETE.get(raw, "other"), raw)
        elif self._any_call:
            yield Finish("tool_calls", "function_call")
        else:
            yield Finish("stop", str(response.get("status") or "completed"))

