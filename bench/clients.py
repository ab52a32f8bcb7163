"""The clients under test, each reduced to the same three calls: open, send, stream.

Every client asks the loopback server for the same answer and returns what it decoded
(text + token usage), so the harness can check that each one really did the whole job before
its timings count. A client is built for one wire format ("openai" or "anthropic").

Only raw httpx and Ironspire are needed by the smoke test; the SDKs and LiteLLM are imported
when their client is opened, so the harness runs without them installed.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from bench import payloads

FORMATS = ("openai", "anthropic")
MAX_TOKENS = 256
FAKE_KEY = "sk-bench-loopback-not-a-key"


@dataclass(frozen=True, slots=True)
class Result:
    text: str
    usage: tuple[int, int]  # (input tokens, output tokens)
    ttfc: float | None = None  # seconds from the call to the first text chunk (streams only)

    @property
    def complete(self) -> bool:
        return self.text == payloads.TEXT and self.usage == (payloads.INPUT_TOKENS, payloads.OUTPUT_TOKENS)


class Client(ABC):
    """``slot`` lets a client that keeps per-conversation state (an Ironspire agent) give each
    concurrent worker its own conversation; stateless clients ignore it."""

    key: str = ""
    label: str = ""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    @property
    def name(self) -> str:
        return self.label

    @abstractmethod
    async def open(self, base_urls: list[str]) -> None:
        """``base_urls`` are server roots (http://127.0.0.1:PORT); most clients use the first."""

    @abstractmethod
    async def send(self, slot: int = 0) -> Result: ...

    @abstractmethod
    async def stream(self, slot: int = 0) -> Result: ...

    async def close(self) -> None:
        return None


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": payloads.PROMPT}]


# --- raw httpx: the floor ------------------------------------------------------------------


def _answer(fmt: str, data: dict[str, Any]) -> Result:
    """Text and usage of a whole (non-streamed) answer, decoded as a hand-written client would."""
    u = data["usage"]
    if fmt == "openai":
        return Result(data["choices"][0]["message"]["content"], (u["prompt_tokens"], u["completion_tokens"]))
    text = "".join(b["text"] for b in data["content"] if b["type"] == "text")
    return Result(text, (u["input_tokens"], u["output_tokens"]))


def _event(fmt: str, ev: dict[str, Any], usage: tuple[int, int]) -> tuple[str | None, tuple[int, int], bool]:
    """(text, usage so far, stream over) for one decoded SSE ``data:`` payload."""
    if fmt == "openai":
        text = ev["choices"][0]["delta"].get("content") if ev["choices"] else None
        if ev.get("usage"):
            usage = (ev["usage"]["prompt_tokens"], ev["usage"]["completion_tokens"])
        return text, usage, False
    kind = ev["type"]
    if kind == "content_block_delta":
        return ev["delta"].get("text"), usage, False
    if kind == "message_start":
        return None, (ev["message"]["usage"]["input_tokens"], usage[1]), False
    if kind == "message_delta":
        return None, (usage[0], ev["usage"]["output_tokens"]), False
    return None, usage, kind == "message_stop"


class RawHttpx(Client):
    """What a hand-written client costs: one pooled AsyncClient, json.loads per SSE line."""

    key, label = "httpx", "raw httpx"
    module = "httpx"

    async def open(self, base_urls: list[str]) -> None:
        mod: Any = importlib.import_module(self.module)
        self.http = mod.AsyncClient(limits=mod.Limits(max_connections=256, max_keepalive_connections=256),
                                    timeout=60.0, trust_env=False)
        self._request_parts(base_urls)

    def _request_parts(self, base_urls: list[str]) -> None:
        """URLs, bodies and headers: the same bytes for every raw client."""
        self.urls = [self._url(b) for b in base_urls]
        model = payloads.OPENAI_MODEL if self.fmt == "openai" else payloads.ANTHROPIC_MODEL
        self.body = {"model": model, "messages": _messages(), "max_tokens": MAX_TOKENS}
        self.stream_body = {**self.body, "stream": True}
        if self.fmt == "openai":
            self.headers = {"authorization": f"Bearer {FAKE_KEY}"}
            self.stream_body["stream_options"] = {"include_usage": True}
        else:
            self.headers = {"x-api-key": FAKE_KEY, "anthropic-version": "2023-06-01"}

    def _url(self, base: str) -> str:
        return base + ("/v1/chat/completions" if self.fmt == "openai" else "/v1/messages")

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, slot: int = 0) -> Result:
        r = await self.http.post(self.urls[slot % len(self.urls)], json=self.body, headers=self.headers)
        r.raise_for_status()
        return _answer(self.fmt, r.json())

    async def stream(self, slot: int = 0) -> Result:
        t0 = time.perf_counter()
        ttfc: float | None = None
        parts: list[str] = []
        usage = (0, 0)
        url = self.urls[slot % len(self.urls)]
        async with self.http.stream("POST", url, json=self.stream_body, headers=self.headers) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                raw = line[5:].strip()
                if raw == "[DONE]":
                    break
                text, usage, stop = _event(self.fmt, json.loads(raw), usage)
                if stop:
                    break
                if text:
                    if ttfc is None:
                        ttfc = time.perf_counter() - t0
                    parts.append(text)
        return Result("".join(parts), usage, ttfc)


