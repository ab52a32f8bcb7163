"""The Chat Completions wire format, for OpenAI and every provider that copies it.

OpenAI, Azure OpenAI, Mistral, DeepSeek, xAI, Groq, Together, Fireworks and custom endpoints
are the same adapter; what differs is typed data on the provider (``ProviderSpec.quirks``, a
``catalog.quirks.ChatCompletionsQuirks``: the output cap's field, stream usage, the developer
role, Azure's URL form, the tool-id alphabet, strict message order and option schema, the
thinking toggle and the reasoning field replayed...) and on the model (``ModelSpec.quirks``, a
``ChatCompletionsModelQuirks``: no sampling, its own cap field, thinking on or off by default).
Each field's docstring says what it changes. Models whose tools need reasoning off here (GPT-6)
name the Responses API in the catalogue (``ModelSpec.api``) and are routed to
``openai_responses``; nothing here turns reasoning down.

``ChatRequest.options``: only Chat Completions fields are sent (``_openai_wire.WIRE_OPTIONS``,
minus what the target is known to reject); ``options["openai_chat"]`` is a dict sent as given.
``ChatRequest.cache`` becomes ``prompt_cache_key``/``prompt_cache_retention`` where the provider
takes them (``_openai_wire.cache_fields``). ``inline_think`` decides whether a ``<think>`` block
opening the answer is reasoning (on for Together, Fireworks, Groq and custom endpoints).
Keys meant for other protocols are ignored here, as those adapters ignore ours.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ironspire.errors import ProviderError, ProviderUnavailable
from ironspire.messages import Accumulator, Message, StreamEvent
from ironspire.protocols import inline_think
from ironspire.protocols._openai_wire import (
    ChunkDecoder,
    auth_headers,
    azure_base,
    cache_fields,
    classify_error,
    encode_messages,
    in_band_status,
    is_azure,
    model_quirks,
    provider_quirks,
    thinking_on,
    wire_options,
)
from ironspire.protocols.base import ChatRequest, HttpProtocol, ProbeOutcome, Target, WireRequest, error_text
from ironspire.protocols.framing import sse_json

if TYPE_CHECKING:
    from ironspire.catalog.discovery import DiscoveryResult
    from ironspire.http import Response

class OpenAIChat(HttpProtocol):
    name = "openai_chat"
    stream_framing = "sse"
    #: ``api responses`` sends every model of this provider to the Responses API (Azure's
    #: /openai/v1, an Open Responses server); ``api chat`` keeps even Responses-default models here;
    #: ``inline_think on|off`` overrides whether a ``<think>`` block opening an answer is reasoning
    settings = ("api", "inline_think")

    # --- health and listing --------------------------------------------------------------

    def probe_request(self, target: Target) -> WireRequest:
        """``GET /models``; Azure's classic URLs get an empty chat on the deployment instead: the key
        and the deployment are checked before the body, so the 400 for no messages proves both."""
        if not is_azure(target):
            key = target.secrets.get("api_key")
            return WireRequest("GET", target.url("/models"), {"Authorization": f"Bearer {key}"} if key else {})
        headers = {"api-key": target.secret("api_key")}
        base = target.base_url.rstrip("/")
        if "/openai/v1" in base:
            return WireRequest("GET", base + "/models", headers)
        root = base if base.endswith("/openai") else base + "/openai"
        deployment = target.settings.get("deployment") or target.model.id
        return WireRequest(
            "POST", f"{root}/deployments/{deployment}/chat/completions", headers,
            json={"messages": []}, params={"api-version": target.setting("api_version")},
        )

    def probe_meaning(
        self, status: int, headers: Mapping[str, str], body: bytes, target: Target
    ) -> ProbeOutcome | None:
        azure = is_azure(target)
        if status == 404 and not azure:
            return ProbeOutcome("reachable", "the server answers but lists no models (HTTP 404); "
                                "the key was not verified")
        if status == 400 and azure and "/openai/v1" not in target.base_url \
                and "api-version" not in error_text(body).lower():
            return ProbeOutcome("reachable", "key and deployment accepted")
        return None

    async def list_models(
        self, target: Target, *, read_timeout: float, connect_timeout: float
    ) -> DiscoveryResult:
        if not target.provider.lists_models:
            return await super().list_models(target, read_timeout=read_timeout, connect_timeout=connect_timeout)
        from ironspire.protocols._openai_listing import list_models

        return await list_models(self.transport, target, read_timeout=read_timeout, connect_timeout=connect_timeout)

    # --- request -------------------------------------------------------------------------

    def encode(self, request: ChatRequest, target: Target, *, stream: bool) -> WireRequest:
        url, params, body_model = _endpoint(target)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        headers.update(auth_headers(target))
        model = target.model
        pq, mq = provider_quirks(target), model_quirks(target)
        system_role = "developer" if pq.developer_role and model.reasoning else "system"
        body: dict[str, Any] = {}
        if body_model is not None:
            body["model"] = body_model
        body["messages"] = encode_messages(request, target, system_role=system_role)
        if stream:
            body["stream"] = True
            if pq.stream_usage:
                body["stream_options"] = {"include_usage": True}
        if request.max_tokens is not None:
            body[mq.max_tokens_field or pq.max_tokens_field] = request.max_tokens
        if mq.sampling:
            if request.temperature is not None:
                body["temperature"] = request.temperature
            if request.stop:
                body["stop"] = list(request.stop)
        if request.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": dict(t.parameters)}}
                for t in request.tools
            ]
            choice = _tool_choice(request, target)
            if choice is not None:
                body["tool_choice"] = choice
        body.update(_reasoning_fields(request, target))
        body.update(cache_fields(request.cache, target))  # explicit options below win
        body.update(wire_options(request.options, target))
        return WireRequest("POST", url, headers, json=body, params=params)

    # --- response ------------------------------------------------------------------------

    def decode(self, body: bytes, target: Target) -> Message:
        data = self.json_body(body, target)
        if not isinstance(data, dict):
            raise ProviderUnavailable(target.provider.id, "response is not a JSON object", model=target.model.id)
        if data.get("error") and not data.get("choices"):
            raise self.error(in_band_status(data["error"]), {}, body, target)
        if not data.get("choices") or not isinstance(data["choices"], list):
            raise ProviderUnavailable(target.provider.id, "response has no choices", model=target.model.id)
        decoder = ChunkDecoder(think=inline_think.enabled(target, provider_quirks(target).inline_think))
        acc = Accumulator(target.provider.id, target.model.id)
        acc.feed(decoder.events(data))
        acc.feed(decoder.end())  # a whole body is a finished turn, with or without a finish_reason
        return acc.message()

    async def decode_stream(self, response: Response, target: Target) -> AsyncIterator[StreamEvent]:
        decoder = ChunkDecoder(think=inline_think.enabled(target, provider_quirks(target).inline_think))
        received = False
        frames = sse_json(response, target.provider.id)
        async for event, payload in frames:
            received = True
            if not isinstance(payload, dict):
                continue
            if event == "error" or payload.get("error"):
                err = payload.get("error", payload)
                raise self.error(in_band_status(err), {}, json.dumps(payload).encode(), target)
            for item in decoder.events(payload):
                yield item
        # A finish_reason or the [DONE] marker proves the model finished; a stream that stops
        # with neither was cut (the connection dropped), whatever it delivered before.
        if frames.done:
            for item in decoder.end():
                yield item
            return
        if not decoder.finished:
            if not received:
                # llama.cpp's server answers a prompt longer than its window this way when streaming
                # (unstreamed it says so with a 400), so the likely cause is worth naming.
                raise ProviderUnavailable(
                    target.provider.id, "the server closed the stream without sending anything",
                    model=target.model.id,
                    hint="Some local servers (llama.cpp) do this when the conversation is longer than the "
                    "context window they were started with: shorten it, or restart the server with a larger "
                    "context (and set the endpoint's --context-window to match).",
                )
            raise ProviderUnavailable(target.provider.id, "stream ended early", model=target.model.id)
        for item in decoder.close():
            yield item

    # --- errors --------------------------------------------------------------------------

    def error(self, status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError:
        return classify_error(status, headers, body, target)


def _endpoint(target: Target) -> tuple[str, dict[str, str] | None, str | None]:
    """(URL, query params, body ``model``) for the target; Azure has two URL forms."""
    if not is_azure(target):
        return target.url("/chat/completions"), None, target.model.id
    base = azure_base(target)
    deployment = target.settings.get("deployment") or target.model.id
    if base.endswith("/openai/v1"):  # v1 API: no api-version, deployment named in the body
        return base + "/chat/completions", None, deployment
    params = {"api-version": target.setting("api_version")}
    if "/deployments/" in base:
        return base + "/chat/completions", params, None
    root = base if base.endswith("/openai") else base + "/openai"
    return f"{root}/deployments/{quote(deployment, safe='')}/chat/completions", params, None


def _tool_choice(request: ChatRequest, target: Target) -> Any:
    if request.force_tool:
        return {"type": "function", "function": {"name": request.force_tool}}
    if request.tool_choice == "required":
        return provider_quirks(target).required_tool_choice
    return request.tool_choice


def _reasoning_fields(request: ChatRequest, target: Target) -> dict[str, Any]:
    mq = model_quirks(target)
    effort = request.reasoning
    if provider_quirks(target).thinking_toggle:
        out: dict[str, Any] = {}
        enabled = thinking_on(request, target)
        if mq.thinking_default != "model" or effort is not None:
            out["thinking"] = {"type": "enabled" if enabled else "disabled"}
        if enabled and effort not in (None, "none"):
            out["reasoning_effort"] = "high"  # DeepSeek knows high and max; lower levels map to high
        return out
    return {"reasoning_effort": effort} if effort is not None else {}
