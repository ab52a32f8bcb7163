"""The model registry: 46 built-in definitions plus models found or configured at runtime.

Built-ins come from a data file shipped in the package so that a price change is a data edit,
not a code change. Providers whose catalogue is the user's own (Ollama, Groq, Together,
Fireworks, Azure deployments, custom endpoints) have no static entries; their models are
registered at runtime by discovery or configuration and live beside the built-ins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from ironspire.catalog.providers import builtin
from ironspire.catalog.quirks import NO_QUIRKS, Quirks, model_quirks
from ironspire.errors import ModelNotFound
from ironspire.messages import Usage

if TYPE_CHECKING:
    from importlib.abc import ResourceLoader

Capability: TypeAlias = Literal["tools", "vision", "documents", "reasoning", "streaming"]
#: an API a model needs instead of its provider's usual one (OpenAI's reasoning models need
#: Responses to use tools with reasoning on)
Api: TypeAlias = Literal["responses"]
CAPABILITIES: tuple[Capability, ...] = ("tools", "vision", "documents", "reasoning", "streaming")

# Providers whose model list is whatever the endpoint serves: any id is accepted there and
# described with these conservative defaults until discovery says more.
DYNAMIC_PROVIDERS = frozenset({"ollama", "groq", "together", "fireworks", "azure-openai"})


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    def cost(self, usage: Usage) -> float:
        return (
            usage.input * self.input
            + usage.output * self.output
            + usage.cache_read * self.cache_read
            + usage.cache_write * self.cache_write
        ) / 1_000_000


@dataclass(frozen=True, slots=True)
class ModelSpec:
    provider: str
    id: str
    display_name: str
    context_window: int
    max_output_tokens: int
    tools: bool = True
    vision: bool = False
    documents: bool = False
    """Whether the model reads Document parts (PDF and other files) in its provider's own form."""
    reasoning: bool = False
    streaming: bool = True
    prompt_caching: bool = False
    price: Price = field(default_factory=Price)
    deprecation: str | None = None
    status: str = "active"
    quirks: Quirks = NO_QUIRKS
    """How this model differs from its protocol's norm (that protocol's model-quirks class)."""
    source: Literal["builtin", "discovered", "configured"] = "builtin"
    context_known: bool = True
    """False when ``context_window`` is a placeholder: nobody (data file, discovery, the user)
    said how large the window is. Pre-flight does not refuse a request on such a guess."""
    api: Api | None = None
    """The API this model needs where its provider speaks more than one (None: the provider's)."""

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.id}"

    def has(self, capability: Capability) -> bool:
        return bool(getattr(self, capability))

    def cost(self, usage: Usage) -> float:
        return self.price.cost(usage)


def _from_record(r: dict[str, Any]) -> ModelSpec:
    return ModelSpec(
        provider=r["provider"],
        id=r["id"],
        display_name=r["display_name"],
        context_window=r["context_window"],
        max_output_tokens=r["max_output_tokens"],
        tools=r["tools"],
        vision=r["vision"],
        documents=r.get("documents", False),
        reasoning=r["reasoning"],
        streaming=r["streaming"],
        prompt_caching=r["prompt_caching"],
        price=Price(**r["price"]),
        deprecation=r["deprecation"],
        status=r["status"],
        quirks=model_quirks(builtin(r["provider"]).protocol, r["quirks"], f"models.json: {r['provider']}/{r['id']}"),
        api=r.get("api"),
    )


def builtin_data() -> str:
    """The text of the shipped models.json, read through the package's own loader (a directory
    or a zip alike) rather than importlib.resources, whose import is ~3 ms of every start-up."""
    loader = cast("ResourceLoader", __spec__.loader)
    return loader.get_data(os.path.join(os.path.dirname(__file__), "models.json")).decode("utf-8")


def load_builtins() -> list[ModelSpec]:
    return [_from_record(r) for r in json.loads(builtin_data())["models"]]


def dynamic_model(provider: str, model_id: str, **facts: Any) -> ModelSpec:
    """A model the registry has no facts for yet, described conservatively.

    Used for endpoints that serve whatever the user deployed; discovery replaces it with
    real facts (context length, capabilities) when the endpoint reports them. Unless the facts
    give a ``context_window``, the 8,192 here is a guess and the spec says so (``context_known``).
    """
    base: dict[str, Any] = dict(
        provider=provider, id=model_id, display_name=model_id, context_window=8_192,
        max_output_tokens=4_096, tools=True, vision=False, source="discovered",
        context_known="context_window" in facts,
    )
    base.update(facts)
    return ModelSpec(**base)


class Registry:
    """Lookup and listing over built-in and runtime models, keyed by (provider, model id)."""

    def __init__(self, builtins: Iterable[ModelSpec] | None = None) -> None:
        self._builtin: dict[tuple[str, str], ModelSpec] = {
            (m.provider, m.id): m for m in (load_builtins() if builtins is None else builtins)
        }
        self._runtime: dict[str, dict[str, ModelSpec]] = {}

    def register(self, spec: ModelSpec) -> None:
        self._runtime.setdefault(spec.provider, {})[spec.id] = spec

    def replace_runtime(self, provider: str, specs: Iterable[ModelSpec]) -> None:
        """Installs a fresh discovery result for one provider, dropping what it no longer lists."""
        self._runtime[provider] = {s.id: s for s in specs}

    def clear_runtime(self, provider: str) -> None:
        self._runtime.pop(provider, None)

    def __iter__(self) -> Iterator[ModelSpec]:
        yield from self._builtin.values()
        for models in self._runtime.values():
            yield from models.values()

    def __len__(self) -> int:
        return len(self._builtin) + sum(len(m) for m in self._runtime.values())

    def find(self, provider: str, model_id: str) -> ModelSpec | None:
        runtime = self._runtime.get(provider, {})
        spec = runtime.get(model_id) or self._builtin.get((provider, model_id))
        if spec is None and provider == "ollama" and ":" not in model_id:
            # Ollama resolves a bare name to its ":latest" tag; so must we, or the discovered
            # facts (context window) would be missed for the most common way to name a model.
            spec = runtime.get(model_id + ":latest")
        if spec is None and (provider in DYNAMIC_PROVIDERS or provider.startswith("custom-")):
            return dynamic_model(provider, model_id)
        return spec

    def get(self, provider: str, model_id: str) -> ModelSpec:
        spec = self.find(provider, model_id)
        if spec is None:
            known = [m.id for m in self.list(provider=provider)]
            if not known:
                known = [m.key for m in self]
            import difflib  # only to name close matches, never on a turn's path

            raise ModelNotFound(provider, model_id, suggestions=difflib.get_close_matches(model_id, known, n=3))
        return spec

    def list(self, provider: str | None = None, capability: Capability | None = None) -> list[ModelSpec]:
        return [
            m
            for m in self
            if (provider is None or m.provider == provider) and (capability is None or m.has(capability))
        ]


def with_facts(spec: ModelSpec, **facts: Any) -> ModelSpec:
    return replace(spec, **facts)
