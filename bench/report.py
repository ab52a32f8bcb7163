"""Turning a run's results into the printed table and docs/benchmarks.md.

The markdown file is regenerated whole on every full run; the hand-written analysis lives in
bench/notes.md and is copied in, so re-running the benchmark never loses it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import payloads

REPO = Path(__file__).resolve().parents[1]
NOTES = REPO / "bench" / "notes.md"
PACKAGES = ("ironspire", "httpx", "httpcore", "h11", "pydantic", "SQLAlchemy", "openai", "anthropic", "litellm",
            "aiohttp", "uvloop")

CPU_TARGET_VS_HTTPX = 1.3
CPU_TARGET_VS_LITELLM = 5.0
IMPORT_TARGET_MS = 150.0


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
        "implementation": platform.python_implementation(), "os": f"{platform.system()} {platform.release()}",
        "packages": versions, "commit": commit,
    }


# --- derived figures ---------------------------------------------------------------------------


def _get(results: dict[str, Any], scenario: str, fmt: str, key: str) -> dict[str, Any] | None:
    row = results.get("scenarios", {}).get(scenario, {}).get(fmt, {}).get(key)
    return row if row and row.get("n") else None


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, field: str = "cpu_us") -> float | None:
    if not a or not b or not a.get(field) or not b.get(field):
        return None
    return float(a[field]) / float(b[field])


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it was met."""
    out = []
    for fmt in ("openai", "anthropic"):
        for scenario, label in (("seq_send", "non-streamed"), ("seq_stream", "streamed")):
            agent = _get(results, scenario, fmt, "iron-agent")
            floor = _get(results, scenario, fmt, "httpx")
            lite = _get(results, scenario, fmt, "litellm")
            r = ratio(agent, floor)
            if r is not None:
                out.append({"target": f"CPU/request, agent incl. ledger ÷ raw httpx, {fmt} {label}",
                            "goal": f"≤ {CPU_TARGET_VS_HTTPX}×", "value": f"{r:.2f}×", "met": r <= CPU_TARGET_VS_HTTPX})
            r2 = ratio(lite, agent)
            if r2 is not None:
                out.append({"target": f"CPU/request, LiteLLM ÷ Ironspire agent, {fmt} {label}",
                            "goal": f"≥ {CPU_TARGET_VS_LITELLM}×", "value": f"{r2:.1f}×",
                            "met": r2 >= CPU_TARGET_VS_LITELLM})
    imports = results.get("startup", {}).get("imports", {})
    for name in ("import ironspire", "ironspire: everything a turn needs"):
        row = imports.get(name)
        if row and row.get("available"):
            out.append({"target": f"import time, {name}", "goal": f"< {IMPORT_TARGET_MS:.0f} ms",
                        "value": f"{row['ms']:.0f} ms", "met": row["ms"] < IMPORT_TARGET_MS})
    return out


# --- tables ------------------------------------------------------------------------------------


def _f(v: Any, fmt: str = "{:.0f}") -> str:
    return "–" if v is None else fmt.format(v)


