"""Many processes, one truth, at a size the test command can afford (under a minute): 4 worker
processes share 50 agents on one real PostgreSQL, run 2,000 turns against a loopback provider,
and one of them is killed with SIGKILL mid-turn every 250 completed turns (and replaced).
``bench/pg_fleet.py`` runs the full 5,000 turns and reports throughput and added latency
(docs/benchmarks.md); the checks are the same code (``pg_fleet.verify``), described there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def test_four_workers_fifty_agents_kill_9_now_and_then(postgres_server: Any, tmp_path: Path) -> None:
    database = postgres_server.create_database()
    out = tmp_path / "fleet.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.pg_fleet", "--turns", "2000", "--kill-every", "250", "--baseline", "0",
         "--database", database, "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    checks = result["checks"]  # verify() has already checked history, order, ledger and orphans turn by turn
    assert checks["agents"] == 50
    assert checks["reported_done"] >= 2000 and checks["committed_turns"] >= checks["reported_done"]
    assert checks["killed_workers"] >= 7  # every 250 of the 2,000 turns
    assert checks["interrupted_turns"] >= checks["killed_workers"]  # each kill caught turns in flight
    assert checks["ledger_rows"] == checks["committed_turns"] + checks["interrupted_marked_unanswered"]
    assert checks["messages"] == 2 * checks["committed_turns"] + checks["interrupted_marked_unanswered"]
    assert checks["failed"] == 0
