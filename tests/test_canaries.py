"""No secret leaks: every provider gets a unique canary secret, the fleet runs successful turns,
failures whose error bodies echo every request header back, health checks, export, backup,
analytics and CSV; then every file under IRONSPIRE_HOME and every captured output is scanned.

The loopback servers echo what they were sent into their error bodies on purpose: a provider
that quotes the key back ("Incorrect API key provided: sk-...") is exactly how secrets leak.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.catalog.providers import CustomEndpoint
from ironspire.cli.app import app
from ironspire.errors import IronspireError
from ironspire.transport import RetryPolicy, Transport
from support.http_stub import Reply, Seen, StubServer
from support.postgres import dump_url

OK_BODIES: dict[str, Any] = {
    "openai_chat": {"id": "c1", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
    "openai_responses": {"id": "resp_1", "object": "response", "status": "completed", "model": "m", "output": [
        {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "pong"}]}],
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}},
    "anthropic_messages": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                           "content": [{"type": "text", "text": "pong"}], "stop_reason": "end_turn",
                           "usage": {"input_tokens": 5, "output_tokens": 2}},
    "gemini": {"candidates": [{"content": {"role": "model", "parts": [{"text": "pong"}]}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}},
    "ollama_chat": {"model": "m", "message": {"role": "assistant", "content": "pong"}, "done": True,
                    "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 2},
    "bedrock_converse": {"output": {"message": {"role": "assistant", "content": [{"text": "pong"}]}},
                         "stopReason": "end_turn", "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}},
}


class Provider:
    """Answers as each provider's protocol would, in the mode the test sets."""

    def __init__(self, protocols: dict[str, str]) -> None:
        self.protocols = protocols
        self.mode = "ok"

    def __call__(self, seen: Seen) -> Reply:
        pid = seen.path.strip("/").split("/", 1)[0]
        echo = "; ".join(f"{k}={v}" for k, v in seen.headers.items()) + " body=" + seen.body.decode("utf-8", "replace")
        if self.mode == "ok":
            if seen.path.endswith("/api/version"):
                return Reply(200, {"version": "0.12.0"})
            if seen.method == "GET":
                return Reply(200, {"data": [], "models": []})
            protocol = "openai_responses" if seen.path.endswith("/responses") else self.protocols[pid]
            return Reply(200, OK_BODIES[protocol])
        if self.mode == "partial":  # a provider quoting part of each value (key[2:-2]) back
            echo = "; ".join(f"{k}={v[2:-2]}" for k, v in seen.headers.items()) + " target=" + seen.target[2:-2]
        status = {"auth": 401, "partial": 401, "down": 500, "slow": 429}[self.mode]
        message = f"Incorrect API key provided. You sent: {echo}"
        return Reply(status, {"error": {"message": message, "code": "invalid_api_key", "status": "UNAUTHENTICATED"},
                              "message": message}, {"retry-after": "1"} if status == 429 else {})