def _x(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def tables(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every table; shared by the terminal and the markdown output."""
    names = results.get("names", {})
    order = results.get("clients", [])
    out = []
    rows = []
    for fmt in ("openai", "anthropic"):
        floor = _get(results, "seq_send", fmt, "httpx")
        for key in order:
            seq = _get(results, "seq_send", fmt, key)
            if seq is None:
                continue
            conc = _get(results, "conc_send", fmt, key)
            rows.append([fmt, names.get(f"{fmt}:{key}", key), _f(seq.get("cpu_us")), _x(ratio(seq, floor)),
                         _f(seq.get("p50_ms"), "{:.2f}"), _f(seq.get("p99_ms"), "{:.2f}"),
                         _f(conc and conc.get("throughput")), _f(conc and conc.get("cpu_us")),
                         _f(conc and conc.get("p99_ms"), "{:.1f}"), _ok(seq, conc)])
    out.append(("Non-streamed request (sequential; and 64 in flight)",
                ["format", "client", "CPU µs/req", "× httpx", "p50 ms", "p99 ms", "req/s @64", "CPU µs/req @64",
                 "p99 ms @64", "ok"], rows))
    rows = []
    for fmt in ("openai", "anthropic"):
        floor = _get(results, "seq_stream", fmt, "httpx")
        for key in order:
            s = _get(results, "seq_stream", fmt, key)
            if s is None:
                continue
            per_chunk = s["cpu_us"] / payloads.CHUNKS if s.get("cpu_us") else None
            rows.append([fmt, names.get(f"{fmt}:{key}", key), _f(s.get("cpu_us")), _f(per_chunk, "{:.1f}"),
                         _x(ratio(s, floor)), _f(s.get("ttfc_p50_ms"), "{:.2f}"), _f(s.get("ttfc_p99_ms"), "{:.2f}"),
                         _f(s.get("p50_ms"), "{:.2f}"), _f(s.get("p99_ms"), "{:.2f}"), _ok(s)])
    out.append((f"Streamed request ({payloads.CHUNKS} text chunks + usage, sequential)",
                ["format", "client", "CPU µs/stream", "CPU µs/chunk", "× httpx", "first chunk p50 ms",
                 "first chunk p99 ms", "total p50 ms", "total p99 ms", "ok"], rows))
    fleet = results.get("fleet")
    if fleet:
        rows = []
        floor = fleet["clients"].get("httpx")
        for key in order:
            f = fleet["clients"].get(key)
            if not f or not f.get("n"):
                continue
            added = (f["p99_ms"] - floor["p99_ms"]) if floor and f is not floor and f.get("p99_ms") else None
            rows.append([names.get(f"openai:{key}", key) + " (openai)", _f(f.get("throughput"), "{:.1f}"),
                         _f(f["throughput"] * payloads.CHUNKS if f.get("throughput") else None),
                         _f(f.get("cpu_us")), _x(ratio(f, floor)), _f(f.get("p50_ms")), _f(f.get("p99_ms")),
                         "–" if added is None else f"{added:+.0f}", _f(f.get("ttfc_p99_ms"), "{:.1f}"), _ok(f)])
        out.append((f"Fleet: {fleet['agents']} agents streaming at once over {fleet['servers']} loopback providers "
                    f"({fleet['chunk_delay_ms']:g} ms between chunks, so a stream takes ≥ "
                    f"{fleet['chunk_delay_ms'] * payloads.CHUNKS / 1000:g} s)",
                    ["client", "streams/s", "chunks/s", "CPU µs/stream", "× httpx", "p50 ms", "p99 ms",
                     "added p99 ms", "first chunk p99 ms", "ok"], rows))
    startup = results.get("startup", {})
    if startup.get("imports"):
        rows = [[name, _f(r.get("ms"), "{:.0f}"), _f(r.get("min_ms"), "{:.0f}"), _f(r.get("rss_mb"), "{:.1f}"),
                 _f(r.get("modules"))]
                for name, r in startup["imports"].items() if r.get("available")]
        out.append((f"Import (fresh process, median of {startup.get('runs', '?')})",
                    ["what", "median ms", "min ms", "RSS MB after", "modules loaded"], rows))
    mem = startup.get("agents")
    if mem and mem.get("available"):
        out.append(("Memory per idle agent (one Workspace)",
                    ["agents loaded", "RSS before MB", "RSS after MB", "RSS per agent KB", "Python heap per agent KB"],
                    [[str(mem["agents"]), f"{mem['rss_before_mb']:.1f}", f"{mem['rss_after_mb']:.1f}",
                      f"{mem['rss_per_agent_kb']:.2f}", f"{mem['heap_per_agent_kb']:.2f}"]]))
    t = targets(results)
    if t:
        out.append(("Targets", ["target", "goal", "measured", "met"],
                    [[x["target"], x["goal"], x["value"], "yes" if x["met"] else "NO"] for x in t]))
    return out


def _ok(*tallies: dict[str, Any] | None) -> str:
    n = sum(t["n"] for t in tallies if t)
    ok = sum(t["ok"] for t in tallies if t)
    return f"{ok}/{n}"


def _text_columns(header: list[str]) -> list[bool]:
    return [h in ("format", "client", "what", "target", "goal") for h in header]


def print_tables(results: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        for title, header, rows in tables(results):
            print(f"\n{title}\n" + " | ".join(header))
            for row in rows:
                print(" | ".join(row))
        return
    console = Console(width=None if sys.stdout.isatty() else 200)
    for title, header, rows in tables(results):
        table = Table(title=title, title_justify="left")
        for h, first in zip(header, _text_columns(header), strict=True):
            table.add_column(h, justify="left" if first else "right")
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    for fmt_key, errors in failures(results):
        console.print(f"[red]{fmt_key}: {errors}[/red]")


def failures(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    out = []
    for scenario, by_fmt in results.get("scenarios", {}).items():
        for fmt, by_client in by_fmt.items():
            for key, row in by_client.items():
                if row.get("errors"):
                    out.append((f"{scenario} {fmt} {key}", row["errors"]))
    for key, row in (results.get("fleet") or {}).get("clients", {}).items():
        if row.get("errors"):
            out.append((f"fleet {key}", row["errors"]))
    for key, reason in results.get("unavailable", {}).items():
        out.append((f"{key} not run", [reason]))
    return out


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    plan = results["plan"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python bench/run.py` (see [bench/README.md](../bench/README.md) for the method). "
        "Do not edit the figures by hand: re-run the command.",
        "",
        f"- Date: {m['date']}; mode: `{plan['mode']}`; commit `{m['commit']}` (working tree)",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['os']}, {m['implementation']} {m['python']}",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        f"- Requests per client and scenario: {plan['rounds']} interleaved rounds × {plan['seq']} sequential "
        f"(plus {plan['conc_total']} per round at {plan['concurrency']} in flight); the loopback server runs in "
        "its own process, so CPU figures are the client's alone.",
        "",
    ]
    for title, header, rows in tables(results):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" if t else "---:" for t in _text_columns(header)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    prof = results.get("startup", {}).get("import_profile")
    if prof:
        lines += ["## Slowest imports on Ironspire's turn path (`python -X importtime`, one run)", "",
                  "| module | self ms | cumulative ms |", "|---|---:|---:|"]
        lines += [f"| `{name}` | {s:.1f} | {c:.1f} |" for name, s, c in prof]
        lines.append("")
    fails = failures(results)
    if fails:
        lines += ["## Failures during the run", ""] + [f"- {k}: {'; '.join(v)}" for k, v in fails] + [""]
    if NOTES.exists():
        lines += [NOTES.read_text().rstrip(), ""]
    return "\n".join(lines)


def write_markdown(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results))
    print(f"wrote {path}", file=sys.stderr)
