"""The one command: ``python bench/run.py [--quick]``.

Runs every client against loopback servers in one interleaved session, prints the tables and
(in a full run) rewrites docs/benchmarks.md. On first use it makes bench/.venv with Ironspire
(editable, this checkout) and the baselines (openai, anthropic, litellm), then re-runs itself
there; ``--here`` runs in the current interpreter with whatever clients it can import.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import venv as bench_venv

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
CLIENT_KEYS = ("httpx", "httpx2", "aiohttp", "iron-proto", "iron-agent", "sdk", "litellm", "pydantic-ai", "any-llm")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="about 1-2 minutes, for development")
    mode.add_argument("--smoke", action="store_true",
                      help="seconds: a few requests of raw httpx and Ironspire, to prove the harness works")
    parser.add_argument("--here", action="store_true", help="use this interpreter, not bench/.venv")
    parser.add_argument("--clients", help=f"comma-separated subset of {','.join(CLIENT_KEYS)}")
    parser.add_argument("--formats", default="openai,anthropic", help="openai,anthropic")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: requests,fleet,startup")
    parser.add_argument("--json", type=Path,
                        help="raw results (default: bench/results/full.json, or a temp dir for --quick/--smoke)")
    parser.add_argument("--doc", type=Path, help=f"markdown output (a full run defaults to {DOC.relative_to(REPO)})")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="run nothing: print and write the markdown from an earlier run's JSON "
                             "(e.g. after editing bench/notes.md)")
    parser.add_argument("--profile", metavar="CLIENT:FORMAT:KIND",
                        help="pyinstrument over 500 requests of one client, e.g. iron-agent:openai:send")
    args = parser.parse_args(argv)

    if not (args.here or args.smoke or args.render):
        venv = bench_venv.location()
        if not bench_venv.running_in(venv):
            python = bench_venv.ensure(venv)
            os.execv(python, [str(python), str(Path(__file__).resolve()), *argv])
    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

    from bench import harness, report

    if args.render:
        results = json.loads(args.render.read_text())
        report.print_tables(results)
        report.write_markdown(results, args.doc or DOC)
        return 0
    if args.profile:
        asyncio.run(harness.profile(args.profile, 500))
        return 0

    plan = harness.PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    keys = args.clients.split(",") if args.clients else list(harness.SMOKE_CLIENTS if args.smoke else CLIENT_KEYS)
    unknown = set(keys) - set(CLIENT_KEYS)
    if unknown:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    keys = [k for k in CLIENT_KEYS if k in keys]
    skip = set(filter(None, args.skip.split(",")))
    formats = [f for f in args.formats.split(",") if f]
    results: dict[str, Any] = {"plan": asdict(plan), "clients": keys, "names": {}, "unavailable": {},
                               "machine": report.machine(), "floor": harness.transport_floor()}
    started = time.perf_counter()
    if "requests" not in skip:
        asyncio.run(harness.requests(plan, keys, formats, results))
    if "fleet" not in skip:
        asyncio.run(harness.fleet(plan, keys, results))
    if "startup" not in skip:
        harness.startup_figures(plan, keys, results)
    results["seconds"] = time.perf_counter() - started
    harness.log(f"done in {results['seconds']:.0f} s")

    report.print_tables(results)
    out = args.json or (harness.RESULTS if plan.mode == "full" else harness.SCRATCH) / f"{plan.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    doc = args.doc or (DOC if plan.mode == "full" else None)
    if doc is not None and not args.no_doc:
        report.write_markdown(results, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
