"""The neutral conversation model every provider is translated to and from.

History is stored only in this form, so an agent can move between providers: each protocol
adapter encodes these types into its wire format and decodes its wire format back into them.
The types are plain frozen dataclasses because decoders build them on the hot path (one per
streamed chunk). JSON from outside (an import, a request) is validated through pydantic, imported
lazily; the store's own rows are written and read with the stdlib, in the same form, so a
turn never loads pydantic.

Opaque values that only the producing provider understands (thinking signatures, Gemini thought
signatures, redacted reasoning) travel on the part that carries them, together with the provider
and model that produced them, so an adapter can tell its own from a foreign one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast, get_args

if TYPE_CHECKING:
    from pydantic import TypeAdapter

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]
FINISH_REASONS: tuple[FinishReason, ...] = ("stop", "length", "tool_calls", "content_filter", "error", "other")


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class Image:
    """An image given inline (base64 ``data``) or by reference (``url``); exactly one is set."""

    media_type: str
    data: str | None = None
    url: str | None = None
    type: Literal["image"] = "image"

    def __post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ValueError("Image needs exactly one of data (base64) or url")


@dataclass(frozen=True, slots=True)
class Document:
    """A file the model reads (a PDF, plain text, CSV...), inline (base64 ``data``) or by ``url``.

    ``name`` is the file's name as the user gave it; adapters turn it into what their provider
    accepts (Bedrock allows only some characters), so it is kept as given here.
    """

    media_type: str
    data: str | None = None
    url: str | None = None
    name: str | None = None
    type: Literal["document"] = "document"

    def __post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ValueError("Document needs exactly one of data (base64) or url")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to run a tool.

    ``signature``/``provider``/``model`` hold an opaque value some providers attach to a call
    (Gemini's thoughtSignature) that must be echoed back to that provider only.
    """

    id: str
    name: str
    arguments: Mapping[str, Any]
    signature: str | None = None
    provider: str | None = None
    model: str | None = None
    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of a tool call; the tool name is kept because Gemini pairs results by name."""

    call_id: str
    tool_name: str
    content: tuple[Text | Image, ...]
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, Text))


@dataclass(frozen=True, slots=True)
class Reasoning:
    """Model reasoning: visible text, a signature proving it, or a redacted (encrypted) payload.

    ``provider`` and ``model`` name who produced it; signatures cannot be forged, so adapters
    replay a Reasoning part natively only to the provider that produced it.
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    provider: str | None = None
    model: str | None = None
    type: Literal["reasoning"] = "reasoning"


Part: TypeAlias = Text | Image | Document | ToolCall | ToolResult | Reasoning


