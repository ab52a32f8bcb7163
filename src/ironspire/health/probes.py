"""The cheapest authenticated call per wire protocol, and what its answer says about health.

A probe goes through the provider's pooled client (so it also warms the pool) but never through
the retry loop: a health check must answer within its timeout, not after backoff. Failures are
classified by the protocol adapter's own ``error()`` where the adapter is present, so a probe
and a real request agree on what a response means; a few answers mean something different for
a probe than for a chat request (Bedrock's AccessDenied, a 404 from a models listing, a 400 from
Azure's empty request) and are decided here before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from ironspire.errors import (
    AuthenticationError,
    ConfigurationError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    redact,
)
from ironspire.health.status import HealthState, HealthStatus, now
from ironspire.transport import Transport, classify_http_error, error_message
from ironspire.wire import Target, WireRequest

DEFAULT_RATE_LIMIT = 60.0
"""Seconds a provider stays rate-limited when its 429 names no reset time."""


@dataclass(frozen=True, slots=True)
class Verdict:
    state: HealthState
    detail: str
    retry_after: float | None = None


Interpret = Callable[[int, Mapping[str, str], bytes, Target], "Verdict | None"]


# --- requests per protocol ----------------------------------------------------------------------

def _bearer(target: Target) -> dict[str, str]:
    key = target.secrets.get("api_key")
    return {"Authorization": f"Bearer {key}"} if key else {}


def openai_models(target: Target) -> WireRequest:
    return WireRequest("GET", target.url("/models"), _bearer(target))


def azure_probe(target: Target) -> WireRequest:
    """v1 URLs list models; classic URLs get an empty chat on the deployment: the key and the
    deployment are checked before the body, so the 400 for no messages proves both, for free."""
    headers = {"api-key": target.secret("api_key")}
    base = target.base_url.rstrip("/")
    if "/openai/v1" in base:
        return WireRequest("GET", base + "/models", headers)
    root = base if base.endswith("/openai") else base + "/openai"
    deployment = target.settings.get("deployment") or target.model.id
    return WireRequest(
        "POST", f"{root}/deployments/{deployment}/chat/completions", headers,
        json={"messages": []}, params={"api-version": target.setting("api_version")},
    )


def anthropic_models(target: Target) -> WireRequest:
    base = target.base_url.rstrip("/")
    path = "/models" if base.endswith("/v1") else "/v1/models"
    headers = {"x-api-key": target.secret("api_key"), "anthropic-version": "2023-06-01"}
    return WireRequest("GET", base + path, headers, params={"limit": "1"})


def gemini_models(target: Target) -> WireRequest:
    return WireRequest("GET", target.url("/models"), {"x-goog-api-key": target.secret("api_key")},
                       params={"pageSize": "1"})


def ollama_version(target: Target) -> WireRequest:
    return WireRequest("GET", target.url("/api/version"), _bearer(target))


def bedrock_control_url(target: Target) -> str:
    region = target.setting("region")
    base = target.base_url.rstrip("/")
    if not base:
        base = f"https://bedrock.{region}.amazonaws.com"
    elif "://bedrock-runtime." in base:
        base = base.replace("://bedrock-runtime.", "://bedrock.", 1)
    return base + "/foundation-models?byOutputModality=TEXT"


def bedrock_models(target: Target) -> WireRequest:
    """A SigV4-signed control-plane listing, signed by the adapter's own helper (so a profile or
    SSO credential chain chosen in settings works here too)."""
    from ironspire.protocols.bedrock_converse import signed_request

    return signed_request("GET", bedrock_control_url(target), None, target)


async def bedrock_credentials(target: Target) -> None:
    """Resolves a profile / SSO chain in a worker thread before the (synchronous) signing: on the
    event loop it could block for seconds, stalling every agent's turn while the check runs."""
    from ironspire.protocols.bedrock_converse import prepare_credentials

    await prepare_credentials(target)