async def test_no_canary_appears_in_any_file_or_output(
    isolated_env: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, database_url: str | None,
) -> None:
    """Secrets live in the encrypted credential file here (the headless-Linux store, with its real
    key-derivation parameters), so the scan also proves that file holds none of them in plain text.
    On PostgreSQL (``database_url``) the database is scanned as ``pg_dump`` writes it out."""
    from ironspire.credentials import PASSPHRASE_ENV, CredentialStore
    from ironspire.workspace import Workspace

    monkeypatch.setenv(PASSPHRASE_ENV, "canary scan passphrase")
    CredentialStore().use_encrypted_file("canary scan passphrase")
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    transport = Transport(retry=RetryPolicy(attempts=1))
    ws = Workspace.open(transport=transport)
    protocols = {pid: ws.provider(pid).protocol for pid in ws.provider_ids()}
    protocols["custom-canary-box"] = "openai_chat"
    server = Provider(protocols)
    canaries: dict[str, str] = {}
    async with StubServer(resolver=server) as s:
        ws.add_custom_endpoint(CustomEndpoint("canary box", s.url + "/custom-canary-box/v1", "box-model"),
                               api_key=(box := "canaryBOXsecret7f3a91c2"))
        canaries["custom-canary-box:api_key"] = box
        for pid in ws.provider_ids():
            spec = ws.provider(pid)
            if pid == "claude-sdk" or pid.startswith("custom-"):  # no secret / set when added
                continue
            for f in spec.secret_fields:
                value = f"canary{pid.replace('-', '')}{f.name.replace('_', '')}X9q7Z{len(canaries):02d}"
                if pid == "bedrock" and f.name == "access_key_id":
                    value = f"AKIACANARY{len(canaries):02d}BEDROCK"
                canaries[f"{pid}:{f.name}"] = value
                ws.credentials.set(pid, f.name, value)
            base = f"{s.url}/{pid}" + ("/v1" if spec.protocol == "openai_chat" else "")
            ws.set_provider_setting(pid, "base_url", base)
        ws.set_provider_setting("azure-openai", "deployment", "dep1")

        agents = []
        for pid in ws.provider_ids():
            if pid == "claude-sdk":
                continue
            models = ws.registry.list(provider=pid)
            model = models[0].id if models else "test-model"
            agents.append(ws.create_agent(f"agent-{pid}", provider=pid, model=model, system="be brief"))

        for mode in ("ok", "auth", "partial", "down", "slow", "ok"):
            server.mode = mode
            for agent in agents:
                try:
                    reply = await agent.send(f"ping in mode {mode}")
                    outputs.append(reply.to_json())
                except IronspireError as exc:
                    outputs += [str(exc), repr(exc), getattr(exc, "raw", None) or ""]
            server.mode = "auth" if mode == "ok" else mode
            results = await ws.health.check()  # type: ignore[attr-defined]
            outputs += [json.dumps({k: v.to_dict() for k, v in results.items()}), repr(results)]
        ok_turns = [o for o in outputs if '"pong"' in o]
        assert len(ok_turns) >= 2 * len(agents) - 2, "turns must really have run against the servers"

        ws.export(isolated_env / "export.json", with_conversations=True)
        ws.backup(isolated_env / "backup")
        analytics = ws.analytics
        outputs += [json.dumps(analytics.kpis(), default=str), json.dumps(analytics.summary(), default=str),
                    json.dumps(analytics.turns(), default=str)]
        analytics.turns_csv(isolated_env / "turns.csv")
        analytics.summary_csv(isolated_env / "summary.csv", by="provider")
        buf = io.StringIO()
        analytics.turns_csv(buf)
        outputs.append(buf.getvalue())
        outputs += [repr(ws.credentials), repr(ws.target("openai")), str(ws.target("bedrock").secrets)]

        runner = CliRunner()
        for args in (["providers", "list", "--json"], ["providers", "list"], ["providers", "check", "--json"],
                     ["providers", "check"], ["agents", "list", "--json"], ["analytics", "--json"]):
            result = await asyncio.to_thread(runner.invoke, app, args)
            outputs += [result.output, repr(result.exception) if result.exception else ""]
        server.mode = "partial"
        for args in (["providers", "check", "--json"], ["providers", "check"], ["agents", "list", "--check"],
                     ["agents", "list", "--json"], ["agents", "show", "agent-openai", "--json"],
                     ["ask", "agent-openai", "hi", "--no-check"], ["ask", "agent-custom-canary-box", "hi"],
                     ["ask", "agent-google", "hi"], ["chat", "agent-mistral"]):
            result = await asyncio.to_thread(runner.invoke, app, args, input="hello\n/exit\n")
            outputs += [result.output, str(result.exception) if result.exception else ""]
        outputs += await web_outputs(ws, agents, server)
        live = [p.name for p in files_under(isolated_env)]
        if database_url is None:  # while the database is open its newest pages sit in the WAL file: scan them too
            assert "ironspire.db-wal" in live and "ironspire.db-shm" in live, live
        else:  # everything the shared database holds, data included, as a file the scan reads
            dump = dump_url(database_url)
            assert "agent-openai" in dump and "custom-canary-box" in dump and "pong" in dump
            (isolated_env / "pg_dump.sql").write_text(dump, encoding="utf-8")
            assert "ironspire.db" not in live, live
            # provider health is shared through the database there (and so scanned in the dump)
            assert "COPY public.provider_health" in dump and "invalid_key" in dump
        assert "credentials.cfg" in live and ("health.json" in live or database_url is not None), live
        open_leaks = scan(isolated_env, canaries, outputs)
    await ws.aclose()
    assert not open_leaks, "\n".join(open_leaks)

    captured = capsys.readouterr()
    outputs += [captured.out, captured.err, caplog.text]
    assert len(canaries) == 14  # every secret field of 12 providers + the custom endpoint
    # the canaries really went over the wire (so their absence below means something)...
    wire = " ".join(str(r.headers) for r in s.seen)
    assert canaries["openai:api_key"] in wire and canaries["bedrock:access_key_id"] in wire
    # ...and came back in error bodies and details, where the product masked them
    from ironspire.errors import mask

    for key in ("openai:api_key", "google:api_key", "custom-canary-box:api_key", "bedrock:session_token"):
        assert any(mask(canaries[key]) in o for o in outputs), key
    leaks = scan(isolated_env, canaries, outputs)
    assert not leaks, "\n".join(leaks)