class RawHttpx2(RawHttpx):
    """The same hand-written client on httpx2, the httpx fork the official SDKs now build on."""

    key, label = "httpx2", "raw httpx2"
    module = "httpx2"


class RawAiohttp(RawHttpx):
    """The same hand-written client on aiohttp (LiteLLM's default transport): one ClientSession
    whose connector keeps up to 256 connections per host, lines read off the response stream."""

    key, label = "aiohttp", "raw aiohttp"

    async def open(self, base_urls: list[str]) -> None:
        import aiohttp

        self._request_parts(base_urls)
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=256)
        self.session: Any = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60.0),
                                                  trust_env=False)

    async def close(self) -> None:
        await self.session.close()

    async def send(self, slot: int = 0) -> Result:
        url = self.urls[slot % len(self.urls)]
        async with self.session.post(url, json=self.body, headers=self.headers) as r:
            r.raise_for_status()
            data = json.loads(await r.read())
        return _answer(self.fmt, data)

    async def stream(self, slot: int = 0) -> Result:
        t0 = time.perf_counter()
        ttfc: float | None = None
        parts: list[str] = []
        usage = (0, 0)
        url = self.urls[slot % len(self.urls)]
        async with self.session.post(url, json=self.stream_body, headers=self.headers) as r:
            r.raise_for_status()
            async for raw_line in r.content:  # aiohttp's StreamReader yields one line at a time
                if not raw_line.startswith(b"data:"):
                    continue
                raw = raw_line[5:].strip()
                if raw == b"[DONE]":
                    break
                text, usage, stop = _event(self.fmt, json.loads(raw), usage)
                if stop:
                    break
                if text:
                    if ttfc is None:
                        ttfc = time.perf_counter() - t0
                    parts.append(text)
        return Result("".join(parts), usage, ttfc)


# --- Ironspire -----------------------------------------------------------------------------


def _ironspire_env() -> None:
    """No keychain, a key in the environment for claude-api: the harness must never touch the
    machine's real credentials."""
    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    os.environ["ANTHROPIC_API_KEY"] = FAKE_KEY


def _usage(message: Any) -> tuple[int, int]:
    u = message.usage
    return (u.input, u.output) if u is not None else (0, 0)


def _from_events(events: list[Any], t0: float, first: float | None) -> Result:
    from ironspire.messages import TextDelta, UsageEvent

    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    inp = out = 0
    for e in events:
        if isinstance(e, UsageEvent):
            inp, out = e.usage.input or inp, e.usage.output or out
    return Result(text, (inp, out), None if first is None else first - t0)


