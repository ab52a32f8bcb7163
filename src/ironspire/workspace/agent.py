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
from ironspire.errors import ConfigurationError, enable_remedy, set_default_remedy
from ironspire.messages import Accumulator, Message, StreamEvent, Usage
from ironspire.protocols.base import ChatRequest, Target, Tool
from ironspire.workspace import preflight, routing
from ironspire.workspace.store import AgentRow, MessageRow, UsageRow

if TYPE_CHECKING:
    from ironspire.workspace.workspace import Workspace


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


# A turn's rows are written with prepared SQL on a pooled connection of the workspace engine
# (its pragmas: WAL, foreign keys, busy timeout) rather than through the ORM unit of work: the
# same single transaction for a fraction of the CPU. The ORM's flush cost more than the whole
# HTTP request on loopback, and even SQLAlchemy Core's statement layer added ~100 µs a turn
# (bench/notes.md). The column lists name the store's columns (store.py is the schema).
_MESSAGE_COLUMNS = ("agent_id", "role", "body", "status", "created_at")
_USAGE_COLUMNS = (
    "at", "session", "agent", "provider", "model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "api_cost_usd", "latency_s", "outcome", "streamed",
)
_INSERT_MESSAGE = _insert(MessageRow.__tablename__, _MESSAGE_COLUMNS)
_INSERT_USAGE = _insert(UsageRow.__tablename__, _USAGE_COLUMNS)


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored message with its bookkeeping, for transcripts."""

    message: Message
    status: str
    at: float


class Agent:
    """Get one from ``ws.create_agent`` or ``ws.agent``; talk with ``await agent.send(...)`` or
    ``async for event in agent.stream(...)``; move it with ``agent.switch(provider, model)``."""

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
                remedy=set_default_remedy(self.name),
            )
        if not self.ws.is_enabled(route.provider):
            raise ConfigurationError(
                f"agent {self.name!r} uses {route.provider}, which is disabled.",
                remedy=enable_remedy(route.provider, self.name),
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
        """Lets a provider that lists its models at runtime (Ollama, Groq, Together, Fireworks,
        custom endpoints) fill the registry first, so pre-flight and the ledger use the model's
        real facts (context window, prices) rather than a guess. The workspace caches the listing
        briefly and never raises for a provider that cannot list (the request then fails)."""
        route = self.route
        if route is None:
            return
        if route.model is not None:
            known = self.ws.registry.find(route.provider, route.model)
            if known is not None and known.source == "configured":
                return  # the user's own facts win over any listing: nothing to ask
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
                   streamed: bool) -> tuple[Any, ...]:
        """The ledger row's values, in ``_USAGE_COLUMNS`` order."""
        model = target.model
        priced = model.price != Price()
        price_cost = model.cost(usage) if priced else None
        if target.provider.billed:
            cost, api_cost = price_cost or 0.0, price_cost
        else:
            cost = 0.0
            api_cost = float(meta_cost) if isinstance(meta_cost, int | float) else price_cost
        return (
            time.time(), self.ws.session_id, self.name, target.provider.id, model.id, usage.input, usage.output,
            usage.cache_read, usage.cache_write, usage.reasoning, cost, api_cost, latency, outcome, int(streamed),
        )

    def _commit(self, user: Message, reply: Message, target: Target, latency: float, *, streamed: bool) -> None:
        now = time.time()
        row = self._usage_row(target, reply.usage or Usage(), reply.meta.get("cost_usd"), latency, "ok", streamed)
        self._write([(self.id, user.role, user.to_json(), "ok", now),
                     (self.id, "assistant", reply.to_json(), "ok", now)], row)
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
        self._write([(self.id, user.role, user.to_json(), "unanswered", time.time())], row)

    def _write(self, messages: list[tuple[Any, ...]], usage: tuple[Any, ...]) -> None:
        """Messages and the ledger row in ONE transaction: all of them are stored, or none."""
        conn = self.ws.engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:  # BEGIN said explicitly, whatever the driver's own transaction handling
                cursor.execute("BEGIN")
                cursor.executemany(_INSERT_MESSAGE, messages)
                cursor.execute(_INSERT_USAGE, usage)
            finally:
                cursor.close()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()  # back to the engine's pool
