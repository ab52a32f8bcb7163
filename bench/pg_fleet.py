"""Many processes, one truth: N worker processes share M agents on one PostgreSQL database and
run T turns against a loopback provider, while a worker is killed (SIGKILL, mid-turn) every K
completed turns and replaced. Afterwards the database is checked turn by turn.

    python -m bench.pg_fleet                       # the full run: 4 workers x 50 agents, 5,000 turns
    python -m bench.pg_fleet --turns 600 --kill-every 150

It needs PostgreSQL's server binaries (Debian's ``postgresql`` package) and starts a private
server under a temp dir (``tests/support/postgres.py``), or uses ``--database URL``. The test
suite runs a smaller size of the same run (``tests/database/test_fleet.py``).

What is checked (``verify``), over every agent:

- the history alternates user / assistant, and every reply names the number of messages it was
  sent and the last of them: each turn saw exactly the history committed before it, so no two
  turns of an agent ever overlapped, whichever process ran them (no interleaving);
- every turn a worker reported complete is in its agent's history exactly once, in the order
  the provider saw them, and every history message belongs to a turn that was started;
- the ledger has one "ok" row per completed turn, per agent, and one error row per unanswered
  message; no message or ledger row refers to a missing agent (no orphans);
- a killed worker's turns are absent, or whole (committed just before the kill), or marked
  unanswered: never half there.

Latency: each worker times ``agent.send`` per turn, and first times the same number of plain
httpx requests to the same provider at the same concurrency; "added" is the difference of the
two distributions' percentiles, so it includes the store (checks, reloads of a history another
worker extended, commit, partition upkeep) and the cross-process turn lock (waiting for another
worker's turn on the same agent). ``--disjoint`` gives each worker its own agents, which takes
the lock waits (and the reloads) out and leaves the cost of the store itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import pg

REPO = Path(__file__).resolve().parents[1]
MODEL = "fleet-model"


# --- the provider ----------------------------------------------------------------------------


class _Provider(BaseHTTPRequestHandler):
    """OpenAI chat completions: answers ``seen N messages, last: TEXT`` for the history it was sent."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        messages = [m for m in body["messages"] if m.get("role") != "system"]
        last = messages[-1].get("content") if messages else ""
        if isinstance(last, list):
            last = "".join(part.get("text", "") for part in last if isinstance(part, dict))
        delay = float(getattr(self.server, "delay", 0.0))
        if delay:
            time.sleep(delay)
        reply = {
            "id": "c", "object": "chat.completion", "model": body.get("model", MODEL),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"seen {len(messages)} messages, last: {last}"}}],
            "usage": {"prompt_tokens": 10 + len(messages), "completion_tokens": 5, "total_tokens": 15 + len(messages)},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed worker's connection reset mid-request: expected here, nothing to report


class Provider:
    def __init__(self, delay: float = 0.0) -> None:
        self.server = _Server(("127.0.0.1", 0), _Provider)
        self.server.daemon_threads = True
        self.server.delay = delay  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Provider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- a worker process ------------------------------------------------------------------------


