"""AWS Bedrock Runtime Converse / ConverseStream, spoken over the shared HTTP transport.

Signing (SigV4) and event-stream framing are done by botocore's own code, not rewritten here:
a signature mismatch is undiagnosable from the server's answer, and the binary framing has
CRCs that must be checked. The body is serialised once and the same bytes are signed and
sent, because re-serialising after signing would break the payload hash.

Converse is strict where other protocols are lenient, which decides most of the encoding:
turns must alternate user/assistant (same-role turns are merged, tool results go in a user
turn), the first turn must be the user's (a history that opens with the assistant, after a
switch or an import, gets a short user turn ``LEADING_USER_TEXT`` in front), blank text
blocks are rejected, and ``toolConfig`` must be present whenever the history holds tool
blocks, even on a turn that offers no tools (stub specs are declared for the names used).
Many models are served only through a cross-region inference profile (``us.``/``eu.``/
``apac.``/``global.`` ids); Bedrock's refusal of a bare id becomes an error naming the exact
id to use for the configured region. Reasoning blocks carry signatures that only the
producing model accepts, so they are replayed natively only to the same provider and model;
otherwise the foreign-reasoning policy applies.

Credentials from botocore's chain (profiles, ``credential_process``, SSO) can take seconds to
resolve and do blocking I/O, so ``complete``/``stream`` resolve them in a worker thread before
encoding, and frozen credentials are reused until shortly before they expire.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ContextWindowExceeded,
    CredentialsMissing,
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
from ironspire.protocols.base import (
    ChatRequest,
    HttpProtocol,
    ProbeOutcome,
    PromptCache,
    Target,
    WireRequest,
    error_text,
)
from ironspire.protocols.common import (
    capped_ttl,
    conversation,
    foreign_reasoning,
    image_inline,
    is_cache_mark,
    is_own,
    prompt_cache,
    system_text,
    tool_id,
)

if TYPE_CHECKING:
    from botocore.credentials import Credentials, ReadOnlyCredentials

    from ironspire.catalog.providers import ProviderSpec
    from ironspire.http import Response

_STOP: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}
#: the user turn put before a history that opens with the assistant (Converse rejects that)
LEADING_USER_TEXT = "(continuing an earlier conversation)"
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}
_CLAUDE_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}
_AUTH_ERRORS = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
    "ExpiredTokenException", "IncompleteSignatureException", "MissingAuthenticationTokenException",
    "InvalidClientTokenId", "SignatureDoesNotMatch",
})
_THROTTLE_ERRORS = frozenset({"ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"})
_UNAVAILABLE_ERRORS = frozenset({
    "ModelNotReadyException", "ServiceUnavailableException", "InternalServerException", "InternalFailure",
    "ModelTimeoutException", "ModelErrorException", "ModelStreamErrorException",
})


# --- signing ------------------------------------------------------------------------------------


@cache
def _chain_session(profile: str | None) -> Any:
    import botocore.session

    return botocore.session.Session(profile=profile)


#: botocore's advisory refresh window: inside it, reading refreshable credentials may refresh them
_REFRESH_MARGIN = 15 * 60.0
#: how long credentials without an expiry (static keys in a profile) are reused before re-reading
_STATIC_TTL = 300.0
_clock = time.time
_chain_cache: dict[str | None, tuple[float, ReadOnlyCredentials]] = {}
_chain_lock = threading.Lock()


def _cached_chain(profile: str | None) -> ReadOnlyCredentials | None:
    hit = _chain_cache.get(profile)
    return hit[1] if hit is not None and _clock() < hit[0] else None


def _resolve_chain(profile: str | None) -> ReadOnlyCredentials:
    """Frozen credentials from botocore's chain, reused until shortly before they expire.

    This may block for seconds (config files, ``credential_process``, SSO and STS calls), so the
    async path runs it in a worker thread (``prepare_credentials``); the lock makes concurrent
    first requests share one resolution instead of each starting an SSO refresh.
    """
    with _chain_lock:
        cached = _cached_chain(profile)
        if cached is not None:
            return cached
        from botocore.exceptions import BotoCoreError

        try:
            found = _chain_session(profile).get_credentials()
            frozen: ReadOnlyCredentials | None = found.get_frozen_credentials() if found is not None else None
        except (BotoCoreError, OSError) as exc:  # ProfileNotFound, SSO token expired, credential_process failed...
            raise AuthenticationError(
                "bedrock", f"the AWS credential chain failed: {exc}",
                hint="Fix the AWS profile (for SSO run `aws sso login`), or store keys with "
                "`ironspire providers set-key bedrock --field access_key_id`.",
            ) from None
        if frozen is None or not frozen.access_key:
            raise CredentialsMissing("bedrock", "access_key_id", "AWS_PROFILE")
        now = _clock()
        expiry = getattr(found, "_expiry_time", None)  # set on botocore's RefreshableCredentials
        if expiry is None:
            fresh_for = _STATIC_TTL
        else:
            remaining = expiry.timestamp() - now
            fresh_for = remaining - _REFRESH_MARGIN if remaining > 2 * _REFRESH_MARGIN else remaining / 2
        if fresh_for > 0:
            _chain_cache[profile] = (now + fresh_for, frozen)
        return frozen


def forget_chain_credentials() -> None:
    """Drops resolved chain credentials and sessions (after the user changes profiles or logs in)."""
    with _chain_lock:
        _chain_cache.clear()
        _chain_session.cache_clear()


def _uses_chain(target: Target) -> bool:
    return target.settings.get("credential_chain") == "true"


def _profile(target: Target) -> str | None:
    return target.settings.get("profile") or None


async def prepare_credentials(target: Target) -> None:
    """Resolves chain credentials off the event loop, so the ``encode`` that follows finds them cached.

    ``encode`` stays synchronous (and usable without a loop, as in tests); on its own it would
    resolve the chain inline, which inside an event loop would stall every other agent.
    """
    if _uses_chain(target) and _cached_chain(_profile(target)) is None:
        await asyncio.to_thread(_resolve_chain, _profile(target))


def credentials(target: Target) -> Credentials | ReadOnlyCredentials:
    """Static keys from the keychain, or botocore's chain (profiles, SSO) when the user chose it."""
    if _uses_chain(target):
        return _resolve_chain(_profile(target))
    from botocore.credentials import Credentials

    access, secret = target.secret("access_key_id"), target.secret("secret_access_key")
    token = target.secrets.get("session_token")
    for value in (access, secret, token):
        if value:
            register_secret(value)
    return Credentials(access, secret, token)


