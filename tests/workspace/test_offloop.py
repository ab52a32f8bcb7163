"""A turn's blocking work runs in worker threads: the loop keeps running meanwhile, errors come
back to the awaiting turn, and a cancelled turn waits for a job under way to end (a commit lands
or fails before the agent's lock is released)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ironspire.workspace import offloop


async def test_the_loop_runs_while_a_job_blocks_and_errors_come_back() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    assert await offloop.run(lambda: (time.sleep(0.3), threading.current_thread().name)[1]) != \
        threading.current_thread().name
    task.cancel()
    assert ticks >= 10  # the loop was never blocked by the 0.3 s job
    with pytest.raises(ValueError, match="boom"):
        await offloop.run(lambda: (_ for _ in ()).throw(ValueError("boom")))


async def test_a_cancelled_turn_waits_for_its_job_to_end() -> None:
    done = threading.Event()

    def slow_write() -> None:
        time.sleep(0.3)
        done.set()

    task = asyncio.create_task(offloop.run(slow_write))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done.is_set()  # the cancellation surfaced only once the write had ended


async def test_a_batch_gets_each_job_its_own_outcome_and_a_cancelled_caller_waits() -> None:
    release = threading.Event()
    seen: list[list[tuple[object, ...]]] = []

    def many(args: list[tuple[object, ...]]) -> list[tuple[object, BaseException | None]]:
        release.wait(5)
        seen.append(args)
        return [(None, ValueError(f"bad {a[0]}")) if a[0] == 2 else (a[0], None) for a in args]

    batched = offloop.Batched(many, "test-batch")
    first = asyncio.create_task(batched.run(0))
    await asyncio.sleep(0.05)  # the thread is inside the first call
    rest = [asyncio.create_task(batched.run(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0.05)
    rest[2].cancel()
    await asyncio.sleep(0.05)
    assert not rest[2].done()  # still waiting: its job was queued and will run
    release.set()
    assert await first == 0 and await rest[0] == 1
    with pytest.raises(ValueError, match="bad 2"):
        await rest[1]
    with pytest.raises(asyncio.CancelledError):
        await rest[2]
    assert seen == [[(0,)], [(1,), (2,), (3,)]]  # the three queued meanwhile went in one call


async def test_an_idle_batch_thread_ends_and_the_next_job_starts_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offloop.Batched, "IDLE", 0.05)
    batched = offloop.Batched(lambda args: [(threading.current_thread().ident, None) for _ in args], "test-idle")
    await batched.run()
    await asyncio.sleep(0.3)
    assert "test-idle" not in [t.name for t in threading.enumerate()]
    assert await batched.run() is not None
