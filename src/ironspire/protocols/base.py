"""The contract every wire-protocol adapter fulfils, and the neutral request type they translate.

An adapter is pure translation: neutral ``ChatRequest`` -> ``WireRequest``, and wire bytes ->
neutral ``Message`` / ``StreamEvent``s. Moving bytes (pooling, retries, timeouts) belongs to
``ironspire.transport``; choosing the provider and model belongs to the workspace. Keeping the
three apart is what lets one adapter serve many providers and lets the replay tests feed
recorded traffic straight into the decoders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ironspire.errors import ConfigurationError, ProviderError
from ironspire.messages import Message, StreamEvent, ToolCallDelta, ToolCallEnd, ToolCallStart

# The wire types live below protocols, transport and credentials; named here too for callers
# (and the public API) that import them with the adapter contract.
from ironspire.wire import ProbeOutcome as ProbeOutcome
from ironspire.wire import Secrets as Secrets
from ironspire.wire import Target as Target
from ironspire.wire import WireRequest as WireRequest

if TYPE_CHECKING:
    from ironspire.catalog.discovery import DiscoveryResult
    from ironspire.catalog.providers import ProviderSpec
    from ironspire.http import Response
    from ironspire.transport import Transport

ToolChoice: TypeAlias = Literal["auto", "none", "required"]
ReasoningEffort: TypeAlias = Literal["none", "low", "medium", "high"]
ForeignReasoning: TypeAlias = Literal["drop", "text"]


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


CacheTTL: TypeAlias = Literal["default", "5m", "1h", "24h"]


@dataclass(frozen=True, slots=True)
class PromptCache:
    """Asks for the prompt's stable prefix to be cached, in whatever form the provider has.

    ``ttl`` is how long the cache should live ("default" is the provider's own); a provider with
    shorter lifetimes gets its longest. ``key`` groups requests that share a prefix (OpenAI's
    ``prompt_cache_key``); agents use their own id. Where the provider caches by itself (Gemini's
    implicit caching, DeepSeek), nothing is sent; the counts still reach the ledger.
    """

    ttl: CacheTTL = "default"
    key: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One request in neutral form: the whole history plus the knobs for this turn.

    ``system`` is the agent's system prompt; system messages inside ``messages`` are allowed
    too and adapters move both to the place their protocol wants. ``force_tool`` names a tool
    the model must call (it wins over ``tool_choice``). ``foreign_reasoning`` says what to do
    with reasoning produced by another provider: it can never be replayed natively. ``cache``
    asks for prompt caching (see ``PromptCache``; ``common.prompt_cache`` says what wins).
    """

    messages: tuple[Message, ...]
    system: str | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    force_tool: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    reasoning: ReasoningEffort | None = None
    foreign_reasoning: ForeignReasoning = "drop"
    options: Mapping[str, Any] = field(default_factory=dict)
    cache: PromptCache | None = None


class Backend(ABC):
    """What the workspace calls: one completed turn, or its stream of events; and every other
    fact about the wire protocol, so that nothing outside ``protocols`` branches on its name.

    Adding a protocol is one module with a subclass plus a line in ``protocols._MODULES``. The
    hooks below all have defaults; override only what differs:

    ``settings``
        extra provider settings this protocol reads (beyond ``base_url``, ``timeout`` and the
        provider's non-secret auth fields), e.g. the CLI path or Bedrock's ``credential_chain``.
    ``base_url(spec, settings, from_env)``
        the URL requests go to: the user's override, else a URL from the environment, else the
        catalogue's. Normalisation (Ollama's ``OLLAMA_HOST`` rules) or a derived default
        (Bedrock's region) belongs here.
    ``check_configured(target)``
        raises ``ConfigurationError`` / ``CredentialsMissing`` when a request could not even be
        attempted (no URL, a required secret missing); silent when it could.
    ``context_check(request, target)``
        a protocol's own context-window check; True when it ran (pre-flight then skips its
        generic estimate), False to leave it to pre-flight.
    ``probe(target, limit)``
        the cheapest authenticated call, as a ``ProbeOutcome``. HTTP adapters get one built
        from ``probe_request`` / ``probe_meaning`` / ``prepare_probe``.
    ``list_models(target, read_timeout=, connect_timeout=)``
        what the server serves now, as a ``DiscoveryResult``; never raises for a server that is
        down or refuses (the result says why). The default says the protocol does not list.
    """

    name: str = ""
    #: provider settings this protocol reads besides the general ones and the auth fields
    settings: tuple[str, ...] = ()

    @abstractmethod
    async def complete(self, request: ChatRequest, target: Target) -> Message: ...

    @abstractmethod
    def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]: ...

    # --- facts with defaults -------------------------------------------------------------

    def base_url(self, spec: ProviderSpec, settings: Mapping[str, str], from_env: str | None) -> str:
        """``settings`` are the provider's non-secret settings (``base_url`` is the user's override),
        ``from_env`` a server URL from the provider's environment variables, unnormalised."""
        configured = settings.get("base_url")
        if configured:
            return configured.rstrip("/")
        if from_env:
            value = from_env.strip().rstrip("/")
            return value if "://" in value else f"http://{value}"
        return spec.base_url.rstrip("/")

    def check_configured(self, target: Target) -> None:
        if not target.base_url:
            pid = target.provider.id
            raise ConfigurationError(
                f"{pid}: no base URL is configured.", hint=f"Run `ironspire providers set {pid} base_url URL`."
            )
        for f in target.provider.secret_fields:
            if f.required:
                target.secret(f.name)  # raises CredentialsMissing with how to fix it

    def context_check(self, request: ChatRequest, target: Target) -> bool:
        return False

    async def probe(self, target: Target, limit: float) -> ProbeOutcome:
        """``limit`` is the seconds the check may take."""
        raise ConfigurationError(f"no health probe for protocol {self.name!r}.")

    async def list_models(
        self, target: Target, *, read_timeout: float, connect_timeout: float
    ) -> DiscoveryResult:
        from ironspire.catalog.discovery import DiscoveryResult

        spec = target.provider
        return DiscoveryResult(spec.id, target.base_url or spec.base_url,
                               error=f"{spec.id} does not list models at runtime.")


