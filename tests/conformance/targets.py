"""The providers a history is continued on, and the one call that turns a request into what
would be sent: the adapter's ``encode`` (or, for claude-sdk, the prompt and CLI arguments)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from ironspire.catalog.models import ModelSpec, Registry, dynamic_model
from ironspire.catalog.providers import builtin
from ironspire.protocols.anthropic_messages import AnthropicMessages
from ironspire.protocols.base import ChatRequest, HttpProtocol, Secrets, Target
from ironspire.protocols.bedrock_converse import BedrockConverse
from ironspire.protocols.claude_cli import command, plan_turn
from ironspire.protocols.gemini import Gemini
from ironspire.protocols.ollama_chat import OllamaChat
from ironspire.protocols.openai_chat import OpenAIChat
from ironspire.protocols.openai_responses import OpenAIResponses
from ironspire.transport import Transport

#: Claude on Bedrock is not a built-in (the catalogue lists Nova, Llama, Mistral); the recorded
#: Converse exchange with signed reasoning used this inference profile.
BEDROCK_CLAUDE = ModelSpec(
    "bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", "Claude Sonnet 4 (Bedrock)", 200_000, 64_000,
    tools=True, vision=True, documents=True, reasoning=True, source="configured",
)
#: Ollama models come from discovery; this is what discovery reports for a vision+thinking model.
OLLAMA_VISION = dynamic_model("ollama", "qwen3-vl:8b", context_window=131_072, vision=True, reasoning=True)

#: name -> (provider id, model id or spec)
TARGETS: dict[str, tuple[str, str | ModelSpec]] = {
    "anthropic": ("claude-api", "claude-sonnet-5"),
    "openai": ("openai", "gpt-4.1"),
    "responses": ("openai", "gpt-6.1-sol"),  # the same provider on the Responses API, another model
    "mistral": ("mistral", "mistral-large-2512"),
    "deepseek": ("deepseek", "deepseek-flash"),
    "gemini": ("google", "gemini-3.8-flash"),
    "bedrock": ("bedrock", BEDROCK_CLAUDE),
    "ollama": ("ollama", OLLAMA_VISION),
    "claude-sdk": ("claude-sdk", "claude-sonnet-5"),
}
#: the same providers, other models (a model switch inside one provider), and a producer only
OTHER_MODELS: dict[str, tuple[str, str | ModelSpec]] = {
    "gemini-2.5": ("google", "gemini-2.5-flash-lite"),
    "bedrock-nova": ("bedrock", "us.amazon.nova-pro-v1:0"),
    "deepseek-thinking": ("deepseek", "deepseek-v4-pro"),
    "kimi": ("together", dynamic_model("together", "moonshotai/Kimi-K2-Instruct-0905", context_window=262_144)),
}
#: the protocol family each target name speaks
FAMILY = {
    "anthropic": "anthropic", "openai": "openai", "mistral": "openai", "deepseek": "openai",
    "gemini": "gemini", "gemini-2.5": "gemini", "bedrock": "bedrock", "bedrock-nova": "bedrock",
    "ollama": "ollama", "claude-sdk": "claude-sdk", "kimi": "openai",
    "deepseek-thinking": "openai", "responses": "responses",
}
_PROTOCOLS: dict[str, type[HttpProtocol]] = {
    "anthropic": AnthropicMessages, "openai": OpenAIChat, "responses": OpenAIResponses, "gemini": Gemini,
    "bedrock": BedrockConverse, "ollama": OllamaChat,
}
_SECRETS = {
    "bedrock": Secrets({"access_key_id": "AKIDEXAMPLECONFORMANCE", "secret_access_key": "conformance-secret-key"}),
}


@cache
def make_target(name: str, tools: bool = True) -> Target:
    provider_id, model = {**TARGETS, **OTHER_MODELS}[name]
    spec = model if isinstance(model, ModelSpec) else Registry().get(provider_id, model)
    if not tools:
        spec = replace(spec, tools=False)
    provider = builtin(provider_id)
    secrets = _SECRETS.get(provider_id, Secrets({"api_key": f"conformance-key-{provider_id}"}))
    return Target(provider, spec, provider.base_url, secrets)


@dataclass(frozen=True)
class Encoded:
    """What the target would be sent: a JSON body, or (claude-sdk) the user content and argv."""

    target: str
    body: Any

    def strings(self) -> list[str]:
        out: list[str] = []
        _strings(self.body, out)
        return out


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k))
            _strings(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _strings(v, out)


def encode(name: str, request: ChatRequest, target: Target) -> Encoded:
    family = FAMILY[name]
    if family == "claude-sdk":
        content, resume = plan_turn(request, target)
        argv = command("claude", request, target, resume)
        return Encoded(name, {"content": content, "argv": argv, "resume": resume})
    wire = _PROTOCOLS[family](Transport()).encode(request, target, stream=True)
    body = wire.json if wire.json is not None else json.loads(wire.content or b"null")
    return Encoded(name, body)
