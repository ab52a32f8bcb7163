"""Orchestrating a run: the request scenarios, the fleet, the fresh-process figures, profiles.

Kept apart from bench/run.py so that the command can bootstrap its venv with nothing but the
standard library imported.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import payloads, startup
from bench.clients import CLIENTS, Client
from bench.measure import Kind, Tally, concurrent, rotate, sequential
from bench.servers import loopback

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"  # a full run's raw figures, kept with the docs
SCRATCH = Path(tempfile.gettempdir()) / "ironspire-bench"  # quick/smoke results and profiles


@dataclass(frozen=True)
class Plan:
    mode: str
    rounds: int  # interleaved rounds; every client runs every scenario once per round
    seq: int  # sequential requests per client, scenario and round
    conc_total: int  # requests per client and round with `concurrency` in flight
    concurrency: int = 64
    fleet_agents: int = 200
    fleet_servers: int = 4
    fleet_rounds: int = 5
    fleet_delay_ms: float = 20.0
    import_runs: int = 9
    idle_agents: int = 1000


PLANS = {
    "full": Plan("full", rounds=6, seq=60, conc_total=384, fleet_rounds=4, import_runs=7),
    "quick": Plan("quick", rounds=3, seq=30, conc_total=192, fleet_rounds=2, import_runs=3),
    "smoke": Plan("smoke", rounds=1, seq=3, conc_total=8, concurrency=4, fleet_agents=8, fleet_rounds=1,
                  fleet_delay_ms=1.0, import_runs=1, idle_agents=20),
}
SMOKE_CLIENTS = ("httpx", "aiohttp", "iron-proto", "iron-agent")
FLEET_CLIENTS = ("httpx", "httpx2", "aiohttp", "iron-proto", "iron-agent")


def transport_floor() -> str:
    """The raw client matching the HTTP client under Ironspire's transport (its default seam)."""
    try:
        from ironspire.http import DEFAULT_CLIENT
    except ImportError:  # before the transport had a client seam it was httpx
        return "httpx"
    return {"aiohttp": "aiohttp", "httpx2": "httpx2"}.get(DEFAULT_CLIENT, "httpx")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def _open(keys: list[str], fmt: str, urls: list[str], unavailable: dict[str, str]) -> list[Client]:
    clients = []
    for key in keys:
        client = CLIENTS[key](fmt)
        try:
            await client.open(urls)
        except ImportError as exc:
            unavailable[f"{fmt}:{key}"] = f"not installed ({exc.name})"
            continue
        clients.append(client)
    return clients


async def _warm(clients: list[Client], plan: Plan) -> None:
    """First requests import lazily loaded code and open pools; none of that is timed."""
    for c in clients:
        await sequential(c, "send", 3)
        await sequential(c, "stream", 3)
        await concurrent(c, "send", plan.concurrency * 2, plan.concurrency)


async def requests(plan: Plan, keys: list[str], formats: list[str], results: dict[str, Any]) -> None:
    scenarios: dict[str, dict[str, dict[str, Tally]]] = {}
    with loopback(1) as urls:
        by_fmt = {fmt: await _open(keys, fmt, urls, results["unavailable"]) for fmt in formats}
        for fmt, clients in by_fmt.items():
            for c in clients:
                results["names"][f"{fmt}:{c.key}"] = c.name
            await _warm(clients, plan)
        log("warm-up done")
        for r in range(plan.rounds):
            t0 = time.perf_counter()
            for fmt, clients in by_fmt.items():
                for kind in ("send", "stream"):
                    kind_: Kind = "send" if kind == "send" else "stream"
                    for c in rotate(clients, r):
                        tally = scenarios.setdefault(f"seq_{kind}", {}).setdefault(fmt, {}).setdefault(c.key, Tally())
                        await sequential(c, kind_, plan.seq, tally)
                for c in rotate(clients, r):
                    tally = scenarios.setdefault("conc_send", {}).setdefault(fmt, {}).setdefault(c.key, Tally())
                    await concurrent(c, "send", plan.conc_total, plan.concurrency, tally)
            log(f"round {r + 1}/{plan.rounds} ({time.perf_counter() - t0:.1f} s)")
        for clients in by_fmt.values():
            for c in clients:
                await c.close()
    results["scenarios"] = {s: {f: {k: t.summary() for k, t in byc.items()} for f, byc in byf.items()}
                            for s, byf in scenarios.items()}


async def fleet(plan: Plan, keys: list[str], results: dict[str, Any]) -> None:
    """``fleet_agents`` streams at once, spread over ``fleet_servers`` providers whose servers pace
    their chunks, so every stream is really in flight together."""
    tallies: dict[str, Tally] = {}
    with loopback(plan.fleet_servers, plan.fleet_delay_ms) as urls:
        clients = await _open([k for k in FLEET_CLIENTS if k in keys], "openai", urls, results["unavailable"])
        for c in clients:
            results["names"].setdefault(f"openai:{c.key}", c.name)
        for c in clients:  # warm every provider's pool
            await concurrent(c, "stream", plan.fleet_agents, plan.fleet_agents)
        for r in range(plan.fleet_rounds):
            for c in rotate(clients, r):
                gc.collect()
                await concurrent(c, "stream", plan.fleet_agents, plan.fleet_agents, tallies.setdefault(c.key, Tally()))
            log(f"fleet round {r + 1}/{plan.fleet_rounds}")
        for c in clients:
            await c.close()
    results["fleet"] = {"agents": plan.fleet_agents, "servers": plan.fleet_servers,
                        "chunk_delay_ms": plan.fleet_delay_ms, "rounds": plan.fleet_rounds,
                        "clients": {k: t.summary() for k, t in tallies.items()}}


def startup_figures(plan: Plan, keys: list[str], results: dict[str, Any]) -> None:
    names = None
    if "litellm" not in keys or "sdk" not in keys:
        names = [n for n in startup.IMPORTS if not any(x in n for x in ("openai", "anthropic", "litellm"))]
    log("import times (fresh processes)...")
    results["startup"] = {"runs": plan.import_runs,
                          "imports": startup.import_times(sys.executable, plan.import_runs, names),
                          "import_profile": startup.import_profile(sys.executable)}
    log("whole commands (fresh processes)...")
    with loopback(1) as urls:
        results["startup"]["commands"] = startup.command_times(
            sys.executable, plan.import_runs, urls[0], payloads.TEXT, payloads.PROMPT, payloads.OPENAI_MODEL)
    log(f"memory with {plan.idle_agents} idle agents...")
    results["startup"]["agents"] = startup.agent_memory(sys.executable, plan.idle_agents)


async def profile(spec: str, n: int) -> None:
    """``--profile CLIENT:FORMAT:KIND``: pyinstrument over ``n`` sequential requests."""
    from pyinstrument import Profiler

    key, fmt, kind = spec.split(":")
    with loopback(1) as urls:
        client = CLIENTS[key](fmt)
        await client.open(urls)
        kind_: Kind = "stream" if kind == "stream" else "send"
        await sequential(client, kind_, 20)
        prepare = getattr(client, "prepare", None)
        if prepare is not None:
            prepare(n)
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        await sequential(client, kind_, n)
        profiler.stop()
        await client.close()
    SCRATCH.mkdir(exist_ok=True)
    out = SCRATCH / f"profile-{key}-{fmt}-{kind}.html"
    out.write_text(profiler.output_html())
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    log(f"wrote {out}")


