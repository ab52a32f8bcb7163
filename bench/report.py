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
PACKAGES = ("ironspire", "httpx", "httpcore", "h11", "httpx2", "aiohttp", "pydantic", "SQLAlchemy", "openai",
            "anthropic", "litellm", "pydantic-ai-slim", "any-llm-sdk", "uvloop")

#: the issue's targets, as ratios within one run (figures across runs are not comparable)
CPU_VS_RAW = {"seq_send": 1.2, "seq_stream": 1.15}  # agent incl. ledger ÷ the raw client it is built on
LITELLM_OVER_AGENT = {"seq_send": 5.0, "seq_stream": 10.0}
THROUGHPUT_VS_RAW = 0.8  # agent req/s at 64 in flight ÷ the raw client's (and ≥ the official SDK's)
FLEET_ADDED_P99_MS = 20.0
IMPORT_TARGET_MS = 150.0
VERSION_TARGET_MS = 150.0
ASK_TARGET_MS = 300.0
PEERS = ("pydantic-ai", "any-llm")


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


def floor_key(results: dict[str, Any]) -> str:
    """The raw client Ironspire's transport is built on: the floor its overhead is measured against."""
    return str(results.get("floor", "httpx"))


def _row(target: str, goal: str, value: str, met: bool) -> dict[str, Any]:
    return {"target": target, "goal": goal, "value": value, "met": met}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each of the issue's targets with its measured value and whether it was met."""
    out = []
    raw = floor_key(results)
    names = results.get("names", {})
    raw_name = names.get(f"openai:{raw}", raw)
    for fmt in ("openai", "anthropic"):
        for scenario, label in (("seq_send", "non-streamed"), ("seq_stream", "streamed")):
            agent = _get(results, scenario, fmt, "iron-agent")
            r = ratio(agent, _get(results, scenario, fmt, raw))
            if r is not None:
                goal = CPU_VS_RAW[scenario]
                out.append(_row(f"CPU/request, agent incl. ledger ÷ {raw_name}, {fmt} {label}", f"≤ {goal}×",
                                f"{r:.2f}×", r <= goal))
            r = ratio(_get(results, scenario, fmt, "litellm"), agent)
            if r is not None:
                goal = LITELLM_OVER_AGENT[scenario]
                out.append(_row(f"CPU/request, LiteLLM ÷ agent, {fmt} {label}", f"≥ {goal:g}×", f"{r:.1f}×",
                                r >= goal))
            for peer in PEERS:
                r = ratio(_get(results, scenario, fmt, peer), agent)
                if r is not None:
                    out.append(_row(f"CPU/request, {names.get(f'{fmt}:{peer}', peer)} ÷ agent, {fmt} {label}",
                                    "> 1×", f"{r:.2f}×", r > 1.0))
        agent = _get(results, "conc_send", fmt, "iron-agent")
        if agent and agent.get("throughput"):
            r = ratio(agent, _get(results, "conc_send", fmt, raw), "throughput")
            if r is not None:
                out.append(_row(f"req/s with 64 in flight, agent ÷ {raw_name}, {fmt}", f"≥ {THROUGHPUT_VS_RAW}×",
                                f"{r:.2f}×", r >= THROUGHPUT_VS_RAW))
            r = ratio(agent, _get(results, "conc_send", fmt, "sdk"), "throughput")
            if r is not None:
                out.append(_row(f"req/s with 64 in flight, agent ÷ {names.get(f'{fmt}:sdk', 'SDK')}, {fmt}",
                                "≥ 1×", f"{r:.2f}×", r >= 1.0))
    fleet = (results.get("fleet") or {}).get("clients", {})
    agent, base = fleet.get("iron-agent"), fleet.get(raw)
    if agent and base and agent.get("p99_ms") and base.get("p99_ms"):
        added = agent["p99_ms"] - base["p99_ms"]
        out.append(_row(f"fleet (200 streams, 4 providers): added p99 vs {raw_name}", f"< {FLEET_ADDED_P99_MS:g} ms",
                        f"{added:+.0f} ms", added < FLEET_ADDED_P99_MS))
    startup = results.get("startup", {})
    row = startup.get("imports", {}).get("ironspire: everything a turn needs")
    if row and row.get("available"):
        out.append(_row("import of everything a turn needs (fresh process, median)", f"< {IMPORT_TARGET_MS:.0f} ms",
                        f"{row['ms']:.0f} ms", row["ms"] < IMPORT_TARGET_MS))
    commands = startup.get("commands", {})
    for name, goal in (("ironspire --version (to exit)", VERSION_TARGET_MS),
                       ("ironspire ask (to the reply's first byte)", ASK_TARGET_MS)):
        row = commands.get(name)
        if row and row.get("available"):
            out.append(_row(f"{name}, fresh process, median", f"< {goal:.0f} ms", f"{row['ms']:.0f} ms",
                            row["ms"] < goal))
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
        floor_row = fleet["clients"].get("httpx")
        base = fleet["clients"].get(floor_key(results))
        for key in order:
            f = fleet["clients"].get(key)
            if not f or not f.get("n"):
                continue
            added = (f["p99_ms"] - base["p99_ms"]) if base and f is not base and f.get("p99_ms") else None
            rows.append([names.get(f"openai:{key}", key) + " (openai)", _f(f.get("throughput"), "{:.1f}"),
                         _f(f["throughput"] * payloads.CHUNKS if f.get("throughput") else None),
                         _f(f.get("cpu_us")), _x(ratio(f, floor_row)), _f(f.get("p50_ms")), _f(f.get("p99_ms")),
                         "–" if added is None else f"{added:+.0f}", _f(f.get("ttfc_p99_ms"), "{:.1f}"), _ok(f)])
        out.append((f"Fleet: {fleet['agents']} agents streaming at once over {fleet['servers']} loopback providers "
                    f"({fleet['chunk_delay_ms']:g} ms between chunks, so a stream takes ≥ "
                    f"{fleet['chunk_delay_ms'] * payloads.CHUNKS / 1000:g} s)",
                    ["client", "streams/s", "chunks/s", "CPU µs/stream", "× httpx", "p50 ms", "p99 ms",
                     f"added p99 ms vs {floor_key(results)}", "first chunk p99 ms", "ok"], rows))
    startup = results.get("startup", {})
    if startup.get("imports"):
        rows = [[name, _f(r.get("ms"), "{:.0f}"), _f(r.get("min_ms"), "{:.0f}"), _f(r.get("rss_mb"), "{:.1f}"),
                 _f(r.get("modules"))]
                for name, r in startup["imports"].items() if r.get("available")]
        out.append((f"Import (fresh process, median of {startup.get('runs', '?')})",
                    ["what", "median ms", "min ms", "RSS MB after", "modules loaded"], rows))
    commands = {k: v for k, v in startup.get("commands", {}).items() if isinstance(v, dict)}
    if commands:
        rows = [[name, _f(r.get("ms"), "{:.0f}"), _f(r.get("min_ms"), "{:.0f}"), _f(r.get("max_ms"), "{:.0f}")]
                for name, r in commands.items() if r.get("available")]
        out.append((f"Whole commands (fresh process each, median of {startup.get('runs', '?')} after a warm-up; "
                    "every reply checked)", ["what", "median ms", "min ms", "max ms"], rows))
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
    errors = results.get("startup", {}).get("commands", {}).get("errors")
    if errors:
        out.append(("whole commands", errors))
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


ANALYSIS = "## Analysis (hand-written"


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading line, whole section) for each ``## `` section, the text before the first as ("", ...)."""
    parts = ("\n" + text).split("\n## ")
    out = [("", parts[0].lstrip("\n"))]
    for part in parts[1:]:
        out.append(("## " + part.split("\n", 1)[0], "## " + part))
    return out


def keep_others(old: str, new: str) -> str:
    """``new`` with the sections of ``old`` that this report does not write (the ones
    ``bench/analytics.py`` and ``bench/history_scale.py`` put in the same file) kept, before the
    hand-written analysis, so re-running the request benchmark never drops their figures."""
    own = {heading for heading, _ in _sections(new)}
    kept = [body.rstrip("\n") + "\n" for heading, body in _sections(old)[1:]
            if heading not in own and not heading.startswith(ANALYSIS)]
    if not kept:
        return new
    before, marker, rest = new.partition("\n" + ANALYSIS)
    return before.rstrip("\n") + "\n\n" + "\n".join(kept) + marker + rest if marker else new + "\n" + "\n".join(kept)


def write_markdown(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(results)
    if path.exists():
        text = keep_others(path.read_text(), text)
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)
