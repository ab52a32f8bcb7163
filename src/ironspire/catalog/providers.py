"""The provider catalogue: every provider is data on top of one wire-protocol adapter.

A provider differs from its siblings only in where it lives, how it authenticates and a few
typed quirks (``catalog.quirks``); keeping that as data (not as a subclass per vendor) means a fix in an adapter
reaches every provider that speaks its protocol, and a custom endpoint is just one more record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from ironspire.catalog.quirks import NO_QUIRKS, ChatCompletionsQuirks, Quirks
from ironspire.errors import ConfigurationError

Group: TypeAlias = Literal["primary", "cloud", "openai-compatible", "custom"]
Protocol: TypeAlias = Literal[
    "anthropic_messages", "claude_cli", "openai_chat", "openai_responses", "ollama_chat", "gemini", "bedrock_converse"
]
GROUPS: tuple[Group, ...] = ("primary", "cloud", "openai-compatible", "custom")
GROUP_TITLES: dict[Group, str] = {
    "primary": "Primary",
    "cloud": "Cloud",
    "openai-compatible": "OpenAI-Compatible",
    "custom": "Custom endpoints",
}


@dataclass(frozen=True, slots=True)
class AuthField:
    """One value a provider needs. Secret fields live in the keychain; the rest in settings."""

    name: str
    label: str
    secret: bool = True
    required: bool = True
    env: tuple[str, ...] = ()
    default: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    id: str
    group: Group
    display_name: str
    protocol: Protocol
    base_url: str
    auth: tuple[AuthField, ...] = ()
    quirks: Quirks = NO_QUIRKS
    """How this provider differs from its protocol's norm (that protocol's quirks class)."""
    lists_models: bool = False
    """Whether models are discovered at runtime (GET {base}/models, Ollama /api/tags)."""
    billed: bool = True
    """False where use costs nothing per token (local Ollama, a Claude subscription)."""
    auth_note: str = ""
    custom_models: tuple[str, ...] = field(default=())

    @property
    def secret_fields(self) -> tuple[AuthField, ...]:
        return tuple(f for f in self.auth if f.secret)

    def field(self, name: str) -> AuthField:
        for f in self.auth:
            if f.name == name:
                return f
        names = ", ".join(f.name for f in self.auth) or "none"
        raise ConfigurationError(f"{self.id} has no credential field {name!r} (fields: {names}).")


def _key(env: str, *more: str) -> AuthField:
    return AuthField("api_key", "API key", env=(env, *more))


#: the one quirk most OpenAI-compatible endpoints share: usage is reported only when asked for
_STREAM_USAGE = ChatCompletionsQuirks(stream_usage=True)
#: hosts of open-weight models, R1-style reasoners among them, that pass ``<think>`` on in content
_OPEN_WEIGHTS = ChatCompletionsQuirks(stream_usage=True, inline_think=True)
#: OpenAI's prompt-cache routing key and extended retention (Azure takes both too)
_OPENAI_CACHE = frozenset({"prompt_cache_key", "prompt_cache_retention"})

# In the order of the product's specification: Primary, Cloud, OpenAI-compatible.
BUILTIN_PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        "claude-sdk", "primary", "Claude SDK", "claude_cli", "",
        billed=False, auth_note="a logged-in Claude CLI (Max or Pro subscription)",
    ),
    ProviderSpec(
        "claude-api", "primary", "Claude API", "anthropic_messages", "https://api.anthropic.com",
        auth=(_key("ANTHROPIC_API_KEY"),), lists_models=False,
    ),
    ProviderSpec(
        "openai", "primary", "OpenAI", "openai_chat", "https://api.openai.com/v1",
        auth=(_key("OPENAI_API_KEY"),),
        quirks=ChatCompletionsQuirks(stream_usage=True, max_tokens_field="max_completion_tokens", developer_role=True,
                                     prompt_cache_fields=_OPENAI_CACHE),
    ),
    ProviderSpec(
        "ollama", "primary", "Ollama", "ollama_chat", "http://localhost:11434",
        auth=(), lists_models=True, billed=False, auth_note="none (local server)",
    ),
    ProviderSpec(
        "google", "cloud", "Google Gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta",
        auth=(_key("GEMINI_API_KEY", "GOOGLE_API_KEY"),),
    ),
    ProviderSpec(
        "bedrock", "cloud", "AWS Bedrock", "bedrock_converse", "",
        auth=(
            AuthField("access_key_id", "AWS access key ID", env=("AWS_ACCESS_KEY_ID",)),
            AuthField("secret_access_key", "AWS secret access key", env=("AWS_SECRET_ACCESS_KEY",)),
            AuthField("session_token", "AWS session token", required=False, env=("AWS_SESSION_TOKEN",)),
            AuthField("region", "AWS region", secret=False, env=("AWS_REGION", "AWS_DEFAULT_REGION"),
                      default="us-east-1"),
        ),
    ),
    ProviderSpec(
        "azure-openai", "cloud", "Azure OpenAI", "openai_chat", "",
        auth=(
            _key("AZURE_OPENAI_API_KEY"),
            AuthField("base_url", "Base URL", secret=False, env=("AZURE_OPENAI_ENDPOINT",)),
            AuthField("deployment", "Deployment name", secret=False, env=("AZURE_OPENAI_DEPLOYMENT",)),
            AuthField("api_version", "API version", secret=False, required=False,
                      env=("OPENAI_API_VERSION",), default="2024-10-21"),
        ),
        quirks=ChatCompletionsQuirks(url_form="azure", stream_usage=True, max_tokens_field="max_completion_tokens",
                                     prompt_cache_fields=_OPENAI_CACHE),
    ),
    ProviderSpec(
        "mistral", "openai-compatible", "Mistral", "openai_chat", "https://api.mistral.ai/v1",
        auth=(_key("MISTRAL_API_KEY"),),
        quirks=ChatCompletionsQuirks(tool_id_style="alnum9", image_url="string", strict_order=True,
                                     required_tool_choice="any", strict_options=True,
                                     # the key only: the recorded Mistral cache exchange sends it
                                     prompt_cache_fields=frozenset({"prompt_cache_key"})),
    ),
    ProviderSpec(
        "deepseek", "openai-compatible", "DeepSeek", "openai_chat", "https://api.deepseek.com",
        auth=(_key("DEEPSEEK_API_KEY"),),
        quirks=ChatCompletionsQuirks(stream_usage=True, thinking_toggle=True,
                                     reasoning_replay_field="reasoning_content"),
    ),
    ProviderSpec(
        "xai", "openai-compatible", "xAI Grok", "openai_chat", "https://api.x.ai/v1",
        auth=(_key("XAI_API_KEY"),),
        quirks=_STREAM_USAGE,
    ),
    ProviderSpec(
        "groq", "openai-compatible", "Groq", "openai_chat", "https://api.groq.com/openai/v1",
        auth=(_key("GROQ_API_KEY"),), lists_models=True,
        quirks=ChatCompletionsQuirks(stream_usage=True, reasoning_format_option=True, logprobs_options=False,
                                     inline_think=True),
    ),
    ProviderSpec(
        "together", "openai-compatible", "Together AI", "openai_chat", "https://api.together.xyz/v1",
        auth=(_key("TOGETHER_API_KEY"),), lists_models=True,
        quirks=_OPEN_WEIGHTS,
    ),
    ProviderSpec(
        "fireworks", "openai-compatible", "Fireworks AI", "openai_chat", "https://api.fireworks.ai/inference/v1",
        auth=(_key("FIREWORKS_API_KEY"),), lists_models=True,
        quirks=_OPEN_WEIGHTS,
    ),
)

_BY_ID = {p.id: p for p in BUILTIN_PROVIDERS}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


@dataclass(frozen=True, slots=True)
class CustomEndpoint:
    """A user-defined OpenAI-compatible endpoint (Settings > Providers > Add Custom Endpoint)."""

    name: str
    base_url: str
    model_id: str
    display_name: str | None = None
    context_window: int = 32_768
    max_output_tokens: int = 4_096
    tools: bool = True
    vision: bool = False
    has_key: bool = False

    def __post_init__(self) -> None:
        # A reply cannot be longer than the window it shares with the prompt; a small local model
        # (2K context) must not be asked for the 4K default.
        if self.max_output_tokens > self.context_window:
            object.__setattr__(self, "max_output_tokens", self.context_window)

    @property
    def slug(self) -> str:
        return slugify(self.name)

    @property
    def provider_id(self) -> str:
        return f"custom-{self.slug}"

    def spec(self) -> ProviderSpec:
        auth = (AuthField("api_key", "API key (Bearer)", required=False),)
        return ProviderSpec(
            self.provider_id, "custom", self.name, "openai_chat", self.base_url.rstrip("/"),
            auth=auth, lists_models=True, quirks=_OPEN_WEIGHTS, custom_models=(self.model_id,),
        )


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not _SLUG.match(slug):
        raise ConfigurationError(
            f"custom endpoint name {name!r} gives no usable id.",
            hint="Use letters, digits and dashes, up to 40 characters.",
        )
    return slug


def builtin(provider_id: str) -> ProviderSpec:
    """The built-in provider with this id; ConfigurationError lists the valid ids otherwise."""
    try:
        return _BY_ID[provider_id]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(provider_id, list(_BY_ID), n=3)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise ConfigurationError(
            f"unknown provider {provider_id!r}.",
            hint=hint + "Known: " + ", ".join(_BY_ID) + ", or custom-<name> for a custom endpoint.",
        ) from None


def is_builtin(provider_id: str) -> bool:
    return provider_id in _BY_ID