async def web_outputs(ws: Any, agents: list[Any], server: Provider) -> list[str]:
    """Every page and JSON twin of the web app, and streamed turns (answered, refused, echoing
    the request's headers back) as the browser receives them."""
    import httpx

    from ironspire.web import create_app
    from ironspire.web.security import Secrets

    secrets = Secrets()
    app = create_app(ws, secrets=secrets, check_on_start=False)
    seen: list[str] = []
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8780") as client:
        await client.get(f"/?token={secrets.token}")
        form = {"csrf_token": secrets.csrf}
        pages = ["/settings/providers", "/agents", "/agents/new", "/api/settings/providers", "/api/providers",
                 "/api/health", "/api/default", "/api/agents", "/api/models"]
        for agent in agents:
            name = agent.name
            pages += [f"/agents/{name}", f"/agents/{name}/configure", f"/api/agents/{name}",
                      f"/api/agents/{name}/history?all=1", f"/api/agents/{name}/hud"]
        for mode in ("ok", "auth"):
            server.mode = mode
            for agent in agents[:4]:
                started = await client.post(f"/agents/{agent.name}/turns", data={**form, "message": "web canary"},
                                            headers={"accept": "application/json"})
                seen.append(started.text)
                if started.status_code == 202:
                    seen.append((await client.get(started.json()["events"])).text)
            checked = await client.post("/settings/providers/check", data=form, headers={"accept": "application/json"})
            seen.append(checked.text)
        for path in pages:
            response = await client.get(path, follow_redirects=True)
            assert response.status_code == 200, (path, response.status_code)
            seen.append(response.text)
    assert any("web canary" in text for text in seen), "the web turns must really have run"
    return seen


def files_under(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file()]


def scan(home: Path, canaries: dict[str, str], outputs: list[str]) -> list[str]:
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".csv" for p in files) and (home / "export.json").is_file()
    assert any("backup" in str(p.relative_to(home)) for p in files)
    leaks = []
    for name, canary in canaries.items():
        leaks += [f"{name} in {p.relative_to(home)}" for p in files if canary.encode() in p.read_bytes()]
        leaks += [f"{name} in output #{i}: {text[:300]!r}" for i, text in enumerate(outputs) if canary in text]
        # partial echoes: no 12-character piece of a secret may be left anywhere either
        pieces = {canary[i:i + 12] for i in range(len(canary) - 11)}
        contents = [(str(p.relative_to(home)), p.read_bytes().decode("utf-8", "replace")) for p in files]
        for where, text in [*contents, *((f"output #{i}", o) for i, o in enumerate(outputs))]:
            found = next((piece for piece in pieces if piece in text), None)
            if found is not None:
                at = text.index(found)
                leaks.append(f"{name} fragment {found!r} in {where}: {text[max(0, at - 80):at + 80]!r}")
    return leaks
