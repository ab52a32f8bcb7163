"""Starting and stopping loopback servers, each in its own process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def loopback(count: int = 1, chunk_delay_ms: float = 0.0, python: str = sys.executable) -> Iterator[list[str]]:
    """``count`` servers on free 127.0.0.1 ports; yields their base URLs, stops them on exit."""
    procs: list[subprocess.Popen[str]] = []
    try:
        urls = []
        for _ in range(count):
            proc = subprocess.Popen(
                [python, "-m", "bench.server", "--port", "0", "--chunk-delay-ms", str(chunk_delay_ms)],
                cwd=REPO, stdout=subprocess.PIPE, text=True,
            )
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("LISTENING "):
                raise RuntimeError(f"loopback server did not start (said {line!r})")
            urls.append(f"http://127.0.0.1:{int(line.split()[1])}")
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