UsageState: TypeAlias = Literal["reported", "estimated", "unknown"]
_STATE_ORDER: tuple[UsageState, ...] = ("reported", "estimated", "unknown")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts for one request. ``input`` excludes cached tokens (read or written).

    ``state`` says where the counts come from: the provider (``reported``), our own estimate
    (``estimated``), or nowhere (``unknown``: the provider sent none, and the zeros mean
    nothing). A request whose usage is missing is never taken for one that cost nothing.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    state: UsageState = "reported"

    @classmethod
    def unknown(cls) -> Usage:
        return cls(state="unknown")

    @property
    def known(self) -> bool:
        return self.state == "reported"

    def __add__(self, other: Usage) -> Usage:
        # a sum is only as good as its least certain term
        state = max(self.state, other.state, key=_STATE_ORDER.index)
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.reasoning + other.reasoning,
            state,
        )

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    @property
    def prompt(self) -> int:
        """All input the model read, cached or not: what counts against the context window."""
        return self.input + self.cache_read + self.cache_write


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. Assistant turns also record who produced them, their usage and finish reason."""

    role: Role
    parts: tuple[Part, ...]
    provider: str | None = None
    model: str | None = None
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def user(cls, *content: str | Image | Document) -> Message:
        return cls("user", tuple(Text(c) if isinstance(c, str) else c for c in content))

    @classmethod
    def system(cls, text: str) -> Message:
        return cls("system", (Text(text),))

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls("assistant", (Text(text),))

    @classmethod
    def tool(cls, *results: ToolResult) -> Message:
        return cls("tool", tuple(results))

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [p for p in self.parts if isinstance(p, ToolCall)]

    @property
    def reasoning(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Reasoning))

    def to_json(self) -> str:
        """The stored form, written by the stdlib: pydantic's adapter would cost a fresh process
        ~75 ms (its import and the schema build) at its first commit. The JSON is what pydantic
        writes for this dataclass; a value the stdlib cannot encode goes through pydantic."""
        try:
            return _dumps(_message_record(self))
        except (TypeError, ValueError, KeyError):  # a non-JSON value, NaN or infinity; a part of no known type
            return _message_adapter().dump_json(self).decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Message:
        """Validated: for JSON from outside (an import, a request), a ValidationError says what is wrong."""
        return _message_adapter().validate_json(raw)

    @classmethod
    def from_stored(cls, raw: str | bytes) -> Message:
        """A message this store wrote, read back without pydantic (a fresh process reading an
        agent's history pays no adapter build). A row of any other shape goes through
        ``from_json``, which reads what it can and raises a ValidationError for the rest."""
        try:
            return _stored_message(json.loads(raw))
        except (TypeError, ValueError, KeyError, AttributeError):
            return cls.from_json(raw)


# --- stream events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    type: Literal["text_delta"] = "text_delta"

    def __post_init__(self) -> None:  # a decoder handed a provider's non-text on: fail in the decoder
        if type(self.text) is not str:
            raise TypeError(f"text is {type(self.text).__name__}, not a string")


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of reasoning; ``signature`` or ``redacted`` arrive once, closing the block."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    type: Literal["reasoning_delta"] = "reasoning_delta"

    def __post_init__(self) -> None:
        if type(self.text) is not str or not isinstance(self.signature or "", str) \
                or not isinstance(self.redacted or "", str):
            raise TypeError("reasoning text, signature and redacted payload must be strings")


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str
    signature: str | None = None
    type: Literal["tool_call_start"] = "tool_call_start"

    def __post_init__(self) -> None:
        if type(self.index) is not int or not isinstance(self.id, str) or not isinstance(self.name, str):
            raise TypeError("a tool call needs an integer index and a string id and name")


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call's JSON arguments, keyed by the call's stream index."""

    index: int
    arguments: str
    type: Literal["tool_call_delta"] = "tool_call_delta"

    def __post_init__(self) -> None:
        if not isinstance(self.arguments, str):
            raise TypeError(f"tool call arguments are {type(self.arguments).__name__}, not a string")


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    index: int
    type: Literal["tool_call_end"] = "tool_call_end"


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """Usage so far; a later event replaces an earlier one (decoders merge partial reports)."""

    usage: Usage
    type: Literal["usage"] = "usage"


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of a turn; ``meta`` carries facts only known then (the Claude CLI's session id
    and reported cost) onto ``Message.meta``, so streaming callers do not lose them."""

    reason: FinishReason
    raw: str | None = None
    type: Literal["finish"] = "finish"
    meta: Mapping[str, Any] = field(default_factory=dict)


StreamEvent: TypeAlias = (
    TextDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | ToolCallEnd | UsageEvent | Finish
)


class _PendingCall:
    __slots__ = ("fragments", "id", "name", "signature")

    def __init__(self, id: str, name: str, signature: str | None) -> None:
        self.id, self.name, self.signature = id, name, signature
        self.fragments: list[str] = []


class Accumulator:
    """Builds the assistant Message from stream events, the same way for every protocol.

    Parts keep the order in which they started, so interleaved reasoning and tool calls replay
    in the order the provider produced them (Anthropic requires that for thinking blocks).
    """

    def __init__(self, provider: str | None = None, model: str | None = None) -> None:
        self.provider, self.model = provider, model
        self._parts: list[Part | _PendingCall | list[str]] = []
        self._open: dict[int, _PendingCall] = {}
        self._reasoning_idx: int | None = None
        self._reasoning_text: list[str] = []
        self._reasoning_sig: str | None = None
        self._reasoning_red: str | None = None
        self._text: list[str] | None = None
        self.usage: Usage | None = None
        self.finish: Finish | None = None

    def _close_reasoning(self) -> None:
        if self._reasoning_idx is not None:
            self._parts[self._reasoning_idx] = Reasoning(
                "".join(self._reasoning_text), self._reasoning_sig, self._reasoning_red, self.provider, self.model
            )
            self._reasoning_idx = None
            self._reasoning_text, self._reasoning_sig, self._reasoning_red = [], None, None

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            if self._text is None:
                self._close_reasoning()
                self._text = []
                self._parts.append(self._text)
            self._text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            if self._reasoning_idx is not None and (self._reasoning_sig or self._reasoning_red):
                self._close_reasoning()
            if self._reasoning_idx is None:
                self._text = None
                self._reasoning_idx = len(self._parts)
                self._parts.append(Reasoning())
            self._reasoning_text.append(event.text)
            if event.signature:
                self._reasoning_sig = (self._reasoning_sig or "") + event.signature
            if event.redacted:
                self._reasoning_red = event.redacted
        elif isinstance(event, ToolCallStart):
            self._close_reasoning()
            self._text = None
            pending = _PendingCall(event.id, event.name, event.signature)
            self._open[event.index] = pending
            self._parts.append(pending)
        elif isinstance(event, ToolCallDelta):
            call = self._open.get(event.index)
            if call is None:
                raise ValueError(f"tool-call arguments for index {event.index} arrived before its start")
            call.fragments.append(event.arguments)
        elif isinstance(event, ToolCallEnd):
            self._open.pop(event.index, None)
        elif isinstance(event, UsageEvent):
            self.usage = event.usage
        else:
            self.finish = event

    def feed(self, events: Iterable[StreamEvent]) -> Accumulator:
        for e in events:
            self.add(e)
        return self

    def _finish_parts(self) -> Iterator[Part]:
        self._close_reasoning()
        for p in self._parts:
            if isinstance(p, list):
                if p:
                    yield Text("".join(p))
            elif isinstance(p, _PendingCall):
                args = parse_arguments("".join(p.fragments))
                yield ToolCall(p.id, p.name, args, p.signature, self.provider, self.model)
            else:
                yield p

    def message(self) -> Message:
        parts = tuple(self._finish_parts())
        reason = self.finish.reason if self.finish else None
        if reason == "stop" and any(isinstance(p, ToolCall) for p in parts):
            reason = "tool_calls"
        meta = dict(self.finish.meta) if self.finish else {}
        return Message("assistant", parts, self.provider, self.model, self.usage, reason, meta)


#: ``Message.meta`` key of the neutral "cache up to here" mark: with prompt caching on, the
#: prompt is cached up to and including this message (Anthropic cache_control on its last block,
#: a Bedrock cachePoint after it), besides the system prompt, the tools and the newest message.
CACHE_HERE = "cache_here"


def cache_here(message: Message) -> Message:
    """The same message, marked as the end of a prefix worth caching (a long document, a brief)."""
    return replace(message, meta={**message.meta, CACHE_HERE: True})


def parse_arguments(raw: str) -> dict[str, Any]:
    """Tool-call arguments as a dict; invalid JSON is kept verbatim rather than lost."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_value": value}