def signed_request(
    method: str,
    url: str,
    body: bytes | None,
    target: Target,
    service: str = "bedrock",
    *,
    headers: Mapping[str, str] | None = None,
) -> WireRequest:
    """A SigV4-signed request; the caller must send exactly ``content`` (the signed bytes).

    Also used by the health probe for the control plane (``GET /foundation-models``).
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    if headers is None:
        headers = {"Content-Type": "application/json"} if body else {}
    aws = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
    SigV4Auth(credentials(target), service, target.setting("region")).add_auth(aws)
    return WireRequest(method, url, {k: str(v) for k, v in aws.headers.items()}, content=body or None)


def runtime_url(target: Target) -> str:
    return target.base_url.rstrip("/") or f"https://bedrock-runtime.{target.setting('region')}.amazonaws.com"


# --- the protocol -------------------------------------------------------------------------------


def bedrock_control_url(target: Target) -> str:
    """The control plane's model listing, beside the runtime URL requests go to."""
    region = target.setting("region")
    base = target.base_url.rstrip("/")
    if not base:
        base = f"https://bedrock.{region}.amazonaws.com"
    elif "://bedrock-runtime." in base:
        base = base.replace("://bedrock-runtime.", "://bedrock.", 1)
    return base + "/foundation-models?byOutputModality=TEXT"


def _aws_error_type(headers: Mapping[str, str], body: bytes) -> str:
    kind = headers.get("x-amzn-errortype") or ""
    if not kind:
        try:
            data = json.loads(body)
            kind = str(data.get("__type") or data.get("code") or "")
        except (ValueError, AttributeError):
            pass
    return kind.split(":", 1)[0].rsplit("#", 1)[-1]