class IronspireProtocol(Client):
    """The protocol layer alone: adapter + transport, no workspace, no persistence."""

    key, label = "iron-proto", "ironspire protocol"

    async def open(self, base_urls: list[str]) -> None:
        _ironspire_env()
        from ironspire.catalog.models import Registry, dynamic_model
        from ironspire.catalog.providers import CustomEndpoint, builtin
        from ironspire.messages import Message
        from ironspire.protocols import backend_for
        from ironspire.protocols.base import ChatRequest, Secrets, Target
        from ironspire.transport import Transport

        self.transport = Transport(max_connections=256)
        self.request = ChatRequest(messages=(Message.user(payloads.PROMPT),), max_tokens=MAX_TOKENS)
        self.targets: list[Any] = []
        if self.fmt == "openai":
            self.backend = backend_for("openai_chat", self.transport)
            for i, base in enumerate(base_urls):
                spec = CustomEndpoint(f"bench{i}", base + "/v1", payloads.OPENAI_MODEL).spec()
                model = dynamic_model(spec.id, payloads.OPENAI_MODEL)
                self.targets.append(Target(provider=spec, model=model, base_url=spec.base_url))
        else:
            self.backend = backend_for("anthropic_messages", self.transport)
            spec = builtin("claude-api")
            model = Registry().get("claude-api", payloads.ANTHROPIC_MODEL)
            secrets = Secrets({"api_key": FAKE_KEY})
            self.targets = [Target(provider=spec, model=model, base_url=b, secrets=secrets) for b in base_urls]

    async def close(self) -> None:
        await self.transport.close()

    async def send(self, slot: int = 0) -> Result:
        msg = await self.backend.complete(self.request, self.targets[slot % len(self.targets)])
        return Result(msg.text, _usage(msg))

    async def stream(self, slot: int = 0) -> Result:
        from ironspire.messages import TextDelta

        t0 = time.perf_counter()
        first: float | None = None
        events = []
        async for ev in self.backend.stream(self.request, self.targets[slot % len(self.targets)]):
            if first is None and isinstance(ev, TextDelta):
                first = time.perf_counter()
            events.append(ev)
        return _from_events(events, t0, first)


class IronspireAgent(Client):
    """The whole product path: ``agent.send`` / ``agent.stream`` in a Workspace, including the
    SQLite commit of both messages and the usage-ledger row.

    Each timed turn goes to a fresh agent created beforehand (``prepare``), so every request
    carries the same one-message history as the other clients' requests; otherwise the
    conversation (and the bytes sent) would grow with every turn.
    """

    key, label = "iron-agent", "ironspire agent"

    def __init__(self, fmt: str, home: str | None = None) -> None:
        super().__init__(fmt)
        self.home = home
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.pools: list[list[Any]] = []
        self.created = 0

    async def open(self, base_urls: list[str]) -> None:
        _ironspire_env()
        from ironspire.catalog.providers import CustomEndpoint
        from ironspire.workspace import Workspace

        if self.home is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ironspire-bench-")
            self.home = self._tmp.name
        self.ws = Workspace.open(self.home)
        self.routes: list[tuple[str, str]] = []
        if self.fmt == "openai":
            for i, base in enumerate(base_urls):
                spec = self.ws.add_custom_endpoint(CustomEndpoint(f"bench{i}", base + "/v1", payloads.OPENAI_MODEL))
                self.routes.append((spec.id, payloads.OPENAI_MODEL))
        else:
            self.ws.set_provider_setting("claude-api", "base_url", base_urls[0])
            self.routes.append(("claude-api", payloads.ANTHROPIC_MODEL))
        self.pools = [[] for _ in self.routes]

    def prepare(self, n: int) -> None:
        """Creates ``n`` fresh agents for the next ``n`` turns, spread over the routes (untimed)."""
        for _ in range(n):
            i = self.created % len(self.routes)
            pid, model = self.routes[i]
            self.pools[i].append(self.ws.create_agent(f"{self.fmt}-{self.created}", pid, model))
            self.created += 1

    def _agent(self, slot: int) -> Any:
        pool = self.pools[slot % len(self.routes)]
        while not pool:
            self.prepare(len(self.routes))
        return pool.pop()

    async def close(self) -> None:
        await self.ws.aclose()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def send(self, slot: int = 0) -> Result:
        msg = await self._agent(slot).send(payloads.PROMPT)
        return Result(msg.text, _usage(msg))

    async def stream(self, slot: int = 0) -> Result:
        from ironspire.messages import TextDelta

        agent = self._agent(slot)
        t0 = time.perf_counter()
        first: float | None = None
        events = []
        async for ev in agent.stream(payloads.PROMPT):
            if first is None and isinstance(ev, TextDelta):
                first = time.perf_counter()
            events.append(ev)
        return _from_events(events, t0, first)


# --- official SDKs -------------------------------------------------------------------------


