"""Typed quirks: what one provider or model does differently from its protocol's norm.

Each protocol that has quirks has a frozen dataclass of them, named for the behaviour (the field
that carries the output cap, the tool-id alphabet, whether stream usage is asked for), never for
the vendor: two providers with the same behaviour share a value, and a new provider is data.
A typo is an error at import: a misspelt field is a TypeError where providers are declared, and
an unknown name in ``models.json`` raises ``ConfigurationError`` when the catalogue loads.

The classes live in the catalogue (not beside their adapters) because the catalogue's data sets
them and the catalogue sits below the protocols; the adapters read them with ``quirks_of``.

``NAMES`` maps the short names used in data files and listings to a (field, value) pair;
iterating a quirks value gives the names in force (what ``models list --json`` shows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from ironspire.errors import ConfigurationError

Q = TypeVar("Q", bound="Quirks")


@dataclass(frozen=True, slots=True)
class Quirks:
    """No quirks: the protocol's documented behaviour. Subclasses add fields and their names."""

    NAMES: ClassVar[Mapping[str, tuple[str, Any]]] = {}

    @classmethod
    def from_names(cls: type[Q], names: Iterable[str], where: str) -> Q:
        """The quirks named in data; an unknown name is a ConfigurationError naming ``where``."""
        values: dict[str, Any] = {}
        for name in names:
            if name not in cls.NAMES:
                known = ", ".join(sorted(cls.NAMES)) or "none"
                raise ConfigurationError(f"{where}: unknown quirk {name!r} for {cls.__name__} (known: {known}).")
            field, value = cls.NAMES[name]
            values[field] = value
        return cls(**values)

    def __iter__(self) -> Iterator[str]:
        for name, (field, value) in self.NAMES.items():
            if getattr(self, field) == value:
                yield name


NO_QUIRKS = Quirks()


_DEFAULTS: dict[type[Quirks], Quirks] = {}


def quirks_of(quirks: Quirks, cls: type[Q]) -> Q:
    """``quirks`` as ``cls`` when it is one; else ``cls``'s defaults (a spec of another protocol,
    or one that declared none), made once: adapters ask several times per request."""
    if isinstance(quirks, cls):
        return quirks
    default = _DEFAULTS.get(cls)
    if default is None:
        default = _DEFAULTS[cls] = cls()
    return default  # type: ignore[return-value]  # stored under its own class


# --- Chat Completions (openai_chat) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatCompletionsQuirks(Quirks):
    """How one Chat Completions endpoint differs from OpenAI's own."""

    stream_usage: bool = False
    """Send ``stream_options.include_usage`` so a streamed answer reports its usage."""
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """The body field that carries the output cap."""
    developer_role: bool = False
    """Reasoning models take the system prompt in a ``developer`` message."""
    url_form: Literal["openai", "azure"] = "openai"
    """``azure``: deployment URLs with ``api-version`` (or the v1 form), and an ``api-key`` header."""
    tool_id_style: Literal["openai", "alnum9"] = "openai"
    """``alnum9``: tool-call ids must be exactly 9 letters or digits."""
    image_url: Literal["object", "string"] = "object"
    """``string``: ``image_url`` is the data URL itself, not ``{"url": ...}``."""
    strict_order: bool = False
    """System prompt first and once; nothing but assistant/tool turns right after a tool turn."""
    required_tool_choice: Literal["required", "any"] = "required"
    """The ``tool_choice`` value that means "call some tool"."""
    strict_options: bool = False
    """Any field outside the endpoint's own schema is refused (422): only those are sent, and
    ``seed`` goes as ``random_seed``."""
    thinking_toggle: bool = False
    """Thinking is switched with a ``thinking: {type}`` field; efforts map to ``high``."""
    reasoning_replay_field: str | None = None
    """The assistant-message field that carries the model's own reasoning back to it."""
    reasoning_format_option: bool = False
    """Accepts the ``reasoning_format`` option."""
    logprobs_options: bool = True
    """Accepts ``logprobs`` / ``top_logprobs`` / ``logit_bias``."""
    inline_think: bool = False
    """Serves R1-style models that write their reasoning into the answer as ``<think>...</think>``:
    such a block opening the answer is reasoning (``protocols.inline_think``; the provider setting
    ``inline_think`` overrides this either way)."""
    prompt_cache_fields: frozenset[str] = frozenset()
    """The prompt-cache fields it takes (``prompt_cache_key``, ``prompt_cache_retention``), which a
    neutral cache request is turned into; elsewhere caching is automatic or the field refused."""


@dataclass(frozen=True, slots=True)
class ChatCompletionsModelQuirks(Quirks):
    """How one model behind Chat Completions differs from the protocol's norm."""

    NAMES: ClassVar[Mapping[str, tuple[str, Any]]] = {
        "no_sampling": ("sampling", False),
        "max_completion_tokens": ("max_tokens_field", "max_completion_tokens"),
        "thinking_enabled": ("thinking_default", "on"),
        "thinking_disabled": ("thinking_default", "off"),
    }

    sampling: bool = True
    """False: temperature and stop are rejected, so they are left out."""
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None
    """The output cap's field for this model, where it differs from the provider's."""
    thinking_default: Literal["model", "on", "off"] = "model"
    """Whether a thinking toggle (``ChatCompletionsQuirks.thinking_toggle``) defaults on or off."""


# --- Anthropic Messages and the Claude CLI ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessagesModelQuirks(Quirks):
    """How one Claude model differs from the Messages API's norm (also read by the CLI adapter)."""

    NAMES: ClassVar[Mapping[str, tuple[str, Any]]] = {
        "no_sampling": ("sampling", False),
        "no_forced_tool": ("forced_tool", False),
        "no_prefill": ("prefill", False),
        "thinking_always_on": ("thinking", "always_on"),
        "thinking_between_tools": ("thinking", "between_tools"),
    }

    sampling: bool = True
    """False: temperature / top_p / top_k are rejected."""
    forced_tool: bool = True
    """False: ``tool_choice`` naming one tool (or ``any``) is rejected."""
    prefill: bool = True
    """False: the request may not end on an assistant turn."""
    thinking: Literal["optional", "always_on", "between_tools"] = "optional"
    """Whether thinking can be turned off, and what "off" means for the model."""

    @property
    def thinks(self) -> bool:
        return self.thinking != "optional"


# --- Ollama ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OllamaModelQuirks(Quirks):
    """What discovery learned about one Ollama model."""

    NAMES: ClassVar[Mapping[str, tuple[str, Any]]] = {"remote": ("remote", True)}

    remote: bool = False
    """Served by a remote host through the local server (Ollama's cloud models)."""


#: the model-quirks class per protocol (protocols without model quirks take none)
MODEL_QUIRKS: Mapping[str, type[Quirks]] = {
    "openai_chat": ChatCompletionsModelQuirks,
    "anthropic_messages": MessagesModelQuirks,
    "claude_cli": MessagesModelQuirks,
    "ollama_chat": OllamaModelQuirks,
}


def model_quirks(protocol: str, names: Iterable[str], where: str) -> Quirks:
    return MODEL_QUIRKS.get(protocol, Quirks).from_names(names, where)


__all__ = [
    "NO_QUIRKS", "ChatCompletionsModelQuirks", "ChatCompletionsQuirks", "MessagesModelQuirks",
    "OllamaModelQuirks", "Quirks", "model_quirks", "quirks_of",
]