# --- probe-specific meanings -------------------------------------------------------------------

def _text(body: bytes) -> str:
    return error_message(body)[0]


def _aws_error_type(headers: Mapping[str, str], body: bytes) -> str:
    kind = headers.get("x-amzn-errortype") or ""
    if not kind:
        with contextlib.suppress(ValueError, AttributeError):
            data = json.loads(body)
            kind = str(data.get("__type") or data.get("code") or "")
    return kind.split(":", 1)[0].rsplit("#", 1)[-1]


def bedrock_meaning(status: int, headers: Mapping[str, str], body: bytes, target: Target) -> Verdict | None:
    if status == 403 and _aws_error_type(headers, body) == "AccessDeniedException":
        return Verdict(HealthState.REACHABLE, "credentials accepted but not verified: this identity may not list "
                       "models (bedrock:ListFoundationModels); " + _text(body))
    return None


def gemini_meaning(status: int, headers: Mapping[str, str], body: bytes, target: Target) -> Verdict | None:
    if status == 400 and b"API_KEY_INVALID" in body:
        return Verdict(HealthState.INVALID_KEY, _text(body))
    return None


def openai_meaning(status: int, headers: Mapping[str, str], body: bytes, target: Target) -> Verdict | None:
    if status == 404 and "azure" not in target.provider.quirks:
        return Verdict(HealthState.REACHABLE, "the server answers but lists no models (HTTP 404); "
                       "the key was not verified")
    if status == 400 and "azure" in target.provider.quirks and "/openai/v1" not in target.base_url:
        text = _text(body)
        if "api-version" not in text.lower():
            return Verdict(HealthState.REACHABLE, "key and deployment accepted")
    return None


@dataclass(frozen=True, slots=True)
class HttpProbe:
    build: Callable[[Target], WireRequest]
    meaning: Interpret | None = None
    #: awaited before ``build``: slow, blocking preparation moved off the event loop
    prepare: Callable[[Target], Awaitable[None]] | None = None


def http_probe(target: Target) -> HttpProbe:
    protocol = target.provider.protocol
    if protocol == "openai_chat":
        build = azure_probe if "azure" in target.provider.quirks else openai_models
        return HttpProbe(build, openai_meaning)
    if protocol == "anthropic_messages":
        return HttpProbe(anthropic_models)
    if protocol == "gemini":
        return HttpProbe(gemini_models, gemini_meaning)
    if protocol == "ollama_chat":
        return HttpProbe(ollama_version)
    if protocol == "bedrock_converse":
        return HttpProbe(bedrock_models, bedrock_meaning, bedrock_credentials)
    raise ConfigurationError(f"no health probe for protocol {protocol!r}.")


def _classify(
    status: int, headers: Mapping[str, str], body: bytes, target: Target, transport: Transport
) -> ProviderError:
    """The adapter's reading of a failure where the adapter exists; the shared one otherwise."""
    try:
        from ironspire.protocols import backend_for
        from ironspire.protocols.base import HttpProtocol

        backend = backend_for(target.provider.protocol, transport)
    except (ImportError, ConfigurationError):
        return classify_http_error(status, headers, body, target)
    if isinstance(backend, HttpProtocol):
        return backend.error(status, headers, body, target)
    return classify_http_error(status, headers, body, target)


def verdict_for_error(error: ProviderError | None, detail: str) -> Verdict:
    if error is None:
        return Verdict(HealthState.REACHABLE, detail)
    if isinstance(error, RateLimitError):
        return Verdict(HealthState.RATE_LIMITED, detail, error.retry_after)
    if isinstance(error, AuthenticationError):
        return Verdict(HealthState.INVALID_KEY, detail)
    if isinstance(error, ProviderUnavailable):
        return Verdict(HealthState.UNREACHABLE, detail)
    # the server answered, but the check could not pass: treat as not usable and say why
    return Verdict(HealthState.UNREACHABLE, detail)