class HttpProtocol(Backend):
    """A wire format spoken over HTTP. Subclasses translate; ``transport`` moves the bytes."""

    name: str = ""
    #: how the protocol frames a stream; the transport does nothing with it, decoders do
    stream_framing: Literal["sse", "ndjson", "eventstream"] = "sse"

    def __init__(self, transport: Transport | None = None) -> None:
        # No transport is fine for encoding and decoding (tests, tools); sending needs one.
        self._transport = transport

    @property
    def transport(self) -> Transport:
        """The pools this adapter sends through; there is no process-wide default to fall back on."""
        if self._transport is None:
            raise ConfigurationError(
                f"the {self.name or type(self).__name__} adapter was made without a transport, so it cannot send.",
                hint="Pass the Transport it should use: backend_for(protocol, transport).",
            )
        return self._transport

    @abstractmethod
    def encode(self, request: ChatRequest, target: Target, *, stream: bool) -> WireRequest: ...

    @abstractmethod
    def decode(self, body: bytes, target: Target) -> Message:
        """A complete (non-streamed) success response as the assistant Message."""

    @abstractmethod
    def decode_stream(self, response: Response, target: Target) -> AsyncIterator[StreamEvent]:
        """Events from a streamed success response; raises ProviderError for in-stream errors."""

    @staticmethod
    def json_body(body: bytes, target: Target) -> Any:
        """A success body parsed as JSON; anything else is the provider failing, not a crash."""
        import json

        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            from ironspire.errors import ProviderUnavailable

            raise ProviderUnavailable(
                target.provider.id, f"malformed response: {body[:200]!r}", model=target.model.id
            ) from None

    def error(self, status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError:
        """Classifies a failed response. The default reads common JSON error shapes."""
        from ironspire.transport import classify_http_error

        return classify_http_error(status, headers, body, target)

    # --- health probe --------------------------------------------------------------------

    def probe_request(self, target: Target) -> WireRequest:
        """The cheapest authenticated request (usually a one-item model listing)."""
        raise ConfigurationError(f"no health probe for protocol {self.name!r}.")

    def probe_meaning(
        self, status: int, headers: Mapping[str, str], body: bytes, target: Target
    ) -> ProbeOutcome | None:
        """What a failed probe answer means where that differs from a chat request's reading
        (a 404 from a listing, Bedrock's AccessDenied); None to read it with ``error``."""
        return None

    async def prepare_probe(self, target: Target) -> None:
        """Slow, blocking preparation done off the event loop before ``probe_request``."""

    async def probe(self, target: Target, limit: float) -> ProbeOutcome:
        """One attempt through the provider's pool, bounded by ``limit`` seconds, never retried: a
        health check must answer within its time, not after backoff."""
        from ironspire.errors import ProviderUnavailable
        from ironspire.transport import cause_name, origin, timed_out

        await self.prepare_probe(target)
        wire = self.probe_request(target)
        try:
            response = await self.transport.fetch(wire, target, self, read_timeout=limit, connect_timeout=limit,
                                                  observe=False)
        except ProviderUnavailable as exc:
            where = origin(wire.url)
            if timed_out(exc):
                return ProbeOutcome("unreachable", f"no answer from {where} within {limit:g} s")
            return ProbeOutcome("unreachable", f"cannot connect to {where} ({cause_name(exc)})")
        status, headers, body = response.status_code, response.headers, response.content
        if status < 400:
            return ProbeOutcome("reachable", f"HTTP {status}")
        special = self.probe_meaning(status, headers, body, target)
        if special is not None:
            return special
        return outcome_for_error(self.error(status, headers, body, target), f"HTTP {status}: {error_text(body)}")

    async def complete(self, request: ChatRequest, target: Target) -> Message:
        wire = self.encode(request, target, stream=False)
        body = await self.transport.request(wire, target, self)
        try:
            return self.decode(body, target)
        except DECODE_FAULTS as exc:
            raise malformed(target, exc) from exc

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        wire = self.encode(request, target, stream=True)
        async with self.transport.stream(wire, target, self) as response:
            from ironspire.protocols.framing import capped

            open_calls: set[int] = set()  # arguments outside a call's start and end are a malformed stream
            try:
                async for event in self.decode_stream(capped(response, target), target):
                    if isinstance(event, _TOOL_EVENTS):  # one check for the text events that make most of a stream
                        if isinstance(event, ToolCallStart):
                            open_calls.add(event.index)
                        elif isinstance(event, ToolCallEnd):
                            open_calls.discard(event.index)
                        elif event.index not in open_calls:
                            raise ValueError(f"tool-call arguments for index {event.index} outside its start and end")
                    yield event
            except DECODE_FAULTS as exc:
                raise malformed(target, exc) from exc


_TOOL_EVENTS = (ToolCallStart, ToolCallDelta, ToolCallEnd)

#: what a decoder raises when a response is not the shape its protocol defines (a string where
#: an object belongs, "abc" as a token count): the provider failed, not Ironspire
DECODE_FAULTS = (AttributeError, TypeError, ValueError, KeyError, IndexError, OverflowError, RecursionError)


def malformed(target: Target, exc: BaseException) -> ProviderError:
    """The provider's malformed answer as the error a turn reports (naming the provider)."""
    from ironspire.errors import ProviderUnavailable

    return ProviderUnavailable(target.provider.id, f"malformed response ({type(exc).__name__}: {str(exc)[:200]})",
                               model=target.model.id)


def error_text(body: bytes) -> str:
    """The provider's own words from an error body, whatever its shape."""
    from ironspire.transport import error_message

    return error_message(body)[0]


def http_problem(who: str, base: str, status: int, body: bytes) -> str:
    """A listing that failed with an HTTP status, in words (the provider's message, shortened)."""
    return f"{who} at {base} could not list models (HTTP {status}): {error_text(body)[:200]}"


def outcome_for_error(error: ProviderError | None, detail: str) -> ProbeOutcome:
    """A typed failure read as health: rate limits, bad keys, unreachable; anything else means
    the server answered but the check could not pass, so it is not usable either."""
    from ironspire.errors import AuthenticationError, RateLimitError

    if error is None:
        return ProbeOutcome("reachable", detail)
    if isinstance(error, RateLimitError):
        return ProbeOutcome("rate_limited", detail, error.retry_after)
    if isinstance(error, AuthenticationError):
        return ProbeOutcome("invalid_key", detail)
    return ProbeOutcome("unreachable", detail)