class BedrockConverse(HttpProtocol):
    name = "bedrock_converse"
    stream_framing = "eventstream"
    # `credential_chain true` signs with botocore's chain (profiles, SSO) instead of stored keys
    settings = ("credential_chain", "profile", "prompt_cache")

    def base_url(self, spec: ProviderSpec, settings: Mapping[str, str], from_env: str | None) -> str:
        """The runtime endpoint of the configured region unless a URL is given."""
        if not settings.get("base_url") and not from_env and not spec.base_url:
            return f"https://bedrock-runtime.{settings.get('region') or 'us-east-1'}.amazonaws.com"
        return super().base_url(spec, settings, from_env)

    def check_configured(self, target: Target) -> None:
        """Only the URL: Bedrock may sign with a profile / SSO chain instead of stored keys, and its
        signer says what is missing."""
        if not target.base_url:
            super().check_configured(target)

    async def prepare_probe(self, target: Target) -> None:
        """Resolves a profile / SSO chain in a worker thread before the (synchronous) signing: on the
        event loop it could block for seconds, stalling every agent's turn while the check runs."""
        await prepare_credentials(target)

    def probe_request(self, target: Target) -> WireRequest:
        """A SigV4-signed control-plane listing, signed like a chat request (so a profile or SSO
        credential chain chosen in settings works here too)."""
        return signed_request("GET", bedrock_control_url(target), None, target)

    def probe_meaning(
        self, status: int, headers: Mapping[str, str], body: bytes, target: Target
    ) -> ProbeOutcome | None:
        if status == 403 and _aws_error_type(headers, body) == "AccessDeniedException":
            return ProbeOutcome("reachable", "credentials accepted but not verified: this identity may not list "
                                "models (bedrock:ListFoundationModels); " + error_text(body))
        return None

    async def complete(self, request: ChatRequest, target: Target) -> Message:
        await prepare_credentials(target)
        return await super().complete(request, target)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        await prepare_credentials(target)
        async for event in super().stream(request, target):
            yield event

    def encode(self, request: ChatRequest, target: Target, *, stream: bool) -> WireRequest:
        body = self.body(request, target)
        # Path label encoding with no safe characters: "us.x-v1:0" -> "us.x-v1%3A0".
        operation = "converse-stream" if stream else "converse"
        url = f"{runtime_url(target)}/model/{quote(target.model.id, safe='')}/{operation}"
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return signed_request("POST", url, content, target)

    def body(self, request: ChatRequest, target: Target) -> dict[str, Any]:
        marks: list[dict[str, Any]] = []
        messages = self._messages(request, target, marks)
        body: dict[str, Any] = {"messages": messages}
        system = system_text(request)
        if system:
            body["system"] = [{"text": system}]
        inference: dict[str, Any] = {}
        if request.max_tokens is not None:
            inference["maxTokens"] = request.max_tokens
        if request.temperature is not None:
            inference["temperature"] = request.temperature
        if request.stop:
            inference["stopSequences"] = list(request.stop)
        if inference:
            body["inferenceConfig"] = inference
        tool_config = self._tool_config(request, messages)
        if tool_config:
            body["toolConfig"] = tool_config
        extra = self._reasoning_fields(request, target)
        if extra:
            body["additionalModelRequestFields"] = extra
        cache = prompt_cache(request, target)
        if cache is not None and target.model.prompt_caching:
            _cache_points(body, marks, cache)
        return body

    @staticmethod
    def _reasoning_fields(request: ChatRequest, target: Target) -> dict[str, Any]:
        effort = request.reasoning
        if effort is None or effort == "none" or not target.model.reasoning:
            return {}
        model = target.model.id
        if "anthropic.claude" in model:
            return {"thinking": {"type": "enabled", "budget_tokens": _CLAUDE_BUDGET[effort]}}
        if "nova-2" in model:
            return {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": effort}}
        return {}

    @staticmethod
    def _tool_config(request: ChatRequest, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
        used: dict[str, None] = {}
        for m in messages:
            for block in m["content"]:
                if "toolUse" in block:
                    used[block["toolUse"]["name"]] = None
                elif "toolResult" in block:
                    used.setdefault("", None)
        offered = request.tools if request.tool_choice != "none" or request.force_tool else ()
        if offered:
            specs = []
            for t in offered:
                spec: dict[str, Any] = {"name": t.name, "inputSchema": {"json": dict(t.parameters)}}
                if t.description:
                    spec["description"] = t.description
                specs.append({"toolSpec": spec})
            config: dict[str, Any] = {"tools": specs}
            if request.force_tool:
                config["toolChoice"] = {"tool": {"name": request.force_tool}}
            elif request.tool_choice == "required":
                config["toolChoice"] = {"any": {}}
            elif request.tool_choice == "auto":
                config["toolChoice"] = {"auto": {}}
            return config
        if not used:
            return None
        # Converse refuses tool blocks in history unless toolConfig is defined: declare the
        # names the history used, as tools that are not offered this turn.
        names = [n for n in used if n] or ["unavailable_tool"]
        return {"tools": [
            {"toolSpec": {"name": n, "description": "Not available in this turn.",
                          "inputSchema": {"json": {"type": "object", "properties": {}}}}}
            for n in names
        ]}

    def _messages(
        self, request: ChatRequest, target: Target, marks: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for message in conversation(request):
            role = "assistant" if message.role == "assistant" else "user"
            blocks = [b for p in message.parts for b in self._blocks(p, request, target)]
            if not blocks:
                continue
            if marks is not None and is_cache_mark(message):
                marks.append(blocks[-1])
            if out and out[-1]["role"] == role:
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": role, "content": blocks})
        _unique_document_names(out)
        if out and out[0]["role"] == "assistant":
            # Converse requires the first message to be the user's; a history imported or carried
            # over from a switch can open with the assistant, so a short user turn is put first.
            out.insert(0, {"role": "user", "content": [{"text": LEADING_USER_TEXT}]})
        if out and out[-1]["role"] == "assistant":
            # An assistant prefill must not end in whitespace.
            last = out[-1]["content"][-1]
            if "text" in last:
                last["text"] = last["text"].rstrip()
                if not last["text"]:
                    out[-1]["content"].pop()
                    if not out[-1]["content"]:
                        out.pop()
        return out

    @staticmethod
    def _blocks(part: Any, request: ChatRequest, target: Target) -> Iterator[dict[str, Any]]:
        if isinstance(part, Text):
            if part.text.strip():
                yield {"text": part.text}
        elif isinstance(part, Image):
            yield _image_block(part)
        elif isinstance(part, Document):
            yield _document_block(part)
        elif isinstance(part, ToolCall):
            yield {"toolUse": {"toolUseId": tool_id(part.id, "bedrock"), "name": part.name,
                               "input": dict(part.arguments)}}
        elif isinstance(part, ToolResult):
            content: list[dict[str, Any]] = [{"text": p.text} for p in part.content if isinstance(p, Text) and p.text]
            content += [_image_block(p) for p in part.content if isinstance(p, Image)]
            yield {"toolResult": {"toolUseId": tool_id(part.call_id, "bedrock"),
                                  "content": content or [{"text": "(no output)"}],
                                  "status": "error" if part.is_error else "success"}}
        elif isinstance(part, Reasoning):
            native = is_own(part, target) and part.model == target.model.id
            if native and part.redacted:
                yield {"reasoningContent": {"redactedContent": part.redacted}}
            elif native and part.signature:
                yield {"reasoningContent": {"reasoningText": {"text": part.text, "signature": part.signature}}}
            else:
                # Unsigned or foreign reasoning cannot be replayed as reasoning.
                for p in foreign_reasoning(part, request):
                    if isinstance(p, Text):
                        yield {"text": p.text}

    # --- decoding -------------------------------------------------------------------------------

    def decode(self, body: bytes, target: Target) -> Message:
        data = self.json_body(body, target)
        if not isinstance(data, dict):
            raise ProviderUnavailable(target.provider.id, "response is not a JSON object", model=target.model.id)
        acc = Accumulator(target.provider.id, target.model.id)
        content = ((data.get("output") or {}).get("message") or {}).get("content") or []
        for index, block in enumerate(content):
            acc.feed(_block_events(index, block))
        if isinstance(data.get("usage"), dict):
            acc.add(UsageEvent(usage_from(data["usage"])))
        acc.add(_finish(data.get("stopReason"), any(isinstance(b, dict) and "toolUse" in b for b in content)))
        return acc.message()

    async def decode_stream(self, response: Response, target: Target) -> AsyncIterator[StreamEvent]:
        from botocore.eventstream import EventStreamBuffer, ParserError

        buffer = EventStreamBuffer()
        calls: set[int] = set()
        finish: Finish | None = None
        usage_seen = called = False
        received = consumed = 0
        async for chunk in response.aiter_bytes():
            buffer.add_data(chunk)
            received += len(chunk)
            try:
                messages: list[Any] = list(buffer)  # botocore-stubs mistype .headers/.prelude as int
            except ParserError as exc:
                raise ProviderUnavailable(target.provider.id, f"corrupt event stream ({type(exc).__name__})",
                                          model=target.model.id) from None
            for msg in messages:
                consumed += msg.prelude.total_length
                headers = msg.headers
                kind = headers.get(":message-type")
                if kind == "exception":
                    raise self._exception(str(headers.get(":exception-type", "")), msg.payload, target)
                if kind == "error":
                    raise self._exception(str(headers.get(":error-code", "")),
                                          json.dumps({"message": headers.get(":error-message", "")}).encode(), target)
                try:
                    payload = json.loads(msg.payload) if msg.payload else {}
                except json.JSONDecodeError:
                    raise ProviderUnavailable(target.provider.id, f"malformed event: {msg.payload[:200]!r}",
                                              model=target.model.id) from None
                event = headers.get(":event-type")
                if event == "messageStop":
                    finish = _finish(payload.get("stopReason"), called)
                elif event == "metadata":
                    if isinstance(payload.get("usage"), dict):
                        usage_seen = True
                        yield UsageEvent(usage_from(payload["usage"]))
                    # metadata is the stream's last event: it ends the turn even without messageStop
                    finish = finish or _finish(None, called)
                else:
                    for ev in _stream_events(str(event), payload, calls):
                        called = called or isinstance(ev, ToolCallStart)
                        yield ev
                if finish is not None and (usage_seen or event == "metadata"):
                    yield finish
                    return
        # Usage arrives after messageStop; a stream that stops there is still complete.
        if finish is None or consumed != received:  # leftover bytes are a frame cut in half
            raise ProviderUnavailable(target.provider.id, "stream ended early", model=target.model.id)
        yield finish

    # --- errors ---------------------------------------------------------------------------------

    def _exception(self, kind: str, payload: bytes, target: Target) -> ProviderError:
        name = kind[:1].upper() + kind[1:]  # in-stream names are camelCase: throttlingException
        return self._classify(name, _message(payload), None, {}, target, payload.decode("utf-8", "replace"))

    def error(self, status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError:
        kind = (headers.get("x-amzn-errortype") or "").split(":")[0]
        if not kind:
            try:
                data = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = None
            if isinstance(data, dict):
                kind = str(data.get("__type") or data.get("code") or "").split("#")[-1].split(":")[0]
        return self._classify(kind, _message(body), status, headers, target, body.decode("utf-8", "replace"))

    @staticmethod
    def _classify(
        kind: str, message: str, status: int | None, headers: Mapping[str, str], target: Target, raw: str
    ) -> ProviderError:
        from ironspire.transport import classify_http_error, is_context_overflow, parse_retry_after

        pid, model, raw = target.provider.id, target.model.id, raw[:2000]
        if kind in _THROTTLE_ERRORS:
            return RateLimitError(pid, message, retry_after=parse_retry_after(headers), model=model, status=status,
                                  raw=raw)
        if kind in _AUTH_ERRORS:
            return AuthenticationError(pid, f"{kind}: {message}", model=model, status=status, raw=raw)
        if kind in _UNAVAILABLE_ERRORS:
            return ProviderUnavailable(pid, f"{kind}: {message}", model=model, status=status, raw=raw)
        if kind == "ResourceNotFoundException" or "model identifier is invalid" in message.lower():
            missing = ModelNotFound(pid, model, status=status, raw=raw)
            hint = _region_mismatch_hint(target)
            if hint:
                missing.hint = hint
            return missing
        if kind == "ValidationException" or (status == 400 and not kind):
            if is_context_overflow(message):
                return ContextWindowExceeded(pid, message, limit=target.model.context_window, model=model,
                                             status=status, raw=raw)
            hint = _inference_profile_hint(target) if "inference profile" in message.lower() else None
            return BadRequest(pid, message, model=model, status=status, hint=hint, raw=raw)
        if status is None:
            return ProviderUnavailable(pid, f"{kind or 'stream error'}: {message}", model=model, raw=raw)
        return classify_http_error(status, headers, raw.encode(), target)


_GEO_PREFIXES = ("us-gov", "us", "eu", "apac", "jp", "au", "ca", "global")


def profile_geo(region: str) -> str | None:
    """The cross-region inference-profile prefix that serves ``region`` (us-east-1 -> "us")."""
    if region.startswith("us-gov-"):
        return "us-gov"
    head = region.split("-", 1)[0]
    return {"us": "us", "eu": "eu", "ap": "apac", "ca": "ca"}.get(head)


def _split_profile(model_id: str) -> tuple[str | None, str]:
    head, dot, rest = model_id.partition(".")
    return (head, rest) if dot and head in _GEO_PREFIXES and "." in rest else (None, model_id)


def _inference_profile_hint(target: Target) -> str:
    """Names the exact id to use: many models are only served through an inference profile."""
    _, bare = _split_profile(target.model.id)
    region = target.settings.get("region") or "us-east-1"
    geo = profile_geo(region)
    choices = [f"{geo}.{bare}"] if geo else []
    choices.append(f"global.{bare}")
    ids = " or ".join(f"`{c}`" for c in choices)
    return (f"{target.model.id} is only served through an inference profile in {region}: use {ids} as the "
            f"model id (`ironspire agents set NAME --provider bedrock --model {choices[0]}`).")


def _region_mismatch_hint(target: Target) -> str | None:
    """A us./eu./apac. profile id only exists in its own geography's regions."""
    geo, bare = _split_profile(target.model.id)
    region = target.settings.get("region") or "us-east-1"
    own = profile_geo(region)
    if geo is None or geo == "global" or own is None or geo == own:
        return None
    return (f"{target.model.id} is a {geo}. inference profile, but the region is {region}: use "
            f"`{own}.{bare}` there, or set the region with `ironspire providers set bedrock region REGION`.")


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body.decode("utf-8", "replace")[:500] or "no error text"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("Message") or data)[:1000]
    return str(data)[:500]


def _image_block(image: Image) -> dict[str, Any]:
    media, data = image_inline(image)
    fmt = _IMAGE_FORMATS.get(media.lower())
    if fmt is None:
        raise BadRequest("bedrock", f"image type {media} is not accepted by Converse",
                         hint="Use a PNG, JPEG, GIF or WebP image.")
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _cache_points(body: dict[str, Any], marks: list[dict[str, Any]], cache: PromptCache) -> None:
    """``cachePoint`` blocks after the system prompt, after the tools, after the last message the
    user marked ``cache_here`` and at the end of the conversation: at most 4, Converse's limit,
    all with one TTL (Converse wants them non-increasing in its order tools, system, messages)."""
    point: dict[str, Any] = {"type": "default"}
    ttl = capped_ttl(cache)
    if ttl:
        point["ttl"] = ttl
    if body.get("system"):
        body["system"].append({"cachePoint": dict(point)})
    tools = (body.get("toolConfig") or {}).get("tools")
    if tools:
        tools.append({"cachePoint": dict(point)})
    messages = body["messages"]
    present = {id(b): m for m in messages for b in m["content"]}
    for mark in marks[-1:]:
        owner = present.get(id(mark))
        if owner is not None and owner is not messages[-1]:
            owner["content"].insert(owner["content"].index(mark) + 1, {"cachePoint": dict(point)})
    if messages:
        messages[-1]["content"].append({"cachePoint": dict(point)})


#: Converse's document formats, by media type (DocumentBlock.format)
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html", "text/plain": "txt", "text/markdown": "md",
}
_NAME_BAD = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")
_NAME_SPACES = re.compile(r"\s+")


def document_name(name: str | None, fmt: str) -> str:
    """A DocumentBlock name: only letters, digits, single spaces, hyphens, parentheses and square
    brackets, 1-200 characters. The extension goes (the format says it); other characters become
    a space, so "Q3_report.v2.pdf" is sent as "Q3 report v2"."""
    base = name or ""
    if base.lower().endswith("." + fmt):
        base = base[: -len(fmt) - 1]
    cleaned = _NAME_SPACES.sub(" ", _NAME_BAD.sub(" ", base)).strip()[:200].strip()
    return cleaned or "document"


def _document_block(document: Document) -> dict[str, Any]:
    fmt = _DOCUMENT_FORMATS.get(document.media_type.lower())
    if fmt is None:
        raise BadRequest("bedrock", f"document type {document.media_type} is not accepted by Converse",
                         hint="Use PDF, CSV, DOC(X), XLS(X), HTML, TXT or Markdown.")
    source: dict[str, Any]
    if document.url is not None and document.url.startswith("s3://"):
        source = {"s3Location": {"uri": document.url}}
    else:
        _, data = image_inline(document)
        source = {"bytes": data}
    return {"document": {"format": fmt, "name": document_name(document.name, fmt), "source": source}}


def _unique_document_names(messages: list[dict[str, Any]]) -> None:
    """Converse refuses two documents of the same name in one request: later ones get " (2)"..."""
    seen: dict[str, int] = {}
    for m in messages:
        for block in m["content"]:
            doc = block.get("document")
            if doc is None:
                continue
            name = doc["name"]
            count = seen.get(name, 0) + 1
            seen[name] = count
            if count > 1:
                doc["name"] = f"{name[:190]} ({count})"


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """Converse ``inputTokens`` already excludes cache reads and writes."""
    return Usage(
        input=int(raw.get("inputTokens") or 0),
        output=int(raw.get("outputTokens") or 0),
        cache_read=int(raw.get("cacheReadInputTokens") or raw.get("cacheReadInputTokenCount") or 0),
        cache_write=int(raw.get("cacheWriteInputTokens") or raw.get("cacheWriteInputTokenCount") or 0),
    )


def _finish(stop_reason: Any, called: bool) -> Finish:
    """The turn's finish; a missing stopReason (the response still ended) is inferred from the calls."""
    raw = str(stop_reason or "")
    if not raw:
        return Finish("tool_calls" if called else "stop")
    return Finish(_STOP.get(raw, "other"), raw)


def _block_events(index: int, block: Mapping[str, Any]) -> Iterator[StreamEvent]:
    """Events for one complete content block of a Converse response."""
    if "text" in block:
        if block["text"]:
            yield TextDelta(str(block["text"]))
    elif "toolUse" in block:
        use = block["toolUse"]
        yield ToolCallStart(index, str(use.get("toolUseId", "")), str(use.get("name", "")))
        yield ToolCallDelta(index, json.dumps(use.get("input") or {}))
        yield ToolCallEnd(index)
    elif "reasoningContent" in block:
        rc = block["reasoningContent"]
        if "redactedContent" in rc:
            yield ReasoningDelta(redacted=str(rc["redactedContent"]))
        else:
            rt = rc.get("reasoningText") or {}
            yield ReasoningDelta(str(rt.get("text") or ""), signature=rt.get("signature"))


def _stream_events(event: str, payload: Mapping[str, Any], calls: set[int]) -> Iterator[StreamEvent]:
    index = int(payload.get("contentBlockIndex") or 0)
    if event == "contentBlockStart":
        use = (payload.get("start") or {}).get("toolUse")
        if use:
            calls.add(index)
            yield ToolCallStart(index, str(use.get("toolUseId", "")), str(use.get("name", "")))
    elif event == "contentBlockDelta":
        delta = payload.get("delta") or {}
        if "text" in delta:
            if delta["text"]:
                yield TextDelta(str(delta["text"]))
        elif "toolUse" in delta:
            yield ToolCallDelta(index, str((delta["toolUse"] or {}).get("input") or ""))
        elif "reasoningContent" in delta:
            rc = delta["reasoningContent"] or {}
            if rc.get("text"):
                yield ReasoningDelta(str(rc["text"]))
            if rc.get("signature"):
                yield ReasoningDelta(signature=str(rc["signature"]))
            if rc.get("redactedContent"):
                yield ReasoningDelta(redacted=str(rc["redactedContent"]))
    elif event == "contentBlockStop" and index in calls:
        calls.discard(index)
        yield ToolCallEnd(index)