def _say(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


async def _baseline(url: str, n: int, concurrency: int) -> list[float]:
    """Plain httpx requests of a turn's shape to the same provider, for the 'added' figures."""
    import httpx

    times: list[float] = []
    body = {"model": MODEL, "messages": [{"role": "user", "content": "baseline"}]}
    async with httpx.AsyncClient(base_url=url) as client:
        async def one() -> None:
            for _ in range(n // concurrency):
                started = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=body)
                response.json()
                times.append(time.perf_counter() - started)
        await asyncio.gather(*(one() for _ in range(concurrency)))
    return times


async def worker(database: str, home: str, provider: str, name: str, agents: int, concurrency: int,
                 seed: int, baseline: int, share: tuple[int, int] | None = None) -> None:
    """Runs turns on random agents, ``concurrency`` at a time, until stdin closes (then finishes
    the turns in flight and exits). Prints one JSON line per started and per finished turn."""
    from ironspire.transport import RetryPolicy, Transport
    from ironspire.workspace import Workspace

    if baseline:
        times = await _baseline(provider, baseline, concurrency)
        _say({"baseline": times})
    ws = Workspace.open(home, database_url=database, transport=Transport(RetryPolicy(attempts=1)))
    rng = random.Random(seed)
    names = [f"agent-{i:02d}" for i in range(agents)]
    if share is not None:  # --disjoint: worker k of n runs agents k, k+n, k+2n... only
        names = names[share[0]::share[1]]
    stopping = asyncio.Event()
    counter = 0

    async def turns() -> None:
        nonlocal counter
        while not stopping.is_set():
            counter += 1
            turn = f"{name}-t{counter}"
            agent = ws.agent(rng.choice(names))
            _say({"start": turn, "agent": agent.name})
            started = time.perf_counter()
            try:
                await agent.send(turn)
            except Exception as exc:
                _say({"failed": turn, "agent": agent.name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            _say({"done": turn, "agent": agent.name, "latency": time.perf_counter() - started})

    async def watch_stdin() -> None:
        await asyncio.to_thread(sys.stdin.read)  # EOF: the harness asks us to stop
        stopping.set()

    _say({"ready": name})
    try:
        await asyncio.gather(watch_stdin(), *(turns() for _ in range(concurrency)))
    finally:
        await ws.aclose()


# --- the harness -----------------------------------------------------------------------------


@dataclass
class Run:
    started: dict[str, str] = field(default_factory=dict)  # turn -> agent
    done: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    in_flight_at_kill: list[int] = field(default_factory=list)
    seconds: float = 0.0


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc, self.name = proc, name
        self.in_flight: set[str] = set()
        self.reader: asyncio.Task[None] | None = None


async def _spawn(name: str, args: argparse.Namespace, database: str, provider: str, seed: int,
                 baseline: int) -> asyncio.subprocess.Process:
    home = Path(args.homes) / name
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "IRONSPIRE_HOME": str(home)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.pg_fleet", "--worker", name, "--database", database, "--provider", provider,
        "--home", str(home), "--agents", str(args.agents), "--concurrency", str(args.concurrency),
        "--seed", str(seed), "--baseline", str(baseline),
        *(["--share", f"{name[1:].split('g')[0]}/{args.workers}"] if args.disjoint else []),
        cwd=REPO, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 24)


async def _read(worker: Worker, run: Run, progress: asyncio.Event) -> None:
    assert worker.proc.stdout is not None
    async for line in worker.proc.stdout:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the last line of a killed worker, cut short
            continue
        if "start" in record:
            run.started[record["start"]] = record["agent"]
            worker.in_flight.add(record["start"])
        elif "done" in record:
            run.done[record["done"]] = record["agent"]
            run.latencies.append(record["latency"])
            worker.in_flight.discard(record["done"])
            progress.set()
        elif "failed" in record:
            run.failed[record["failed"]] = record["error"]
            worker.in_flight.discard(record["failed"])
        elif "baseline" in record:
            run.baseline.extend(record["baseline"])
        elif "ready" in record:
            progress.set()


async def drive(args: argparse.Namespace, database: str, provider: str) -> Run:
    """Runs the fleet until ``args.turns`` turns have completed, killing a worker every
    ``args.kill_every`` completed turns (when it has a turn in flight) and starting another."""
    run = Run()
    progress = asyncio.Event()
    rng = random.Random(args.seed)
    generation = 0
    workers: list[Worker] = []

    async def start(index: int, baseline: int) -> Worker:
        nonlocal generation
        generation += 1
        name = f"w{index}g{generation}"
        w = Worker(await _spawn(name, args, database, provider, args.seed * 1000 + generation, baseline), name)
        w.reader = asyncio.create_task(_read(w, run, progress))
        return w

    workers = [await start(i, args.baseline) for i in range(args.workers)]
    began = time.perf_counter()
    next_kill = args.kill_every
    try:
        while len(run.done) < args.turns:
            progress.clear()
            await asyncio.wait_for(progress.wait(), 120)
            if args.kill_every and len(run.done) >= next_kill:
                busy = [w for w in workers if w.in_flight]
                if busy:
                    victim = rng.choice(busy)
                    run.in_flight_at_kill.append(len(victim.in_flight))
                    victim.proc.send_signal(signal.SIGKILL)
                    await victim.proc.wait()
                    if victim.reader is not None:
                        await victim.reader
                    run.killed.append(victim.name)
                    index = workers.index(victim)
                    workers[index] = await start(index, 0)
                    next_kill += args.kill_every
        run.seconds = time.perf_counter() - began
    finally:
        for w in workers:
            if w.proc.stdin is not None and w.proc.returncode is None:
                w.proc.stdin.close()
        for w in workers:
            try:
                await asyncio.wait_for(w.proc.wait(), 60)
            except TimeoutError:
                w.proc.kill()
                await w.proc.wait()
            if w.reader is not None:
                await w.reader
    return run


def setup(database: str, provider: str, agents: int) -> None:
    """The shared workspace: the provider as a custom endpoint, the default route, the agents."""
    from ironspire.catalog.providers import CustomEndpoint
    from ironspire.store import engines
    from ironspire.workspace import Workspace

    engines.upgrade_url(database)
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.open(home, database_url=database)
        try:
            ws.add_custom_endpoint(CustomEndpoint("fleet", provider + "/v1", MODEL, context_window=1_000_000))
            ws.set_default("custom-fleet", MODEL)
            for i in range(agents):
                ws.create_agent(f"agent-{i:02d}")
        finally:
            ws.close()


def verify(database: str, run: Run) -> dict[str, Any]:
    """Checks the database against what the workers reported; returns the counts, raises
    AssertionError naming the first thing that is wrong."""
    from ironspire.messages import Message
    from ironspire.store.store import Store, UsageFilter

    store = Store.open(database)
    try:
        records = {a.name: a for a in store.agent_records()}
        ledger = store.usage_rows(UsageFilter())
        committed: dict[str, str] = {}
        unanswered: dict[str, str] = {}
        for name, record in records.items():
            ok: list[Message] = []
            for _, body, status, _ in store.transcript(record.id):
                message = Message.from_json(body)
                if status == "unanswered":
                    assert message.role == "user", (name, "an unanswered message that is not the user's")
                    unanswered[message.text] = name
                    continue
                assert status == "ok", (name, status)
                ok.append(message)
            assert len(ok) % 2 == 0, (name, "a turn half stored")
            for index in range(0, len(ok), 2):
                user, reply = ok[index], ok[index + 1]
                assert user.role == "user" and reply.role == "assistant", (name, index, "roles out of turn")
                expected = f"seen {index + 1} messages, last: {user.text}"
                assert reply.text == expected, (name, index, "interleaved", reply.text, expected)
                assert user.text not in committed, (user.text, "stored twice")
                committed[user.text] = name
            ok_rows = sum(1 for r in ledger if r["agent"] == name and r["outcome"] == "ok")
            assert ok_rows == len(ok) // 2, (name, "ledger rows", ok_rows, "turns", len(ok) // 2)
            error_rows = sum(1 for r in ledger if r["agent"] == name and r["outcome"] != "ok")
            assert error_rows == sum(1 for v in unanswered.values() if v == name), (name, "error rows")
        assert {r["agent"] for r in ledger} <= set(records), "ledger rows of unknown agents"
        for turn, agent in run.done.items():
            assert committed.get(turn) == agent, (turn, "reported done but not in", agent, "history")
        for turn, agent in {**committed, **unanswered}.items():
            assert run.started.get(turn) == agent, (turn, "stored but never started on", agent)
        lost = [t for t in run.started if t not in run.done and t not in run.failed]
        whole = [t for t in lost if t in committed]  # committed in the instant before the kill
        marked = [t for t in lost if t in unanswered]
        orphans = store.counts()
        return {"agents": len(records), "committed_turns": len(committed), "reported_done": len(run.done),
                "failed": len(run.failed), "killed_workers": len(run.killed),
                "interrupted_turns": len(lost), "interrupted_but_committed": len(whole),
                "interrupted_marked_unanswered": len(marked),
                "interrupted_absent": len(lost) - len(whole) - len(marked),
                "ledger_rows": len(ledger), "messages": orphans["messages"]}
    finally:
        store.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def figures(run: Run) -> dict[str, Any]:
    ms = 1000.0
    out: dict[str, Any] = {"turns_per_s": len(run.done) / run.seconds if run.seconds else 0.0,
                           "seconds": run.seconds}
    for q in (50, 99):
        turn = percentile(run.latencies, q) * ms
        raw = percentile(run.baseline, q) * ms
        out[f"p{q}_turn_ms"], out[f"p{q}_raw_ms"], out[f"p{q}_added_ms"] = turn, raw, turn - raw
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with pg.database(args.database) as database:
        with Provider(args.delay) as provider:
            setup(database, provider.url, args.agents)
            run = await drive(args, database, provider.url)
        return {"config": {k: getattr(args, k) for k in ("workers", "agents", "turns", "kill_every",
                                                         "concurrency", "delay", "disjoint")},
                "checks": verify(database, run), "figures": figures(run)}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--turns", type=int, default=5000)
    p.add_argument("--kill-every", type=int, default=250, help="completed turns between two kills (0: none)")
    p.add_argument("--concurrency", type=int, default=4, help="turns in flight per worker")
    p.add_argument("--delay", type=float, default=0.002, help="the provider's think time per request (s)")
    p.add_argument("--baseline", type=int, default=400, help="plain httpx requests per worker, first")
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--disjoint", action="store_true",
                   help="each worker runs its own share of the agents (no waiting on another worker's turn)")
    p.add_argument("--database", help="PostgreSQL URL (default: a private server under a temp dir)")
    p.add_argument("--homes", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help="write the result here too")
    # worker mode (started by the harness)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--provider", help=argparse.SUPPRESS)
    p.add_argument("--home", help=argparse.SUPPRESS)
    p.add_argument("--share", help=argparse.SUPPRESS)
    return p


def cli(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = _parser().parse_args(argv)
    if args.worker:
        share = tuple(int(x) for x in args.share.split("/")) if args.share else None
        asyncio.run(worker(args.database, args.home, args.provider, args.worker, args.agents, args.concurrency,
                           args.seed, args.baseline, share))  # type: ignore[arg-type]
        return None
    with tempfile.TemporaryDirectory() as homes:
        args.homes = homes
        result = asyncio.run(main(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    cli()
