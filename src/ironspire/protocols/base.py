"""The contract every wire-protocol adapter fulfils, and the request/target types they share.

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

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import ProviderSpec
from ironspire.errors import ConfigurationError, CredentialsMissing, ProviderError, mask
from ironspire.messages import Message, StreamEvent

if TYPE_CHECKING:
    import httpx

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


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One request in neutral form: the whole history plus the knobs for this turn.

    ``system`` is the agent's system prompt; system messages inside ``messages`` are allowed
    too and adapters move both to the place their protocol wants. ``force_tool`` names a tool
    the model must call (it wins over ``tool_choice``). ``foreign_reasoning`` says what to do
    with reasoning produced by another provider: it can never be replayed natively.
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


class Secrets(Mapping[str, str]):
    """Credential values for one provider; its repr never shows them."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = {k: v for k, v in (values or {}).items() if v}

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return "Secrets(" + ", ".join(f"{k}={mask(v)}" for k, v in self._values.items()) + ")"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes, resolved at request time from the agent's route."""

    provider: ProviderSpec
    model: ModelSpec
    base_url: str
    secrets: Secrets = field(default_factory=Secrets)
    settings: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    connect_timeout: float = 10.0

    @property
    def provider_id(self) -> str:
        return self.provider.id

    def secret(self, name: str = "api_key") -> str:
        """A required credential, or CredentialsMissing saying how to set it."""
        value = self.secrets.get(name)
        if not value:
            env = next((f.env[0] for f in self.provider.auth if f.name == name and f.env), None)
            raise CredentialsMissing(self.provider.id, name, env)
        return value

    def setting(self, name: str) -> str:
        value = self.settings.get(name)
        if not value:
            for f in self.provider.auth:
                if f.name == name and f.default:
                    return f.default
            raise ConfigurationError(
                f"{self.provider.id}: setting {name!r} is not configured.",
                hint=f"Run `ironspire providers set {self.provider.id} {name} VALUE`.",
            )
        return value

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


@dataclass(slots=True)
class WireRequest:
    method: str
    url: str
    headers: dict[str, str]
    json: Any = None
    content: bytes | None = None
    params: dict[str, str] | None = None


class Backend(ABC):
    """What the workspace calls: one completed turn, or its stream of events."""

    @abstractmethod
    async def complete(self, request: ChatRequest, target: Target) -> Message: ...

    @abstractmethod
    def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]: ...


class HttpProtocol(Backend):
    """A wire format spoken over HTTP. Subclasses translate; ``transport`` moves the bytes."""

    name: str = ""
    #: how the protocol frames a stream; the transport does nothing with it, decoders do
    stream_framing: Literal["sse", "ndjson", "eventstream"] = "sse"

    def __init__(self, transport: Transport | None = None) -> None:
        if transport is None:
            from ironspire.transport import default_transport

            transport = default_transport()
        self.transport = transport

    @abstractmethod
    def encode(self, request: ChatRequest, target: Target, *, stream: bool) -> WireRequest: ...

    @abstractmethod
    def decode(self, body: bytes, target: Target) -> Message:
        """A complete (non-streamed) success response as the assistant Message."""

    @abstractmethod
    def decode_stream(self, response: httpx.Response, target: Target) -> AsyncIterator[StreamEvent]:
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

    async def complete(self, request: ChatRequest, target: Target) -> Message:
        wire = self.encode(request, target, stream=False)
        body = await self.transport.request(wire, target, self)
        return self.decode(body, target)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        wire = self.encode(request, target, stream=True)
        async with self.transport.stream(wire, target, self) as response:
            async for event in self.decode_stream(response, target):
                yield event
