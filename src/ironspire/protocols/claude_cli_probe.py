"""The Claude CLI's health probe: is the CLI there, and is it logged in to a subscription?

The check is ``claude auth status`` (a local call, no model time spent). It lives beside the
adapter, not in ``health``, because what counts as "usable" is this protocol's fact.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
from pathlib import Path

from ironspire.wire import ProbeOutcome, Target

PROBE_LOGIN_HINT = "Not logged in: run `claude` once and log in (/login) with your Claude subscription."


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


async def probe_claude_cli(target: Target, limit: float) -> ProbeOutcome:
    cli = find_claude_cli(target.settings.get("cli_path"))
    if cli is None:
        return ProbeOutcome("not_configured", "the Claude CLI was not found; install claude-agent-sdk (it bundles "
                            "the CLI) or put `claude` on PATH")
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
        return ProbeOutcome("unreachable", f"`claude auth status` gave no answer within {limit:g} s")
    try:
        data = json.loads(out)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("loggedIn") is True:
        return ProbeOutcome("reachable", f"logged in ({data.get('authMethod', 'unknown')})")
    if isinstance(data, dict):
        return ProbeOutcome("invalid_key", PROBE_LOGIN_HINT)
    text = (err or out).decode("utf-8", "replace").strip()[:300]
    return ProbeOutcome("unreachable", f"`claude auth status` failed (exit {proc.returncode})"
                        + (f": {text}" if text else ""))
