"""Instructions per request, counted by valgrind's callgrind: a figure a busy machine cannot move.

On a shared 2-core VM the timed tables move by 10-20% between runs, more than most single
changes to the turn path are worth. An instruction count does not move: the same interpreter,
code and inputs execute the same instructions whatever else the machine is doing. Each figure is
the difference between two runs of one client that differ only in the number of timed requests
(``--few`` and ``--many``, after 50 untimed ones), divided by the difference, so start-up,
imports and the creation of the agents cancel out.

What it leaves out, so read it beside the timed tables, not instead of them: the kernel (system
calls: the WAL's writes, file locks, the sockets), cache misses and stalls, the loopback server
(a process of its own, not traced), and threads' waiting. It is user-space work of the client's
process and nothing else.

    python -m bench.instructions [--clients aiohttp,iron-proto,iron-agent] [--kinds send,stream] [--in-flight 64]

Run it in bench/.venv (``python bench/run.py`` makes it); it needs valgrind (Debian's package).
Each client and kind takes about two minutes (two traced processes, one per core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WARMUP = 50
KINDS = ("send", "stream")
DEFAULT_CLIENTS = ("aiohttp", "iron-proto", "iron-agent")
_COLLECTED = re.compile(r"Collected : (\d+)")


async def _requests(key: str, kind: str, count: int, agents: int, in_flight: int = 1) -> None:
    """``count`` checked requests of one client (after the warm-up), against its own server,
    ``in_flight`` at once. ``agents``: made beforehand, the same number in both runs of a figure
    (making one costs more than a turn, so a count that differed would not cancel out)."""
    from bench import clients
    from bench.measure import Tally
    from bench.servers import loopback

    chosen = clients.CLIENTS[key]
    with loopback(1) as urls:
        client = chosen("openai")
        await client.open(urls)
        prepare = getattr(client, "prepare", None)
        if prepare is not None:  # every turn from a fresh agent, as in the timed tables
            prepare(agents)
        tally = Tally()
        call = client.send if kind == "send" else client.stream
        remaining = WARMUP + count

        async def worker(slot: int) -> None:  # as bench.measure.concurrent keeps them in flight
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                tally.check(await call(slot))

        await asyncio.gather(*(worker(i) for i in range(in_flight)))
        await client.close()
    if tally.ok != tally.n:
        raise SystemExit(f"{key} {kind}: {tally.n - tally.ok} of {tally.n} answers were wrong: {tally.errors}")


def _traced(key: str, kind: str, count: int, agents: int, in_flight: int, out: Path) -> subprocess.Popen[str]:
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--trace-children=no",
               sys.executable, "-m", "bench.instructions", "--worker", key, kind, str(count), str(agents),
               str(in_flight)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _collected(proc: subprocess.Popen[str], what: str) -> int:
    _, err = proc.communicate()
    found = _COLLECTED.findall(err)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"{what}: the traced run failed (exit {proc.returncode}):\n{err[-2000:]}")
    return int(found[-1])


def count(key: str, kind: str, few: int, many: int, in_flight: int = 1) -> float:
    """Instructions per request of one client and kind: (many - few) requests' worth, averaged."""
    with tempfile.TemporaryDirectory(prefix="ironspire-callgrind-") as tmp:
        runs = [_traced(key, kind, n, WARMUP + many, in_flight, Path(tmp) / f"cg.{n}") for n in (few, many)]
        totals = [_collected(proc, f"{key} {kind} x{n}") for proc, n in zip(runs, (few, many), strict=True)]
    return (totals[1] - totals[0]) / (many - few)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default=",".join(DEFAULT_CLIENTS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--few", type=int, default=200)
    parser.add_argument("--many", type=int, default=1200)
    parser.add_argument("--in-flight", type=int, default=1,
                        help="requests kept in flight at once (64: the timed tables' concurrency column)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", nargs=5, metavar=("CLIENT", "KIND", "N", "AGENTS", "IN_FLIGHT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        key, kind, n, agents, in_flight = args.worker
        asyncio.run(_requests(key, kind, int(n), int(agents), int(in_flight)))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    os.environ.setdefault("PYTHONHASHSEED", "0")  # the same dict layouts in both runs
    keys = [k.strip() for k in args.clients.split(",") if k.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    results: dict[str, dict[str, float]] = {}
    for kind in kinds:
        for key in keys:
            results.setdefault(kind, {})[key] = count(key, kind, args.few, args.many, args.in_flight)
            print(f"{kind:6s} {key:12s} {results[kind][key] / 1000:9.1f} k instructions/request", flush=True)
    for kind, row in results.items():
        floor = row.get("aiohttp")
        if floor:
            print(kind, "  ".join(f"{k} {v / floor:.2f}x" for k, v in row.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