class OfficialSDK(Client):
    """The openai SDK for the OpenAI format, the anthropic SDK for the Anthropic format."""

    key, label = "sdk", "official SDK"

    @property
    def name(self) -> str:
        return "openai SDK" if self.fmt == "openai" else "anthropic SDK"

    async def open(self, base_urls: list[str]) -> None:
        if self.fmt == "openai":
            import openai

            self.client: Any = openai.AsyncOpenAI(base_url=base_urls[0] + "/v1", api_key=FAKE_KEY)
        else:
            import anthropic

            self.client = anthropic.AsyncAnthropic(base_url=base_urls[0], api_key=FAKE_KEY)

    async def close(self) -> None:
        await self.client.close()

    async def send(self, slot: int = 0) -> Result:
        if self.fmt == "openai":
            r = await self.client.chat.completions.create(
                model=payloads.OPENAI_MODEL, messages=_messages(), max_tokens=MAX_TOKENS)
            return Result(r.choices[0].message.content, (r.usage.prompt_tokens, r.usage.completion_tokens))
        r = await self.client.messages.create(model=payloads.ANTHROPIC_MODEL, messages=_messages(),
                                              max_tokens=MAX_TOKENS)
        return Result("".join(b.text for b in r.content if b.type == "text"),
                      (r.usage.input_tokens, r.usage.output_tokens))

    async def stream(self, slot: int = 0) -> Result:
        t0 = time.perf_counter()
        ttfc: float | None = None
        parts: list[str] = []
        usage = (0, 0)
        if self.fmt == "openai":
            s = await self.client.chat.completions.create(
                model=payloads.OPENAI_MODEL, messages=_messages(), max_tokens=MAX_TOKENS, stream=True,
                stream_options={"include_usage": True})
            async for chunk in s:
                if chunk.choices and chunk.choices[0].delta.content:
                    if ttfc is None:
                        ttfc = time.perf_counter() - t0
                    parts.append(chunk.choices[0].delta.content)
                if chunk.usage is not None:
                    usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            return Result("".join(parts), usage, ttfc)
        s = await self.client.messages.create(model=payloads.ANTHROPIC_MODEL, messages=_messages(),
                                              max_tokens=MAX_TOKENS, stream=True)
        async for ev in s:
            if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                if ttfc is None:
                    ttfc = time.perf_counter() - t0
                parts.append(ev.delta.text)
            elif ev.type == "message_start":
                usage = (ev.message.usage.input_tokens, usage[1])
            elif ev.type == "message_delta":
                usage = (usage[0], ev.usage.output_tokens)
        return Result("".join(parts), usage, ttfc)


# --- LiteLLM -------------------------------------------------------------------------------


class LiteLLM(Client):
    """``litellm.acompletion`` with api_base at the loopback server; telemetry off, local cost map."""

    key, label = "litellm", "LiteLLM"

    async def open(self, base_urls: list[str]) -> None:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        self.litellm = litellm
        if self.fmt == "openai":
            self.model, self.base = f"openai/{payloads.OPENAI_MODEL}", base_urls[0] + "/v1"
        else:
            self.model, self.base = f"anthropic/{payloads.ANTHROPIC_MODEL}", base_urls[0]

    async def send(self, slot: int = 0) -> Result:
        r = await self.litellm.acompletion(model=self.model, messages=_messages(), api_base=self.base,
                                           api_key=FAKE_KEY, max_tokens=MAX_TOKENS)
        return Result(r.choices[0].message.content, (r.usage.prompt_tokens, r.usage.completion_tokens))

    async def stream(self, slot: int = 0) -> Result:
        t0 = time.perf_counter()
        ttfc: float | None = None
        parts: list[str] = []
        usage = (0, 0)
        s = await self.litellm.acompletion(model=self.model, messages=_messages(), api_base=self.base,
                                           api_key=FAKE_KEY, max_tokens=MAX_TOKENS, stream=True,
                                           stream_options={"include_usage": True})
        async for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                if ttfc is None:
                    ttfc = time.perf_counter() - t0
                parts.append(chunk.choices[0].delta.content)
            u = getattr(chunk, "usage", None)
            if u is not None and u.completion_tokens:
                usage = (u.prompt_tokens, u.completion_tokens)
        return Result("".join(parts), usage, ttfc)


# --- pydantic-ai ---------------------------------------------------------------------------


