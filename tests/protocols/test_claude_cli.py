"""claude-sdk: recorded CLI output through the decoder, the real CLI offline, and the real SDK
against a stand-in CLI (tests/fixtures/claude/fake_claude.py) for the success path.

Recorded lines go through the SDK's own message parser (what ``query`` runs on every line)
and then our decoder; control messages are left out as the SDK's Query routes them away.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.models import Registry
from ironspire.catalog.providers import builtin
from ironspire.errors import AuthenticationError, ConfigurationError, ProviderUnavailable
from ironspire.messages import (
    Accumulator,
    Image,
    Message,
    Reasoning,
    StreamEvent,
    Text,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from ironspire.protocols.base import ChatRequest, Target
from ironspire.protocols.claude_cli import LOGIN_HINT, ClaudeCLI, CliDecoder, child_env

sdk = pytest.importorskip("claude_agent_sdk")
from claude_agent_sdk._internal.message_parser import parse_message  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude"
SESSION_ID = "e88a21f9-e5b3-4a30-94e2-8cf6f8a98e0c"


def target(model: str = "claude-haiku-4-5", **settings: str) -> Target:
    return Target(builtin("claude-sdk"), Registry().get("claude-sdk", model), "", settings=settings)


def lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return [json.loads(text)]
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def decode(records: list[dict[str, Any]], tgt: Target | None = None) -> tuple[CliDecoder, Message]:
    tgt = tgt or target()
    decoder = CliDecoder(tgt)
    acc = Accumulator(tgt.provider.id, tgt.model.id)
    for record in records:
        if record["type"].startswith("control_"):
            continue
        message = parse_message(record)
        if message is not None:
            acc.feed(decoder.feed(message))
    return decoder, acc.message()


def result_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in records if r["type"] == "result")


# --- recorded CLI output -------------------------------------------------------------------------

NOT_STREAMS = {
    "local-cli-2.1.330__auth-status.json": "`claude auth status` output, not a turn",
    "bb__auth-failure__manifest.json": "recording manifest",
}
ENVELOPES = ".ndjson"  # bb recorder envelopes; the derived .lines.jsonl beside each is replayed


def test_every_recording_is_replayed_or_explained(realdata: Path) -> None:
    replayed = {
        "bb__approval-allow__provider-to-bridge.lines.jsonl", "bb__approval-deny__provider-to-bridge.lines.jsonl",
        "bb__web-search__provider-to-bridge.lines.jsonl", "bb__plan-mode__provider-to-bridge.lines.jsonl",
        "bb__auth-failure__provider-to-bridge.lines.jsonl", "bb__stop-interrupt__provider-to-bridge.lines.jsonl",
        "local-cli-2.1.330__not-logged-in.stream.jsonl", "local-cli-2.1.330__not-logged-in.json",
        "claude-agent-sdk-gleam__assistant_message.json", "claude-agent-sdk-gleam__result_success.json",
        "claude-agent-sdk-gleam__system_message.json", "claude-agent-sdk-gleam__user_message.json",
    }
    for path in (realdata / "claude-cli").iterdir():
        if path.suffix == ENVELOPES:
            derived = path.with_name(path.name.replace(".ndjson", ".lines.jsonl"))
            envelope = [json.loads(x)["line"] for x in path.read_text().splitlines() if x.strip()]
            assert envelope == derived.read_text().splitlines()
        else:
            assert path.name in replayed or path.name in NOT_STREAMS, path.name


@pytest.mark.parametrize("name", ["local-cli-2.1.330__not-logged-in.stream.jsonl",
                                  "local-cli-2.1.330__not-logged-in.json",
                                  "bb__auth-failure__provider-to-bridge.lines.jsonl"])
def test_not_logged_in_is_authentication_error_with_login_hint(realdata: Path, name: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        decode(lines(realdata / "claude-cli" / name))
    assert "Not logged in · Please run /login" in str(info.value)
    assert info.value.hint == LOGIN_HINT and "claude /login" in info.value.hint


@pytest.mark.parametrize("name", ["bb__approval-allow__provider-to-bridge.lines.jsonl",
                                  "bb__approval-deny__provider-to-bridge.lines.jsonl",
                                  "bb__web-search__provider-to-bridge.lines.jsonl"])
def test_successful_turns_give_text_usage_cost_and_session(realdata: Path, name: str) -> None:
    records = lines(realdata / "claude-cli" / name)
    result = result_of(records)

    decoder, message = decode(records)

    assert decoder.done
    assert message.text == result["result"]
    assert not message.tool_calls  # the CLI ran its own tools; nothing for the caller to answer
    u = result["usage"]
    assert message.usage == Usage(u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"],
                                  u["cache_creation_input_tokens"])
    assert message.meta == {"session_id": result["session_id"], "cost_usd": result["total_cost_usd"],
                            "billed_usd": 0.0}
    assert message.finish_reason == "stop"


def test_thinking_with_signatures_from_partial_messages(realdata: Path) -> None:
    records = lines(realdata / "claude-cli" / "bb__plan-mode__provider-to-bridge.lines.jsonl")
    signatures = [r["event"]["delta"]["signature"] for r in records if r["type"] == "stream_event"
                  and r["event"].get("delta", {}).get("type") == "signature_delta"]

    decoder, message = decode(records)

    assert decoder.done
    reasoning = [p for p in message.parts if isinstance(p, Reasoning)]
    assert [r.signature for r in reasoning] == signatures and len(signatures) == 3
    assert all(r.provider == "claude-sdk" and r.text for r in reasoning)
    assert message.text.endswith(result_of(records)["result"])
    assert message.usage is not None and message.usage.reasoning == 100
    assert message.meta["cost_usd"] == 0.3038605


def test_interrupted_run_never_finishes_and_the_next_run_does(realdata: Path) -> None:
    records = lines(realdata / "claude-cli" / "bb__stop-interrupt__provider-to-bridge.lines.jsonl")
    second = max(i for i, r in enumerate(records) if r.get("subtype") == "init")

    cut, partial = decode(records[:second])
    done, message = decode(records[second:])

    assert not cut.done and partial.text.startswith("# The History of the UNIX Shell")
    assert done.done and message.text == "4"
    assert message.meta["session_id"] == SESSION_ID


def test_single_messages_from_the_gleam_fixtures(realdata: Path) -> None:
    folder = realdata / "claude-cli"
    init, _ = decode(lines(folder / "claude-agent-sdk-gleam__system_message.json"))
    assert init.session_id == json.loads((folder / "claude-agent-sdk-gleam__system_message.json").read_text())[
        "session_id"]
    _, tool_turn = decode(lines(folder / "claude-agent-sdk-gleam__assistant_message.json"))
    assert tool_turn.parts == ()  # a tool_use the CLI executes itself
    _, echoed = decode(lines(folder / "claude-agent-sdk-gleam__user_message.json"))
    assert echoed.parts == ()
    decoder, result = decode(lines(folder / "claude-agent-sdk-gleam__result_success.json"))
    assert decoder.done
    assert result.usage == Usage(input=18, output=424, cache_read=17254, cache_write=25067)
    assert result.meta["cost_usd"] == 0.24722425
    assert result.meta["session_id"] == "40e7b02d-c0f9-4876-9010-f514d4eb0603"


# --- environment and configuration ----------------------------------------------------------------


def test_child_env_never_carries_api_keys() -> None:
    parent = {"HOME": "/h", "PATH": "/bin", "LC_ALL": "C", "ANTHROPIC_API_KEY": "sk-ant-x",
              "ANTHROPIC_AUTH_TOKEN": "t", "ANTHROPIC_BASE_URL": "http://proxy", "OPENAI_API_KEY": "sk-y",
              "CLAUDE_CODE_OAUTH_TOKEN": "oauth"}
    env = child_env(parent)
    assert env == {"HOME": "/h", "PATH": "/bin", "LC_ALL": "C", "CLAUDE_CODE_OAUTH_TOKEN": "oauth",
                   "CLAUDE_CODE_ENTRYPOINT": "sdk-py"}


async def test_missing_sdk_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)
    with pytest.raises(ConfigurationError) as info:
        await ClaudeCLI().complete(ChatRequest((Message.user("hi"),)), target())
    assert "pip install 'ironspire[claude]'" in str(info.value)


async def test_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        await ClaudeCLI().complete(ChatRequest((Message.user("hi"),)), target(cli_path=str(tmp_path / "claude")))
    assert "ironspire[claude]" in str(info.value) and "cli_path" in str(info.value)


# --- the real CLI from the wheel, offline, not logged in ------------------------------------------


@pytest.mark.claude_cli
async def test_real_cli_not_logged_in_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    # Were this key passed on, the CLI would try it against the API instead of reporting the
    # missing login: "Not logged in" proves it stayed out of the CLI's environment.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-not-a-real-key-000000000000")
    request = ChatRequest((Message.user("hi"),), system="Be brief.")

    started = time.perf_counter()
    with pytest.raises(AuthenticationError) as info:
        await asyncio.wait_for(ClaudeCLI().complete(request, target()), timeout=30)

    assert time.perf_counter() - started < 30
    assert "Not logged in" in str(info.value)
    assert info.value.hint == LOGIN_HINT


# --- the real SDK against a stand-in CLI ------------------------------------------------------------


@pytest.fixture
def fake_cli(tmp_path: Path) -> str:
    wrapper = tmp_path / "claude"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIXTURES / "fake_claude.py"}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def calls(cwd: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (cwd / "fake-claude-calls.jsonl").read_text().splitlines()]


@pytest.mark.skipif(os.name == "nt", reason="the stand-in is started through a POSIX shell wrapper")
async def test_success_turn_then_resume(fake_cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-must-not-leak-0000000000")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "must-not-leak")
    cwd = tmp_path / "cli-cwd"
    tgt = target(cli_path=fake_cli, cwd=str(cwd))
    user = Message.user("What is 2+2?")
    request = ChatRequest((user,), system="Be brief.")

    events: list[StreamEvent] = []
    async for event in ClaudeCLI().stream(request, tgt):
        events.append(event)
    reply = Accumulator(tgt.provider.id, tgt.model.id).feed(events).message()

    assert TextDelta("4") in events
    assert reply.text == "4" and reply.finish_reason == "stop"
    assert (reply.provider, reply.model) == ("claude-sdk", "claude-haiku-4-5")
    assert reply.usage == Usage(input=2, output=3, cache_read=20642, cache_write=9266)
    assert reply.meta == {"session_id": SESSION_ID, "cost_usd": 0.10306599999999999, "billed_usd": 0.0}
    first = calls(cwd)[0]
    argv = first["argv"]
    assert argv[argv.index("--model") + 1] == "claude-haiku-4-5"
    assert argv[argv.index("--system-prompt") + 1] == "Be brief."
    assert argv[argv.index("--tools") + 1] == "" and argv[argv.index("--max-turns") + 1] == "1"
    assert "--include-partial-messages" in argv
    assert first["resume"] is None
    assert not {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"} & set(first["env"])
    assert first["prompts"] == [[{"type": "text", "text": "What is 2+2?"}]]

    follow = Message.user("And 3+3?")
    again = await ClaudeCLI().complete(ChatRequest((user, reply, follow), system="Be brief."), tgt)

    second = calls(cwd)[1]
    assert second["resume"] == SESSION_ID and f"--resume={SESSION_ID}" in second["argv"]
    assert second["prompts"] == [[{"type": "text", "text": "And 3+3?"}]]
    assert again.meta["session_id"] == SESSION_ID


@pytest.mark.skipif(os.name == "nt", reason="the stand-in is started through a POSIX shell wrapper")
async def test_switching_onto_the_cli_hands_over_a_transcript(fake_cli: str, tmp_path: Path) -> None:
    cwd = tmp_path / "cli-cwd"
    history = (
        Message.user("Weather in Oslo?"),
        Message("assistant", (Reasoning("check the tool", signature="s", provider="openai"),
                              ToolCall("call_1", "weather", {"city": "Oslo"})), provider="openai"),
        Message.tool(ToolResult("call_1", "weather", (Text("rain"),))),
        Message("assistant", (Text("It rains in Oslo."),), provider="openai"),
        Message.user("Should I take an umbrella?", Image("image/png", data="iVBORw0KGgo=")),
    )

    reply = await ClaudeCLI().complete(ChatRequest(history), target(cli_path=fake_cli, cwd=str(cwd)))

    assert reply.text == "4"
    (prompt,) = calls(cwd)[0]["prompts"]
    assert calls(cwd)[0]["resume"] is None
    handed = prompt[0]["text"]
    assert "<user>\nWeather in Oslo?\n</user>" in handed
    assert '[called tool weather with {"city": "Oslo"}]' in handed
    assert '<tool_result name="weather">\nrain\n</tool_result>' in handed
    assert "<assistant>\nIt rains in Oslo.\n</assistant>" in handed
    assert "check the tool" not in handed  # foreign reasoning is dropped by default
    assert prompt[1:] == [
        {"type": "text", "text": "Should I take an umbrella?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    ]


@pytest.mark.skipif(os.name == "nt", reason="POSIX shell script")
async def test_cli_that_dies_without_a_result(tmp_path: Path) -> None:
    broken = tmp_path / "claude"
    broken.write_text("#!/bin/sh\necho 'fatal: cannot load settings' >&2\nexit 2\n")
    broken.chmod(0o755)

    with pytest.raises(ProviderUnavailable, match="exited with code 2: fatal: cannot load settings"):
        await ClaudeCLI().complete(ChatRequest((Message.user("hi"),)), target(cli_path=str(broken)))


async def test_no_configured_bundled_or_path_binary_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No cli_path, a claude-agent-sdk without its bundled CLI (e.g. a slim install) and no `claude`
    on PATH: a ConfigurationError naming every way to get the binary, before anything is started."""
    import types

    import ironspire.protocols.claude_cli_transport  # noqa: F401 - loaded from the real SDK first

    slim = types.ModuleType("claude_agent_sdk")
    slim.__file__ = str(tmp_path / "site-packages" / "claude_agent_sdk" / "__init__.py")
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", slim)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    with pytest.raises(ConfigurationError) as info:
        await ClaudeCLI().complete(ChatRequest((Message.user("hi"),)), target())

    text = str(info.value)
    assert "the Claude Code CLI (`claude`) was not found" in text
    assert "pip install 'ironspire[claude]'" in text and "providers set claude-sdk cli_path" in text


def test_a_result_without_usage_is_unknown_usage_not_zero() -> None:
    from ironspire.messages import Usage
    from ironspire.protocols.claude_cli import usage_of

    assert usage_of(None) == Usage.unknown() and usage_of({}) == Usage.unknown()
    assert usage_of({"input_tokens": 3, "output_tokens": 2}) == Usage(3, 2)
