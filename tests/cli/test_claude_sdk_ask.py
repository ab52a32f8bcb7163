"""`ironspire ask` on a claude-sdk agent with the real Claude CLI from the claude-agent-sdk wheel,
not logged in (HOME and IRONSPIRE_HOME in a temp dir, offline): the user is told to log in, the
exit code is non-zero, and no traceback is shown. An ANTHROPIC_API_KEY in the environment must
not rescue the turn: the CLI never sees it, so it still reports the missing login."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("claude_agent_sdk")
pytestmark = [pytest.mark.claude_cli, pytest.mark.skipif(os.name == "nt", reason="POSIX paths")]


def ironspire(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ironspire.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_ask_not_logged_in_tells_the_user_to_log_in(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "IRONSPIRE_HOME": str(tmp_path / "ih"),
           "LANG": "C.UTF-8", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "COLUMNS": "200",
           "ANTHROPIC_API_KEY": "sk-ant-api03-not-a-real-key-000000000000"}
    created = ironspire("agents", "create", "sub", "--provider", "claude-sdk", "--model", "claude-haiku-4-5", env=env)
    assert created.returncode == 0, created.stderr

    started = time.perf_counter()
    asked = ironspire("ask", "sub", "hi", env=env)
    elapsed = time.perf_counter() - started

    output = asked.stdout + asked.stderr
    assert asked.returncode != 0
    assert "not logged in" in output.lower()
    assert "claude /login" in output  # the hint: how to log in
    assert "Traceback" not in output
    assert "sk-ant-api03-not-a-real-key" not in output
    assert elapsed < 60
