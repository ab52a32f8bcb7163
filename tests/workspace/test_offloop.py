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
