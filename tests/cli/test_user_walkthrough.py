"""Rough edges a new user hit on a walk through the CLI: each test is one thing that used to go
wrong (an empty message sent and billed, a chat typo sent to the model, Ctrl-C killing a chat
session, `--csv -` writing a file named "-", typos read as "no usage") and now must not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironspire.cli.app import app
from ironspire.workspace import Workspace
from support.cli import ok, runner
from support.memory_keyring import MemoryKeyring, use_memory_keyring
from workspace.loopback import Server, refused_port, serving

CLI = [sys.executable, "-m", "ironspire.cli"]


@pytest.fixture(autouse=True)
def keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


def _agent_on(url: str, name: str = "local") -> None:
    ws = Workspace.open()
    ws.set_provider_setting("ollama", "base_url", url)
    ws.create_agent(name, provider="ollama", model="llama3")
    ws.close()


@pytest.mark.parametrize("args", [["ask", "local", ""], ["ask", "local", "  \n "], ["ask", "local", "-"]])
def test_an_empty_message_is_refused_before_anything_is_sent(args: list[str]) -> None:
    with serving(Server("ol")) as (srv,):
        _agent_on(srv.url)
        result = runner.invoke(app, args, input="\n")
    assert result.exit_code == 2
    assert "the message is empty" in result.output
    assert srv.requests == []
    assert json.loads(ok("history", "local", "--json", "--all").output) == []


def test_a_piped_message_loses_only_its_final_newline() -> None:
    with serving(Server("ol")) as (srv,):
        _agent_on(srv.url)
        result = ok("ask", "local", "-", input="two\nlines\n")
    assert result.stdout.strip() == "ol: 1 messages, last: two\nlines"


def test_ask_warning_points_at_a_command_that_exists_outside_chat() -> None:
    _agent_on(f"http://127.0.0.1:{refused_port()}")
    result = runner.invoke(app, ["ask", "local", "hi"])
    assert result.exit_code == 1
    assert "warning: ollama is unreachable" in result.stderr
    assert "`ironspire agents set local --provider P --model M`" in result.stderr
    assert "/switch" not in result.stderr


def test_ask_without_a_key_explains_once() -> None:
    ok("agents", "create", "keyless", "--provider", "openai", "--model", "gpt-4.1")
    result = runner.invoke(app, ["ask", "keyless", "hi"])
    assert result.exit_code == 1
    assert "no api_key is configured" in str(result.exception)
    assert "warning" not in result.stderr


def test_chat_refuses_an_unknown_command_and_sends_a_doubled_slash_as_text() -> None:
    with serving(Server("ol")) as (srv,):
        _agent_on(srv.url)
        result = ok("chat", "local", input="/swtich ollama llama3\n//etc/hosts is a file\n/exit\n")
    assert "unknown command /swtich" in result.stderr and "/switch PROVIDER [MODEL]" in result.stderr
    assert "ol: 1 messages, last: /etc/hosts is a file" in result.stdout
    assert len(srv.requests) == 1


def test_analytics_csv_dash_goes_to_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(Server("ol")) as (srv,):
        _agent_on(srv.url)
        ok("ask", "local", "hello")
    monkeypatch.chdir(tmp_path)
    result = ok("analytics", "--by", "provider", "--csv", "-")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("provider,turns,errors,input_tokens")
    assert lines[1].startswith("ollama,1,0,")
    assert len(lines) == 2  # the CSV alone: no KPI line or table mixed in
    assert not (tmp_path / "-").exists()


def test_analytics_names_a_mistyped_agent_or_provider() -> None:
    with serving(Server("ol")) as (srv,):
        _agent_on(srv.url, "helper")
        ok("ask", "helper", "hello")
    agent = runner.invoke(app, ["analytics", "--agent", "helpr"])
    assert agent.exit_code != 0 and "Did you mean helper?" in str(agent.exception)
    provider = runner.invoke(app, ["analytics", "--provider", "olama"])
    assert provider.exit_code != 0 and "Did you mean ollama?" in str(provider.exception)
    # a real name with no usage in the period is not an error
    assert "turns 0" in ok("analytics", "--agent", "helper", "--period", "2020-01-01..2020-01-02").stdout


def test_models_capability_typo_gets_a_suggestion() -> None:
    result = runner.invoke(app, ["models", "list", "-c", "vison"])
    assert result.exit_code != 0 and "Did you mean vision?" in str(result.exception)


def test_add_custom_twice_says_it_updated() -> None:
    with serving(Server("vl")) as (srv,):
        first = ok("providers", "add-custom", "--name", "vllm", "--base-url", srv.url + "/v1", "--model-id", "m1")
        second = ok("providers", "add-custom", "--name", "vllm", "--base-url", srv.url + "/v1", "--model-id", "m2")
    assert first.stdout.startswith("Added custom-vllm")
    assert second.stdout.startswith("Updated custom-vllm")


class _Proc:
    """A CLI subprocess whose output is collected as it is written."""

    def __init__(self, args: list[str], stdin: bool = False) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [*CLI, *args], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, bufsize=0,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        self.out = b""

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self.proc.stdout.read()  # type: ignore[union-attr]
            if chunk:
                self.out += chunk
            if text.encode() in self.out:
                return
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not printed; stdout={self.out!r}")

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, str, str]:
        os.set_blocking(self.proc.stdout.fileno(), True)  # type: ignore[union-attr]
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, (self.out + out).decode(), err.decode()


def test_ctrl_c_during_ask_exits_130_and_keeps_the_message_unanswered() -> None:
    with serving(Server("oa", hold_after=3)) as (srv,):
        ws = Workspace.open()
        ws.set_provider_setting("ollama", "base_url", srv.url)
        ws.create_agent("local", provider="ollama", model="llama3")
        ws.close()
        ask = _Proc(["ask", "--no-check", "local", "tell me a story"])
        ask.wait_for("oa:")  # mid-stream: the server holds the rest back
        ask.proc.send_signal(signal.SIGINT)
        code, _, err = ask.finish()
        srv.gate.set()
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err
    history = json.loads(ok("history", "local", "--json", "--all").output)
    assert [(m["role"], m["status"]) for m in history] == [("user", "unanswered")]


def test_ctrl_c_during_a_chat_reply_returns_to_the_prompt() -> None:
    with serving(Server("oa", hold_after=3)) as (srv,):
        ws = Workspace.open()
        ws.set_provider_setting("ollama", "base_url", srv.url)
        ws.create_agent("local", provider="ollama", model="llama3")
        ws.close()
        chat = _Proc(["chat", "local"], stdin=True)
        chat.wait_for("local> ")
        chat.type("tell me a story")
        chat.wait_for("oa:")
        chat.proc.send_signal(signal.SIGINT)
        chat.wait_for("\nlocal> ")
        srv.gate.set()
        srv.hold_after = None
        chat.type("still there?")
        chat.wait_for("last: still there?")
        chat.type("/exit")
        code, _, err = chat.finish()
    assert code == 0
    assert "interrupted" in err and "Traceback" not in err
    history = json.loads(ok("history", "local", "--json", "--all").output)
    assert [(m["role"], m["status"]) for m in history] == [
        ("user", "unanswered"), ("user", "ok"), ("assistant", "ok")]
