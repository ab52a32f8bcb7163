"""The benchmark harness still works: ``bench/run.py --smoke`` runs raw httpx, raw aiohttp (the client
under the transport) and Ironspire (protocol layer and agent) against the loopback servers, and
every request comes back whole; the whole-command figures come from checked replies.

Only correctness is asserted (full text and usage per request, no failures); the figures a
smoke run prints are meaningless and never checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLIENTS = ("httpx", "aiohttp", "iron-proto", "iron-agent")


def test_smoke_run_gets_every_answer_whole(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--skip", "startup", "--json", str(out),
         "--no-doc"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["unavailable"] == {}

    for scenario in ("seq_send", "seq_stream", "conc_send"):
        for fmt in ("openai", "anthropic"):
            rows = results["scenarios"][scenario][fmt]
            assert sorted(rows) == sorted(CLIENTS)
            for key, row in rows.items():
                assert row["n"] > 0, (scenario, fmt, key)
                assert row["ok"] == row["n"], (scenario, fmt, key, row["errors"])
                assert row["errors"] == []
                if scenario == "seq_stream":  # the text really arrived as a stream of chunks
                    assert row["ttfc_n"] == row["n"], (fmt, key)

    fleet = results["fleet"]["clients"]
    assert sorted(fleet) == sorted(CLIENTS)
    for key, row in fleet.items():
        assert row["n"] == results["fleet"]["agents"] * results["fleet"]["rounds"], key
        assert row["ok"] == row["n"], (key, row["errors"])
        assert row["ttfc_n"] == row["n"], key

    assert "raw httpx" in proc.stdout and "ironspire agent" in proc.stdout


def test_whole_command_figures_come_from_checked_replies() -> None:
    sys.path.insert(0, str(REPO))
    from bench import payloads, servers, startup

    with servers.loopback(1) as urls:
        got = startup.command_times(sys.executable, 1, urls[0], payloads.TEXT, payloads.PROMPT, payloads.OPENAI_MODEL)
    assert got["errors"] == []
    for name in ("ironspire ask (to the reply's first byte)", "library: import + open + one turn (process wall)"):
        assert got[name]["available"] and got[name]["runs"] == 1, name
    with servers.loopback(1) as urls:  # a server that answers something else: the figure is refused
        wrong = startup.command_times(sys.executable, 1, urls[0], payloads.TEXT + "!", payloads.PROMPT,
                                      payloads.OPENAI_MODEL)
    assert not wrong["ironspire ask (to the reply's first byte)"]["available"]
    assert wrong["errors"]


def test_rewriting_the_doc_keeps_the_sections_other_scripts_wrote() -> None:
    """`bench/run.py` regenerates its tables; the Analytics and history sections that
    bench/analytics.py and bench/history_scale.py wrote into the same file stay, before the
    hand-written analysis, and a section it writes itself is replaced, not doubled."""
    sys.path.insert(0, str(REPO))
    try:
        from bench.report import keep_others
    finally:
        sys.path.remove(str(REPO))
    old = ("# Benchmarks\n\nold header\n\n## Targets\n\nold targets\n\n## Analytics panel\n\n| a | 1 |\n\n"
           "## One agent's history\n\nfigures\n\n## Analysis (hand-written; kept in bench/notes.md)\n\nold notes\n")
    new = "# Benchmarks\n\nnew header\n\n## Targets\n\nnew targets\n\n## Analysis (hand-written; kept)\n\nnew notes\n"
    out = keep_others(old, new)
    assert out.count("## Targets") == 1 and "new targets" in out and "old targets" not in out
    assert out.index("## Analytics panel\n\n| a | 1 |") < out.index("## One agent's history") < out.index("## Analysis")
    assert "old notes" not in out and out.endswith("new notes\n")
