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
from ironspire.messages import Message, StreamEvent

# The wire types live below protocols, transport and credentials; named here too for callers
# (and the public API) that import them with the adapter contract.
from ironspire.wire import Secrets as Secrets
from ironspire.wire import Target as Target
from ironspire.wire import WireRequest as WireRequest

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