def with_parts(message: Message, parts: Iterable[Part]) -> Message:
    return replace(message, parts=tuple(parts))


# --- JSON ------------------------------------------------------------------------------------


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


_PART_CLASSES: tuple[type[Part], ...] = (Text, Image, Document, ToolCall, ToolResult, Reasoning)
_PART_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in _PART_CLASSES}
_PART_TYPES: dict[str, type[Part]] = {
    str(next(f.default for f in fields(cls) if f.name == "type")): cls for cls in _PART_CLASSES
}
_USAGE_FIELDS = tuple(f.name for f in fields(Usage))
_ROLES = frozenset(get_args(Role))
_STATES = frozenset(_STATE_ORDER)


def _part_record(part: Part) -> dict[str, Any]:
    record = {name: getattr(part, name) for name in _PART_FIELDS[type(part)]}
    if type(part) is ToolResult:
        record["content"] = [_part_record(p) for p in part.content]
    return record


def _message_record(m: Message) -> dict[str, Any]:
    usage = m.usage
    return {
        "role": m.role, "parts": [_part_record(p) for p in m.parts], "provider": m.provider, "model": m.model,
        "usage": None if usage is None else {name: getattr(usage, name) for name in _USAGE_FIELDS},
        "finish_reason": m.finish_reason, "meta": m.meta,
    }


def _stored_part(record: dict[str, Any]) -> Part:
    cls = _PART_TYPES[record["type"]]
    if cls is ToolResult:
        content = tuple(_stored_part(p) for p in record["content"])
        if not all(type(p) is Text or type(p) is Image for p in content):
            raise ValueError("a tool result holds text and images only")
        record = {**record, "content": content}
    part: Part = cls(**record)
    return part


def _stored_message(record: dict[str, Any]) -> Message:
    """Raises (TypeError, ValueError, KeyError) for any shape ``to_json`` does not write."""
    role, reason, usage, meta = record["role"], record.get("finish_reason"), record.get("usage"), record.get("meta", {})
    if role not in _ROLES or (reason is not None and reason not in FINISH_REASONS) or type(meta) is not dict:
        raise ValueError("not a stored message")
    counts = None if usage is None else Usage(**usage)
    if counts is not None and counts.state not in _STATES:
        raise ValueError("not a stored usage state")
    parts = tuple(_stored_part(p) for p in record["parts"])
    return Message(role, parts, record.get("provider"), record.get("model"), counts, reason, meta)


@cache
def _message_adapter() -> TypeAdapter[Message]:
    from pydantic import TypeAdapter

    return TypeAdapter(Message)


@cache
def _history_adapter() -> TypeAdapter[list[Message]]:
    from pydantic import TypeAdapter

    return TypeAdapter(list[Message])


@cache
def _event_adapter() -> TypeAdapter[StreamEvent]:
    from typing import Annotated

    from pydantic import Field, TypeAdapter

    return cast("TypeAdapter[StreamEvent]", TypeAdapter(Annotated[StreamEvent, Field(discriminator="type")]))


def dump_history(messages: Iterable[Message]) -> str:
    return _history_adapter().dump_json(list(messages)).decode()


def load_history(raw: str | bytes) -> list[Message]:
    return _history_adapter().validate_json(raw)


def dump_event(event: StreamEvent) -> str:
    return _event_adapter().dump_json(event).decode()


def load_event(raw: str | bytes) -> StreamEvent:
    return _event_adapter().validate_json(raw)
