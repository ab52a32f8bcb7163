"""Issue 17 item 17: what one agent's history size costs. For 10, 1,000 and 10,000 stored
messages: CPU per turn (openai, non-streamed, against bench.server in its own process), and
the page `history` now reads against the whole history it read before, and `agents show`'s
count against the whole read it did before (both variants in the same run).

    python bench/history_scale.py [--turns 20] [--sizes 10,1000,10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.server", "--port", "0"], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(line.split()[-1])


def _cpu(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()  # type: ignore[operator]
        best = min(best, time.process_time() - start)
    return best


def measure(size: int, turns: int, port: int) -> dict[str, float]:
    os.environ["OPENAI_API_KEY"] = "sk-bench-0000000000000000"
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    from ironspire import views
    from ironspire.messages import Message
    from ironspire.workspace import Workspace

    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.open(Path(home))
        ws.set_provider_setting("openai", "base_url", f"http://127.0.0.1:{port}/v1")
        agent = ws.create_agent("a", "openai", "gpt-4.1")
        ws.store.replace_history(agent.id, [("user" if i % 2 == 0 else "assistant",
                                             (Message.user if i % 2 == 0 else Message.assistant)(
                                                 f"message {i}: " + "lorem ipsum " * 8).to_json())
                                            for i in range(size)])

        async def run() -> list[float]:
            cpu = []
            await agent.send("warm up")
            for i in range(turns):
                start = time.process_time()
                await agent.send(f"turn {i}")
                cpu.append(time.process_time() - start)
            await ws.transport.close()
            return cpu

        per_turn = sorted(asyncio.run(run()))
        out = {
            "turn_cpu_ms": per_turn[len(per_turn) // 2] * 1000,
            "history_page_ms": _cpu(lambda: views.history(ws, "a", limit=50)) * 1000,
            "history_whole_ms": _cpu(lambda: views.history(ws, "a", unanswered=True)) * 1000,
            "show_count_ms": _cpu(lambda: views.agent(ws, "a", detail=True)) * 1000,
            "show_whole_read_ms": _cpu(lambda: (len(agent.transcript()), ws.agent("a")._stored_history())) * 1000,
        }
        ws.close()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--sizes", default="10,1000,10000")
    args = parser.parse_args()
    proc, port = _server()
    try:
        print("| messages | turn CPU ms (median) | `history` page of 50 ms | whole history ms (before) "
              "| `agents show` count ms | whole read ms (before) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for size in (int(s) for s in args.sizes.split(",")):
            r = measure(size, args.turns, port)
            print(f"| {size:,} | {r['turn_cpu_ms']:.1f} | {r['history_page_ms']:.1f} | {r['history_whole_ms']:.1f} "
                  f"| {r['show_count_ms']:.1f} | {r['show_whole_read_ms']:.1f} |", flush=True)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