class PydanticAI(Client):
    """``Agent.run`` / ``Agent.run_stream`` with an OpenAI-compatible or an Anthropic model whose
    provider points at the loopback server. One Agent serves every request (it keeps no history
    between runs), as an application would keep one."""

    key, label = "pydantic-ai", "pydantic-ai"

    async def open(self, base_urls: list[str]) -> None:
        from pydantic_ai import Agent

        if self.fmt == "openai":
            from pydantic_ai.models.openai import OpenAIChatModel
            from pydantic_ai.providers.openai import OpenAIProvider

            self.provider: Any = OpenAIProvider(base_url=base_urls[0] + "/v1", api_key=FAKE_KEY)
            model: Any = OpenAIChatModel(payloads.OPENAI_MODEL, provider=self.provider)
        else:
            from pydantic_ai.models.anthropic import AnthropicModel
            from pydantic_ai.providers.anthropic import AnthropicProvider

            self.provider = AnthropicProvider(base_url=base_urls[0], api_key=FAKE_KEY)
            model = AnthropicModel(payloads.ANTHROPIC_MODEL, provider=self.provider)
        self.agent: Any = Agent(model, model_settings={"max_tokens": MAX_TOKENS})

    async def close(self) -> None:
        await self.provider.client.close()

    async def send(self, slot: int = 0) -> Result:
        r = await self.agent.run(payloads.PROMPT)
        u = _pydantic_ai_usage(r)
        return Result(r.output, (u.input_tokens, u.output_tokens))

    async def stream(self, slot: int = 0) -> Result:
        t0 = time.perf_counter()
        ttfc: float | None = None
        parts: list[str] = []
        async with self.agent.run_stream(payloads.PROMPT) as r:
            async for text in r.stream_text(delta=True, debounce_by=None):
                if ttfc is None and text:
                    ttfc = time.perf_counter() - t0
                parts.append(text)
            u = _pydantic_ai_usage(r)
        return Result("".join(parts), (u.input_tokens, u.output_tokens), ttfc)


def _pydantic_ai_usage(result: Any) -> Any:
    """``usage`` became a property in pydantic-ai 2 (a method before)."""
    usage = result.usage
    return usage if hasattr(usage, "input_tokens") else usage()


# --- any-llm -------------------------------------------------------------------------------


class AnyLLM(Client):
    """``any_llm.acompletion(provider=..., api_base=loopback)``: its documented one-call API, which
    answers in the OpenAI shape whatever the provider."""

    key, label = "any-llm", "any-llm"

    async def open(self, base_urls: list[str]) -> None:
        from any_llm import acompletion

        self.acompletion: Any = acompletion
        if self.fmt == "openai":
            self.provider, self.model, self.base = "openai", payloads.OPENAI_MODEL, base_urls[0] + "/v1"
        else:
            self.provider, self.model, self.base = "anthropic", payloads.ANTHROPIC_MODEL, base_urls[0]

    def _call(self, **extra: Any) -> Any:
        return self.acompletion(model=self.model, provider=self.provider, messages=_messages(), api_base=self.base,
                                api_key=FAKE_KEY, max_tokens=MAX_TOKENS, **extra)

    async def send(self, slot: int = 0) -> Result:
        r = await self._call()
        return Result(r.choices[0].message.content, (r.usage.prompt_tokens, r.usage.completion_tokens))

    async def stream(self, slot: int = 0) -> Result:
        t0 = time.perf_counter()
        ttfc: float | None = None
        parts: list[str] = []
        usage = (0, 0)
        extra: dict[str, Any] = {"stream": True}
        if self.fmt == "openai":
            extra["stream_options"] = {"include_usage": True}
        async for chunk in await self._call(**extra):
            if chunk.choices and chunk.choices[0].delta.content:
                if ttfc is None:
                    ttfc = time.perf_counter() - t0
                parts.append(chunk.choices[0].delta.content)
            u = getattr(chunk, "usage", None)
            if u is not None and u.completion_tokens:
                usage = (u.prompt_tokens, u.completion_tokens)
        return Result("".join(parts), usage, ttfc)


CLIENTS: dict[str, type[Client]] = {
    c.key: c for c in (RawHttpx, RawHttpx2, RawAiohttp, IronspireProtocol, IronspireAgent, OfficialSDK, LiteLLM,
                       PydanticAI, AnyLLM)
}
