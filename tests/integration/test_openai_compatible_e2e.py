"""OpenAI-compatible providers end to end, as a user reaches them: through the workspace
(``ws.target``, ``agent.send``/``agent.stream``) and the ``ironspire`` command in a subprocess.

A strict Chat Completions server on 127.0.0.1 stands in for each provider via its ``base_url``
override. Like Mistral it refuses (422 ``extra_forbidden``) any body field outside the schema, so
a stray option fails the turn here as it would in production; it also lists models at /models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ironspire.messages import TextDelta
from ironspire.workspace import Workspace
from support.memory_keyring import MemoryKeyring, use_memory_keyring
from workspace.loopback import Server, serving

#: Chat Completions body fields the strict server accepts (everything this suite's turns send)
ACCEPTED = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
    "stop", "tools", "tool_choice", "seed", "random_seed", "top_p", "reasoning_effort", "thinking",
})
LISTED = [
    {"id": "llama-9-instant", "object": "model", "owned_by": "Meta", "active": True, "context_window": 131072,
     "max_completion_tokens": 32768},
    {"id": "whisper-large-v9", "object": "model", "owned_by": "OpenAI", "active": False},
]


class StrictServer:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, data: Any, content_type: str = "application/json") -> None:
                raw = data if isinstance(data, bytes) else json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _record(self, body: Any) -> None:
                url = urlsplit(self.path)
                outer.seen.append({"method": self.command, "path": url.path, "query": url.query,
                                   "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})

            def do_GET(self) -> None:
                self._record(None)
                if self.path.endswith("/models") and not self.path.startswith("/nowhere"):
                    self._send(200, {"object": "list", "data": LISTED})
                else:
                    self._send(404, {"error": {"message": "no such route"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                self._record(body)
                extra = sorted(set(body) - ACCEPTED)
                if extra:
                    self._send(422, {"object": "error", "type": "invalid_request_error", "message": {
                        "detail": [{"type": "extra_forbidden", "loc": ["body", k], "msg": "Extra inputs are not "
                                    "permitted"} for k in extra]}})
                    return
                user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
                text = f"{len(body['messages'])} messages, last: {user}"
                usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
                if not body.get("stream"):
                    self._send(200, {"id": "c1", "object": "chat.completion", "model": body.get("model"), "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": usage})
                    return
                chunks = [{"choices": [{"index": 0, "delta": {"content": w + " "}}]} for w in text.split()]
                chunks += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                           {"choices": [], "usage": usage}]
                raw = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
                self._send(200, raw, "text/event-stream")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.seen if r["method"] == "POST"]

    def __enter__(self) -> StrictServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[StrictServer]:
    with StrictServer() as s:
        yield s


@pytest.fixture
def keychain(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


KEY = "sk-e2e-canary-0123456789"
#: (provider, model, path prefix under the server, settings beyond base_url)
BUILTINS: list[tuple[str, str, str, dict[str, str]]] = [
    ("openai", "gpt-4.1", "/v1", {}),
    ("mistral", "mistral-large-2512", "/v1", {}),
    ("deepseek", "deepseek-flash", "", {}),
    ("xai", "grok-4.3", "/v1", {}),
    ("groq", "llama-9-instant", "/openai/v1", {}),
    ("together", "meta-llama/Llama-9-Turbo", "/v1", {}),
    ("fireworks", "accounts/fireworks/models/llama-9", "/inference/v1", {}),
    ("azure-openai", "gpt-4.1", "/openai", {"deployment": "prod-gpt", "api_version": "2024-10-21"}),
]


@pytest.mark.parametrize(("pid", "model", "prefix", "extra"), BUILTINS, ids=[b[0] for b in BUILTINS])
async def test_base_url_override_carries_every_turn(
    pid: str, model: str, prefix: str, extra: dict[str, str], server: StrictServer, keychain: Any, tmp_path: Path
) -> None:
    async with Workspace.open(tmp_path / "ws") as ws:
        ws.set_provider_setting(pid, "base_url", server.url + prefix + "/")
        for name, value in extra.items():
            ws.set_provider_setting(pid, name, value)
        ws.credentials.set(pid, "api_key", KEY)
        assert ws.target(pid, model).base_url == server.url + prefix
        agent = ws.create_agent("a", provider=pid, model=model, system="Be brief.")
        reply = await agent.send("hello")
        streamed = [e.text async for e in agent.stream("again") if isinstance(e, TextDelta)]
    assert reply.text == "2 messages, last: hello" and reply.provider == pid
    assert "".join(streamed).strip() == "4 messages, last: again"
    first, second = server.posts()
    if pid == "azure-openai":
        assert first["path"] == "/openai/deployments/prod-gpt/chat/completions"
        assert first["query"] == "api-version=2024-10-21" and first["headers"]["api-key"] == KEY
    else:
        assert first["path"] == prefix + "/chat/completions" and first["body"]["model"] == model
        assert first["headers"]["authorization"] == f"Bearer {KEY}"
    assert first["body"].get("stream") is None and second["body"]["stream"] is True


async def test_options_follow_an_agent_across_protocols(server: StrictServer, keychain: Any, tmp_path: Path) -> None:
    """One options dict, used on Ollama and then on OpenAI-compatible providers after switches:
    each adapter takes what its wire format knows, so the strict server accepts every turn."""
    options = {"think": False, "num_ctx": 4096, "keep_alive": "5m", "cache": True, "thinking_budget": 1024,
               "seed": 7, "top_p": 0.5}
    with serving(Server("ol")) as (ollama,):
        async with Workspace.open(tmp_path / "ws") as ws:
            ws.set_provider_setting("ollama", "base_url", ollama.url)
            for pid in ("mistral", "groq"):
                ws.set_provider_setting(pid, "base_url", server.url + "/v1")
                ws.credentials.set(pid, "api_key", KEY)
            agent = ws.create_agent("nomad", provider="ollama", model="llama3")
            await agent.send("one", options=options)
            agent.switch("mistral", "mistral-large-2512")
            on_mistral = await agent.send("two", options=options)
            agent.switch("groq", "llama-9-instant")
            on_groq = await agent.send("three", options=options)
    assert ollama.requests[0]["body"]["options"]["num_ctx"] == 4096 and ollama.requests[0]["body"]["think"] is False
    assert on_mistral.text == "3 messages, last: two" and on_groq.text == "5 messages, last: three"
    mistral, groq = (p["body"] for p in server.posts())
    assert (mistral["random_seed"], mistral["top_p"]) == (7, 0.5) and "seed" not in mistral
    assert (groq["seed"], groq["top_p"]) == (7, 0.5)


# --- the CLI, in a subprocess as a user runs it --------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ironspire.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=stdin, timeout=60)


def test_cli_base_url_override_ask_and_models_list(server: StrictServer) -> None:
    key = {"GROQ_API_KEY": "gsk_cli_canary_0123456789"}
    assert cli("providers", "set", "groq", "base_url", server.url + "/openai/v1").returncode == 0
    listed = cli("models", "list", "--provider", "groq", "--refresh", "--json", env=key)
    assert listed.returncode == 0, listed.stderr
    models = {m["id"]: m for m in json.loads(listed.stdout)}
    assert list(models) == ["llama-9-instant"]  # the inactive model is left out
    assert models["llama-9-instant"]["context_window"] == 131072
    assert models["llama-9-instant"]["max_output_tokens"] == 32768
    assert models["llama-9-instant"]["source"] == "discovered"
    (get,) = server.seen
    assert (get["path"], get["headers"]["authorization"]) == ("/openai/v1/models", f"Bearer {key['GROQ_API_KEY']}")

    assert cli("agents", "create", "g", "--provider", "groq", "--model", "llama-9-instant").returncode == 0
    asked = cli("ask", "g", "hello there", "--no-check", env=key)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "1 messages, last: hello there"
    (post,) = server.posts()
    assert post["path"] == "/openai/v1/chat/completions" and post["body"]["model"] == "llama-9-instant"
    assert key["GROQ_API_KEY"] not in asked.stdout + asked.stderr


def test_cli_listing_without_a_key(server: StrictServer) -> None:
    assert cli("providers", "set", "groq", "base_url", server.url + "/openai/v1").returncode == 0
    everything = cli("models", "list", "--json")
    assert everything.returncode == 0 and everything.stderr == ""
    assert not [m for m in json.loads(everything.stdout) if m["provider"] == "groq"]
    assert server.seen == []  # the full listing does not ask a provider it has no key for


def test_cli_models_list_says_why_a_provider_lists_nothing(server: StrictServer) -> None:
    assert cli("providers", "set", "together", "base_url", server.url + "/nowhere").returncode == 0
    result = cli("models", "list", "--provider", "together", "--json", env={"TOGETHER_API_KEY": "tg-canary-01"})
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert "does not list its models (HTTP 404)" in " ".join(result.stderr.split())


def test_cli_custom_endpoint_lists_configured_and_served_models(server: StrictServer) -> None:
    added = cli("providers", "add-custom", "--name", "lab", "--base-url", server.url + "/v1", "--model-id", "my-model",
                "--context-window", "4096", "--json")
    assert added.returncode == 0, added.stderr
    listed = cli("models", "list", "--provider", "custom-lab", "--json")
    assert listed.returncode == 0, listed.stderr
    models = {m["id"]: m for m in json.loads(listed.stdout)}
    assert models["my-model"]["source"] == "configured" and models["my-model"]["context_window"] == 4096
    assert models["llama-9-instant"]["source"] == "discovered"
    assert "authorization" not in [r for r in server.seen if r["path"] == "/v1/models"][-1]["headers"]
