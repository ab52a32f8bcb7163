"""A turn alone in its workspace is stored at once; a turn with others in flight waits one pass
of the loop so that the turns ending beside it share its commit. Which one a turn is depends on
the count of turns holding their agent's lock, so that count must come back to zero however a
turn ends: answered, failed, or stopped by its caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ironspire.errors import IronspireError
from ironspire.store.sqlite import SqliteTurns
from ironspire.workspace import Workspace, commits
from workspace.loopback import Server, serving


@pytest.fixture
def passes(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch stored a pass after its first turn ended (not at once)."""
    if not isinstance(ws.store.turns, SqliteTurns):
        pytest.skip("storing at once is the SQLite turn log's")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    seen: list[int] = []
    original = commits._commit_now

    def counted(waiting: Any, turns: Any, batch: Any) -> None:
        seen.append(len(batch))
        original(waiting, turns, batch)

    monkeypatch.setattr(commits, "_commit_now", counted)
    return seen


async def test_a_lone_turn_is_stored_at_once_and_one_beside_another_waits_for_company(
        ws: Workspace, open_ws: Any, passes: list[int]) -> None:
    with serving(Server("oa", hold_after=2)) as (srv,):
        ws.set_provider_setting("openai", "base_url", srv.url + "/v1")
        ws.set_default("openai", "gpt-4.1")
        a, b = ws.create_agent("a"), ws.create_agent("b")
        assert (await b.send("alone")).text == "oa: 1 messages, last: alone"
        assert passes == [] and ws._turns_in_flight == 0  # stored without waiting a pass

        stream = a.stream("held")
        first = await anext(stream)  # a's turn is in flight, its stream held by the server
        assert ws._turns_in_flight == 1
        reply = await b.send("beside a")  # ends while a's turn may end too: it waits a pass
        assert reply.text == "oa: 3 messages, last: beside a" and passes == [1]
        srv.gate.set()
        events = [first, *[e async for e in stream]]
        assert passes == [1]  # a's turn, alone again by the time it ended, was stored at once
        assert ws._turns_in_flight == 0
    assert "".join(getattr(e, "text", "") for e in events) == "oa: 1 messages, last: held"
    again = open_ws()
    assert [m.text for m in again.agent("a").history] == ["held", "oa: 1 messages, last: held"]
    assert [m.text for m in again.agent("b").history][-2:] == ["beside a", reply.text]
    again.close()


async def test_the_count_of_turns_in_flight_comes_back_to_zero_however_a_turn_ends(
        ws: Workspace, passes: list[int]) -> None:
    with serving(Server("oa", hold_after=2), Server("down", status=400), Server("hangs", mode="hang")) \
            as (ok, down, hangs):
        ws.set_provider_setting("openai", "base_url", ok.url + "/v1")
        ws.set_default("openai", "gpt-4.1")
        agent = ws.create_agent("a")

        stream = agent.stream("stopped")
        await anext(stream)
        await stream.aclose()  # the caller stopped reading: a cancelled turn
        assert ws._turns_in_flight == 0

        ws.set_provider_setting("openai", "base_url", hangs.url + "/v1")
        task = asyncio.create_task(agent.send("cancelled"))
        for _ in range(1000):  # until the request is at the server, which never answers it
            if hangs.requests:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hangs.release.set()
        assert ws._turns_in_flight == 0

        ws.set_provider_setting("openai", "base_url", down.url + "/v1")
        with pytest.raises(IronspireError):
            await agent.send("fails")  # its unanswered message is stored, alone, at once
        assert ws._turns_in_flight == 0

        ws.set_provider_setting("openai", "base_url", ok.url + "/v1")
        ok.gate.set()
        reply = await agent.send("answered")
    assert ws._turns_in_flight == 0 and passes == []
    assert reply.text.endswith("last: answered")