def _status(target: Target, verdict: Verdict, started: float) -> HealthStatus:
    checked = now()
    until = None
    if verdict.state is HealthState.RATE_LIMITED:
        until = checked + timedelta(seconds=verdict.retry_after if verdict.retry_after is not None
                                    else DEFAULT_RATE_LIMIT)
    return HealthStatus(
        target.provider.id, verdict.state, checked, (time.perf_counter() - started) * 1000,
        redact(verdict.detail, target.secrets.values()), until,
    )


async def probe_http(target: Target, transport: Transport, limit: float) -> HealthStatus:
    spec = http_probe(target)
    if spec.prepare is not None:
        await spec.prepare(target)
    wire = spec.build(target)
    client = transport.client(target)
    request = client.build_request(
        wire.method, wire.url, headers=wire.headers, params=wire.params, json=wire.json,
        content=wire.content, timeout=httpx.Timeout(limit),
    )
    origin = f"{request.url.scheme}://{request.url.host}" + (f":{request.url.port}" if request.url.port else "")
    started = time.perf_counter()
    try:
        response = await client.send(request)
    except httpx.TimeoutException:
        return _status(target, Verdict(HealthState.UNREACHABLE, f"no answer from {origin} within {limit:g} s"),
                       started)
    except httpx.TransportError as exc:
        return _status(target, Verdict(HealthState.UNREACHABLE, f"cannot connect to {origin} ({type(exc).__name__})"),
                       started)
    status, headers, body = response.status_code, response.headers, response.content
    if status < 400:
        return _status(target, Verdict(HealthState.REACHABLE, f"HTTP {status}"), started)
    special = spec.meaning(status, headers, body, target) if spec.meaning else None
    if special is not None:
        return _status(target, special, started)
    error = _classify(status, headers, body, target, transport)
    return _status(target, verdict_for_error(error, f"HTTP {status}: {_text(body)}"), started)


# --- claude-sdk: the CLI and its login ---------------------------------------------------------

LOGIN_HINT = "Not logged in: run `claude` once and log in (/login) with your Claude subscription."


def find_claude_cli(configured: str | None = None) -> Path | None:
    """The CLI the claude-agent-sdk wheel bundles, else one on PATH."""
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_file() else None
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "_bundled" / ("claude.exe" if os.name == "nt" else "claude")
        if bundled.is_file():
            return bundled
    found = shutil.which("claude")
    return Path(found) if found else None


async def probe_claude_cli(target: Target, limit: float) -> HealthStatus:
    started = time.perf_counter()
    cli = find_claude_cli(target.settings.get("cli_path"))
    if cli is None:
        return _status(target, Verdict(HealthState.NOT_CONFIGURED, "the Claude CLI was not found; install "
                                       "claude-agent-sdk (it bundles the CLI) or put `claude` on PATH"), started)
    # the subscription is what this provider means: an API key in the environment would bill instead
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDECODE")}
    proc = await asyncio.create_subprocess_exec(
        str(cli), "auth", "status", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return _status(target, Verdict(HealthState.UNREACHABLE, f"`claude auth status` gave no answer within "
                                       f"{limit:g} s"), started)
    try:
        data = json.loads(out)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("loggedIn") is True:
        return _status(target, Verdict(HealthState.REACHABLE, f"logged in ({data.get('authMethod', 'unknown')})"),
                       started)
    if isinstance(data, dict):
        return _status(target, Verdict(HealthState.INVALID_KEY, LOGIN_HINT), started)
    text = (err or out).decode("utf-8", "replace").strip()[:300]
    return _status(target, Verdict(HealthState.UNREACHABLE, f"`claude auth status` failed (exit {proc.returncode})"
                                   + (f": {text}" if text else "")), started)


def probe_for(target: Target, transport: Transport, timeout: float) -> Awaitable[HealthStatus]:
    if target.provider.protocol == "claude_cli":
        return probe_claude_cli(target, timeout)
    return probe_http(target, transport, timeout)
