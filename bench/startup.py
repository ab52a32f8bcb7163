"""Figures that need a fresh process: import time, resident memory after import, and memory per
idle agent with 1,000 agents loaded. Each sample is its own interpreter, so nothing cached by an
earlier measurement (modules, compiled regexes, SQLAlchemy statement caches) can flatter a later one.

The harness calls this module's entry points as ``python -m bench.startup ...``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: everything one Ironspire turn imports (workspace, agent, store, adapter, transport, keychain glue)
IRONSPIRE_TURN = ("import ironspire.workspace.workspace, ironspire.workspace.agent, "
                  "ironspire.protocols.openai_chat, ironspire.credentials, ironspire.health, "
                  "ironspire.http._aiohttp")  # the HTTP client loads with the first pool, still on the turn's path

IMPORTS: dict[str, str] = {
    "python -c pass (interpreter alone)": "pass",
    "import ironspire": "import ironspire",
    "ironspire: everything a turn needs": IRONSPIRE_TURN,
    "ironspire CLI (ironspire.cli.app)": "import ironspire.cli.app",
    "import aiohttp (the client a turn uses)": "import aiohttp",
    "import asyncio + aiohttp + sqlite3 (a turn's floor)": "import asyncio, aiohttp, sqlite3",
    "import httpx": "import httpx",
    "import httpx2": "import httpx2",
    "import openai": "import openai",
    "import anthropic": "import anthropic",
    "import litellm": "import litellm",
}

_TIMER = """
import time
t0 = time.perf_counter()
{snippet}
dt = time.perf_counter() - t0
rss = 0
with open('/proc/self/status') as f:
    for line in f:
        if line.startswith('VmRSS:'):
            rss = int(line.split()[1]) * 1024
import json, sys
print(json.dumps({{"seconds": dt, "rss": rss, "modules": len(sys.modules)}}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", LITELLM_LOCAL_MODEL_COST_MAP="True",
               PYTHONDONTWRITEBYTECODE="")
    env.pop("PYTHONDONTWRITEBYTECODE")
    return env


def _run(python: str, code: str) -> dict[str, Any] | None:
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=REPO, env=_env(), timeout=120)
    if proc.returncode != 0:
        return None
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def import_times(python: str, runs: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Median seconds and RSS per snippet; one untimed run first warms the .pyc cache. Snippets
    whose package is missing are reported as unavailable."""
    todo = {k: v for k, v in IMPORTS.items() if names is None or k in names}
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in todo}
    available = {k: _run(python, _TIMER.format(snippet=v)) is not None for k, v in todo.items()}
    for _ in range(runs):  # interleaved, like the request benchmarks
        for k, v in todo.items():
            if available[k]:
                sample = _run(python, _TIMER.format(snippet=v))
                if sample is not None:
                    samples[k].append(sample)
    out: dict[str, dict[str, Any]] = {}
    for k, s in samples.items():
        if not s:
            out[k] = {"available": False}
            continue
        secs = sorted(x["seconds"] for x in s)
        rss = sorted(x["rss"] for x in s)
        out[k] = {"available": True, "ms": secs[len(secs) // 2] * 1e3, "min_ms": secs[0] * 1e3,
                  "rss_mb": rss[len(rss) // 2] / 2**20, "modules": s[0]["modules"], "runs": len(s)}
    return out


def import_profile(python: str, snippet: str = IRONSPIRE_TURN, top: int = 15) -> list[tuple[str, float, float]]:
    """The costliest imports under ``python -X importtime``: (module, self ms, cumulative ms),
    nested modules indented as Python prints them, for the notes."""
    proc = subprocess.run([python, "-X", "importtime", "-c", snippet], capture_output=True, text=True, cwd=REPO,
                          env=_env(), timeout=120)
    rows: list[tuple[str, float, float]] = []
    for line in proc.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        rows.append((parts[2].rstrip()[1:], int(parts[0]) / 1e3, int(parts[1]) / 1e3))
    return sorted(rows, key=lambda r: -r[2])[:top]


# --- memory per idle agent ---------------------------------------------------------------------

_AGENTS_CREATE = """
import os, sys
sys.path.insert(0, {repo!r})
from ironspire.catalog.providers import CustomEndpoint
from ironspire.workspace import Workspace
ws = Workspace.open({home!r})
spec = ws.add_custom_endpoint(CustomEndpoint("idle", "http://127.0.0.1:9/v1", "gpt-4.1-mini"))
for i in range({n}):
    ws.create_agent(f"idle-{{i}}", spec.id, "gpt-4.1-mini")
ws.close()
print('{{}}')
"""

_AGENTS_MEASURE = """
import gc, json, tracemalloc
from ironspire.workspace import Workspace

def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024

ws = Workspace.open({home!r})
keep = [ws.agent("idle-0")]        # warm every cache one agent load touches
gc.collect()
if {trace}:
    tracemalloc.start()
before, heap0 = rss(), tracemalloc.get_traced_memory()[0]
keep += [ws.agent(f"idle-{{i}}") for i in range(1, {n})]
gc.collect()
after, heap1 = rss(), tracemalloc.get_traced_memory()[0]
print(json.dumps({{"loaded": len(keep), "rss_before": before, "rss_after": after, "heap": heap1 - heap0}}))
"""


def agent_memory(python: str, n: int) -> dict[str, Any]:
    """RSS before/after loading ``n`` idle agents of one Workspace (plus a tracemalloc run for the
    exact Python heap figure, which page-granular RSS can only approximate)."""
    with tempfile.TemporaryDirectory(prefix="ironspire-bench-mem-") as home:
        made = _run(python, _AGENTS_CREATE.format(repo=str(REPO / "src"), home=home, n=n))
        if made is None:
            return {"available": False}
        plain = _run(python, _AGENTS_MEASURE.format(home=home, n=n, trace=False))
        traced = _run(python, _AGENTS_MEASURE.format(home=home, n=n, trace=True))
    if plain is None or traced is None:
        return {"available": False}
    loaded = plain["loaded"] - 1
    return {
        "available": True, "agents": plain["loaded"],
        "rss_before_mb": plain["rss_before"] / 2**20, "rss_after_mb": plain["rss_after"] / 2**20,
        "rss_per_agent_kb": (plain["rss_after"] - plain["rss_before"]) / loaded / 1024,
        "heap_per_agent_kb": traced["heap"] / loaded / 1024,
    }


# --- whole commands, fresh processes (hyperfine-style) ------------------------------------------

_PREPARE = """
import sys
from ironspire.catalog.providers import CustomEndpoint
from ironspire.workspace import Workspace
ws = Workspace.open({home!r})
spec = ws.add_custom_endpoint(CustomEndpoint("loopback", {base!r} + "/v1", {model!r}))
for i in range({n}):
    ws.create_agent(f"ask-{{i}}", spec.id, {model!r})
    ws.create_agent(f"lib-{{i}}", spec.id, {model!r})
ws.close()
print('{{}}')
"""

#: ``python -c "from ironspire import Workspace"`` plus one turn, as a script would run it
_ONE_TURN = """
import time
t0 = time.perf_counter()
import asyncio
from ironspire import Workspace
async def turn():
    ws = Workspace.open({home!r})
    try:
        return await ws.agent({agent!r}).send({prompt!r})
    finally:
        await ws.aclose()
reply = asyncio.run(turn())
import json, sys
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {heavy!r})
print(json.dumps({{"seconds": time.perf_counter() - t0, "text": reply.text, "loaded": loaded}}))
"""

#: the large packages whose presence after a turn the notes report (``loaded`` in the results:
#: what the library script's last turn had imported, measured, not assumed)
HEAVY = ("sqlalchemy", "alembic", "pydantic", "aiohttp", "httpx", "httpx2", "keyring", "typer", "click", "rich")


def _first_byte(argv: list[str], env: dict[str, str]) -> tuple[float, bytes, int]:
    """(seconds from spawn to the first byte on stdout, all of stdout, exit status)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            cwd=REPO, env=env)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    t1 = time.perf_counter()
    rest = proc.stdout.read()
    return t1 - t0, first + rest, proc.wait(timeout=60)


