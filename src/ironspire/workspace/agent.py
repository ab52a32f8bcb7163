"""An agent: a name, a system prompt, a route and a history, talking one turn at a time.

Turn semantics (what a user can rely on):

- A successful turn commits the user message, the assistant message and the usage row in ONE
  SQLite transaction; until that commit nothing of the turn is history.
- A turn that fails at the provider, or is cancelled (Ctrl-C, a task cancelled, a stream the
  caller stops reading), leaves the history exactly as it was. The user's message is kept in
  the store marked ``unanswered`` together with the failed request's ledger row (one
  transaction), so `ironspire history` can show it; it is never sent to a model again.
- A process killed mid-turn commits nothing (SQLite's journal rolls the file back to the
  previous turn), so a reopened workspace shows the history as of the last completed turn.
- Pre-flight failures (context window, capabilities) are raised before any request, and so
  record nothing at all.

Turns of one agent are serialised (a second ``send`` waits for the first), turns of different
agents run concurrently and share nothing but the workspace's pools and database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from ironspire.catalog.models import Price
from ironspire.errors import ConfigurationError
from ironspire.messages import Accumulator, Message, StreamEvent, Usage
from ironspire.protocols.base import ChatRequest, Target, Tool
from ironspire.workspace import preflight, routing
from ironspire.workspace.store import AgentRow, MessageRow, UsageRow

if TYPE_CHECKING:
    from ironspire.workspace.workspace import Workspace


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored message with its bookkeeping, for transcripts."""

    message: Message
    status: str
    at: float