def _stats(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {"available": True, "ms": statistics.median(ordered) * 1e3, "min_ms": ordered[0] * 1e3,
            "max_ms": ordered[-1] * 1e3, "runs": len(ordered)}


def command_times(python: str, runs: int, base_url: str, text: str, prompt: str, model: str) -> dict[str, Any]:
    """Fresh-process wall times, median of ``runs`` after one warm-up, interleaved: ``ironspire
    --version`` to exit, ``ironspire ask`` to the first byte of the reply (health check included,
    as a user runs it), and a library script's import + one turn. Every reply must be the whole
    answer, else the figure is not reported."""
    cli = str(Path(python).parent / "ironspire")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ironspire-bench-cmd-") as home:
        env = {**_env(), "IRONSPIRE_HOME": home}
        made = _run(python, _PREPARE.format(home=home, base=base_url, model=model, n=runs + 1))
        if made is None or not Path(cli).exists():
            return {"available": False}
        version: list[float] = []
        ask: list[float] = []
        turn: list[float] = []
        turn_inside: list[float] = []
        bad: list[str] = []
        for i in range(runs + 1):  # run 0 warms the .pyc and page caches; it is not counted
            t0 = time.perf_counter()
            done = subprocess.run([cli, "--version"], capture_output=True, env=env, cwd=REPO, timeout=60)
            v = time.perf_counter() - t0
            secs, stdout, status = _first_byte([cli, "ask", f"ask-{i}", prompt], env)
            if status != 0 or stdout.decode().removesuffix("\n") != text:
                bad.append(f"ask: status {status}, {len(stdout)} bytes")
            elif i:
                ask.append(secs)
            t0 = time.perf_counter()
            proc = subprocess.run([python, "-c", _ONE_TURN.format(home=home, agent=f"lib-{i}", prompt=prompt,
                                                                  heavy=set(HEAVY))],
                                  capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
            wall = time.perf_counter() - t0
            result = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
            if result is None or result["text"] != text:
                bad.append(f"one turn: status {proc.returncode}: {proc.stderr.strip()[-300:]}")
            elif i:
                turn.append(wall)
                turn_inside.append(result["seconds"])
                out["one turn loads"] = result["loaded"]
            if done.returncode == 0 and i:
                version.append(v)
    for name, samples in (("ironspire --version (to exit)", version),
                          ("ironspire ask (to the reply's first byte)", ask),
                          ("library: import + open + one turn (process wall)", turn),
                          ("library: import + open + one turn (in-process)", turn_inside)):
        out[name] = _stats(samples) if samples else {"available": False}
    out["errors"] = bad[:3]
    return out


if __name__ == "__main__":
    print(json.dumps(import_times(sys.executable, 3), indent=2))
    print(json.dumps(agent_memory(sys.executable, 1000), indent=2))