class Agent:
    def __init__(
        self,
        ws: Workspace,
        agent_id: int,
        name: str,
        system: str | None,
        provider: str | None,
        model: str | None,
        history: list[Message] | None,
    ) -> None:
        self.ws, self.id, self.name, self.system = ws, agent_id, name, system
        self.own_provider, self.own_model = provider, model
        self._history = history
        self._lock: asyncio.Lock | None = None
        #: the provider of the turn in flight, None between turns (the "running" KPI)
        self.running_on: str | None = None

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, route={self.route})"

    # --- configuration ---------------------------------------------------------------------

    @property
    def route(self) -> routing.Route | None:
        """The route in force now (the workspace default unless this agent overrides it)."""
        return routing.resolve(self.own_provider, self.own_model, self.ws.default)

    @property
    def inherits(self) -> bool:
        return self.own_provider is None and self.own_model is None

    def target(self) -> Target:
        route = self.route
        if route is None:
            raise ConfigurationError(
                f"agent {self.name!r} has no provider: it inherits the workspace default, which is not set.",
                hint="Run `ironspire default set PROVIDER MODEL` or "
                f"`ironspire agents set {self.name} --provider P --model M`.",
            )
        if not self.ws.is_enabled(route.provider):
            raise ConfigurationError(
                f"agent {self.name!r} uses {route.provider}, which is disabled.",
                hint=f"Run `ironspire providers enable {route.provider}`, or switch the agent to another provider.",
            )
        return self.ws.target(route.provider, route.model)

    def switch(self, provider: str | None, model: str | None) -> None:
        """Moves the agent to another provider/model; the history stays and is re-encoded for it.

        ``switch(None, None)`` drops the override (the agent inherits the default again).
        """
        self.ws.check_route(provider, model)
        self._save(provider=provider, model=model)
        self.own_provider, self.own_model = provider, model

    def inherit(self) -> None:
        self.switch(None, None)

    def set_system(self, system: str | None) -> None:
        self._save(system=system or None)
        self.system = system or None

    def _save(self, **values: Any) -> None:
        with self.ws._sessions.begin() as s:
            s.execute(update(AgentRow).where(AgentRow.id == self.id).values(**values))

    # --- history ---------------------------------------------------------------------------

    @property
    def history(self) -> list[Message]:
        """The conversation as sent to models: completed turns only."""
        if self._history is None:
            self._history = [e.message for e in self.transcript() if e.status == "ok"]
        return list(self._history)

    def transcript(self) -> list[Entry]:
        """Everything stored for this agent, unanswered messages included, oldest first."""
        with self.ws._sessions() as s:
            rows = s.scalars(select(MessageRow).where(MessageRow.agent_id == self.id).order_by(MessageRow.id))
            return [Entry(Message.from_json(r.body), r.status, r.created_at) for r in rows]

    # --- turns -----------------------------------------------------------------------------

    def _prepare(
        self, content: str | Message, tools: Iterable[Tool], options: dict[str, Any]
    ) -> tuple[Message, ChatRequest, Target]:
        user = Message.user(content) if isinstance(content, str) else content
        if user.role not in ("user", "tool"):
            raise ConfigurationError(f"an agent is sent user or tool messages, not {user.role!r}.")
        target = self.target()
        ws = self.ws
        max_tokens = options.pop("max_tokens", None) or ws.setting("max_tokens")
        request = ChatRequest(
            messages=(*self.history, user), system=self.system, tools=tuple(tools), max_tokens=max_tokens,
            foreign_reasoning=ws.setting("foreign_reasoning"), **options,
        )
        request = preflight.check(
            request, target, images=ws.setting("degrade_images"), tools=ws.setting("degrade_tools")
        )
        return user, request, target

    async def _discover(self) -> None:
        """Lets a provider that lists its models at runtime (Ollama) fill the registry first, so
        the pre-flight check uses the model's real context window rather than a guess."""
        route = self.route
        if route is not None:
            await self.ws.discover_models(route.provider)

    def _turn_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def send(self, content: str | Message, *, tools: Iterable[Tool] = (), **options: Any) -> Message:
        """One turn, returned whole. ``options`` are ChatRequest fields (temperature, reasoning...)."""
        async with self._turn_lock():
            await self._discover()
            user, request, target = self._prepare(content, tools, dict(options))
            backend = self.ws.backend(target.provider.protocol)
            started = time.perf_counter()
            self.running_on = target.provider.id
            try:
                try:
                    reply = await backend.complete(request, target)
                except BaseException as exc:
                    self._record_failure(user, target, exc, time.perf_counter() - started, streamed=False)
                    raise
                self._commit(user, reply, target, time.perf_counter() - started, streamed=False)
                return reply
            finally:
                self.running_on = None

    async def stream(
        self, content: str | Message, *, tools: Iterable[Tool] = (), **options: Any
    ) -> AsyncIterator[StreamEvent]:
        """One turn as events; it is committed when the stream ends normally.

        Stopping early (``break``, cancellation) counts as a cancelled turn: nothing is added
        to the history. The final message is then ``agent.history[-1]``.
        """
        async with self._turn_lock():
            await self._discover()
            user, request, target = self._prepare(content, tools, dict(options))
            backend = self.ws.backend(target.provider.protocol)
            acc = Accumulator(target.provider.id, target.model.id)
            started = time.perf_counter()
            self.running_on = target.provider.id
            try:
                try:
                    events = backend.stream(request, target)
                    try:
                        async for event in events:
                            acc.add(event)
                            yield event
                    finally:
                        closer = getattr(events, "aclose", None)
                        if closer is not None:
                            await closer()
                    reply = acc.message()
                except BaseException as exc:
                    self._record_failure(user, target, exc, time.perf_counter() - started, streamed=True)
                    raise
                self._commit(user, reply, target, time.perf_counter() - started, streamed=True)
            finally:
                self.running_on = None

    # --- ledger ----------------------------------------------------------------------------

    def _usage_row(self, target: Target, usage: Usage, meta_cost: Any, latency: float, outcome: str,
                   streamed: bool) -> UsageRow:
        model = target.model
        priced = model.price != Price()
        price_cost = model.cost(usage) if priced else None
        if target.provider.billed:
            cost, api_cost = price_cost or 0.0, price_cost
        else:
            cost = 0.0
            api_cost = float(meta_cost) if isinstance(meta_cost, int | float) else price_cost
        return UsageRow(
            at=time.time(), session=self.ws.session_id, agent=self.name, provider=target.provider.id,
            model=model.id, input_tokens=usage.input, output_tokens=usage.output,
            cache_read_tokens=usage.cache_read, cache_write_tokens=usage.cache_write,
            reasoning_tokens=usage.reasoning, cost_usd=cost, api_cost_usd=api_cost, latency_s=latency,
            outcome=outcome, streamed=streamed,
        )

    def _commit(self, user: Message, reply: Message, target: Target, latency: float, *, streamed: bool) -> None:
        now = time.time()
        row = self._usage_row(target, reply.usage or Usage(), reply.meta.get("cost_usd"), latency, "ok", streamed)
        with self.ws._sessions.begin() as s:
            s.add(MessageRow(agent_id=self.id, role=user.role, body=user.to_json(), status="ok", created_at=now))
            s.add(MessageRow(agent_id=self.id, role="assistant", body=reply.to_json(), status="ok", created_at=now))
            s.add(row)
        if self._history is not None:
            self._history.extend((user, reply))

    def _record_failure(
        self, user: Message, target: Target, exc: BaseException, latency: float, *, streamed: bool
    ) -> None:
        if isinstance(exc, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt):
            outcome = "cancelled"
        else:
            outcome = type(exc).__name__
        row = self._usage_row(target, Usage(), None, latency, outcome, streamed)
        with self.ws._sessions.begin() as s:
            s.add(MessageRow(agent_id=self.id, role=user.role, body=user.to_json(), status="unanswered",
                             created_at=time.time()))
            s.add(row)
