"""An agent: a name, a system prompt, a route and a history, talking one turn at a time.

Turn semantics (what a user can rely on):

- A successful turn commits the user message, the assistant message and the usage row in ONE
  transaction (in a worker thread: the event loop never waits for the database); until that
  commit nothing of the turn is history.
- A turn that fails at the provider, or is cancelled (Ctrl-C, a task cancelled, a stream the
  caller stops reading), leaves the history exactly as it was. The user's message is kept in
  the store marked ``unanswered`` together with the failed request's ledger row (one
  transaction), so `ironspire history` can show it; it is never sent to a model again.
- A process killed mid-turn commits nothing (SQLite's journal rolls the file back to the
  previous turn), so a reopened workspace shows the history as of the last completed turn.
- Pre-flight failures (context window, capabilities) are raised before any request, and so
  record nothing at all.

Turns of one agent are serialised (a second ``send`` waits for the first), across processes
too (the store's per-agent lock); turns of different agents run concurrently and share nothing
but the workspace's pools and database. A turn starts by checking whether another process
changed the configuration or this agent's history since this process last looked (one indexed
read, in the same worker trip as the keychain read) and reloads what changed in a worker thread,
so every reply is built on the history stored before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ironspire.catalog.providers import ProviderSpec
from ironspire.errors import ConfigurationError, enable_remedy, set_default_remedy
from ironspire.messages import Accumulator, Message, StreamEvent, Usage
from ironspire.protocols.base import ChatRequest, PromptCache, Secrets, Target, Tool
from ironspire.protocols.common import parse_cache
from ironspire.workspace import offloop, preflight, pricing, routing
from ironspire.workspace.effort import DEFAULT_EFFORT, Effort, check_effort

if TYPE_CHECKING:
    from ironspire.store.store import Config
    from ironspire.workspace.workspace import Workspace

def effort_applies(target: Target, options: dict[str, Any]) -> bool:
    """Whether the agent's effort level goes out with this turn: only where the model reasons,
    and not with a forced tool call, which thinking models reject or skip. A level the caller
    gives for the turn itself is always sent as given."""
    if not target.model.reasoning:
        return False
    return not (options.get("force_tool") or options.get("tool_choice") == "required")


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
        effort: Effort = DEFAULT_EFFORT,
    ) -> None:
        self.ws, self.id, self.name, self.system = ws, agent_id, name, system
        self.own_provider, self.own_model = provider, model
        #: how deeply the agent reasons; sent as the request's reasoning level where the model reasons
        self.effort: Effort = effort
        self._history = history
        #: the id of the agent's last stored message when ``_history`` was read or written
        self._last_id: int | None = None
        self._lock: asyncio.Lock | None = None
        self._store_lock: Any = None
        #: set when the agent is deleted (here or, seen at a reload, by another process)
        self.deleted = False
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
        route = self._checked_route()
        return self.ws.target(route.provider, route.model)

    def _checked_route(self) -> routing.Route:
        """The route in force, or the error saying why there is none (no default, disabled)."""
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
        return route

    def switch(self, provider: str | None, model: str | None) -> None:
        """Moves the agent to another provider/model; the history stays and is re-encoded for it.

        ``switch(None, None)`` drops the override (the agent inherits the default again).
        """
        self.ws.check_route(provider, model)
        self._save(provider=provider, model=model)
        self.own_provider, self.own_model = provider, model

    def inherit(self) -> None:
        self.switch(None, None)

    @property
    def prompt_cache(self) -> str | None:
        """This agent's own prompt-caching setting ("off", "on", "5m", "1h", "24h"), or None to
        follow the workspace's ``prompt_cache``."""
        value = (self.ws.setting("agent_prompt_cache") or {}).get(str(self.id))
        return str(value) if value else None

    def set_prompt_cache(self, value: str | None) -> None:
        per_agent = dict(self.ws.setting("agent_prompt_cache") or {})
        if value is None:
            per_agent.pop(str(self.id), None)
        else:
            per_agent[str(self.id)] = value
        self.ws.set_setting("agent_prompt_cache", per_agent)

    def set_system(self, system: str | None) -> None:
        self._save(system=system or None)
        self.system = system or None

    def set_effort(self, effort: str) -> None:
        """Low, medium or high (the default): applied from the next turn, on any provider."""
        level = check_effort(effort)
        self._save(effort=level)
        self.effort = level

    def _save(self, **values: Any) -> None:
        self.ws._adopt(self.ws.store.update_agent(self.id, **values))

    # --- history ---------------------------------------------------------------------------

    @property
    def history(self) -> list[Message]:
        """The conversation as sent to models: completed turns only, as stored now (another
        process may have added turns; one cheap read tells)."""
        if self._history is None or self.ws.store.turns.check(self.id)[1] != self._last_id:
            self._read_history()
        assert self._history is not None
        return list(self._history)

    def _read_history(self) -> None:
        self._history, self._last_id = self._stored_history()

    def _stored_history(self) -> tuple[list[Message], int | None]:
        """The completed turns as stored, and the id of the last message (of any status)."""
        rows = self.ws.store.transcript(self.id)
        messages = [Message.from_json(body) for _, body, status, _ in rows if status == "ok"]
        return messages, (rows[-1][0] if rows else None)

    def transcript(self) -> list[Entry]:
        """Everything stored for this agent, unanswered messages included, oldest first."""
        return [Entry(Message.from_json(body), status, at) for _, body, status, at in self.ws.store.transcript(self.id)]

    # --- turns -----------------------------------------------------------------------------

    def _prepare(
        self, user: Message, tools: Iterable[Tool], options: dict[str, Any], target: Target
    ) -> tuple[Message, ChatRequest, Target]:
        ws = self.ws
        max_tokens = options.pop("max_tokens", None) or ws.setting("max_tokens")
        # this turn's cache= (a PromptCache, "5m"/"1h"/"24h"/"on", or None/"off"), else the
        # agent's own setting, else the workspace's prompt_cache; keyed by this agent so requests sharing its prefix
        # land on one cache (OpenAI's prompt_cache_key)
        if "cache" in options:
            cache = parse_cache(options["cache"])
        else:
            cache = parse_cache(self.prompt_cache or ws.setting("prompt_cache"))
        options["cache"] = None if cache is None else PromptCache(cache.ttl, cache.key or f"ironspire-agent-{self.id}")
        tools = tuple(tools)
        if "reasoning" not in options and effort_applies(target, options):
            # the agent's effort level, mapped by each protocol onto its own control (thinking
            # budget or effort, reasoning_effort, thinking level, the CLI's --effort)
            options["reasoning"] = self.effort
        request = ChatRequest(
            messages=(*(self._history or ()), user), system=self.system, tools=tools, max_tokens=max_tokens,
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

    @contextlib.asynccontextmanager
    async def _turn_lock(self) -> AsyncIterator[None]:
        """This agent's turns one at a time: within the process (an asyncio lock), then across
        processes (the store's lock, awaited without blocking the loop)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._store_lock is None:
                self._store_lock = self.ws.store.agent_lock(self.id)
            await self._store_lock.acquire()
            try:
                yield
            finally:
                self._store_lock.release()

    def _spec_guess(self) -> ProviderSpec | None:
        route = self.route
        if route is None or not self.ws.is_enabled(route.provider):
            return None
        try:
            return self.ws.provider(route.provider)
        except ConfigurationError:
            return None

    def _sync_read(self, spec: ProviderSpec | None, revision: int, last_id: int | None, loaded: bool
                   ) -> tuple[Config | None, tuple[list[Message], int | None] | None, Secrets | None]:
        """In a worker thread: what changed in the store since this process looked, and the
        keychain read for the provider the turn will most likely use."""
        store = self.ws.store
        if self.ws._keychain_free is None:
            info = getattr(self.ws.credentials, "info", None)
            self.ws._keychain_free = info is not None and info().kind == "none"
        now_revision, now_last = store.turns.check(self.id)
        config = store.load_config() if now_revision != revision else None
        history = self._stored_history() if (now_last != last_id or not loaded) else None
        secrets = self.ws.credentials.secrets_for(spec) if spec is not None else None
        return config, history, secrets

    async def _begin(
        self, content: str | Message, tools: Iterable[Tool], options: dict[str, Any]
    ) -> tuple[Message, ChatRequest, Target]:
        """Under the turn lock: brings this process up to date with the store, then builds the
        request. Database and keychain reads happen in one trip to a worker thread."""
        user = Message.user(content) if isinstance(content, str) else content
        if user.role not in ("user", "tool"):
            raise ConfigurationError(f"an agent is sent user or tool messages, not {user.role!r}.")
        ws = self.ws
        spec = self._spec_guess()
        config: Config | None
        history: tuple[list[Message], int | None] | None
        secrets: Secrets | None
        if spec is not None and (not spec.secret_fields or ws._keychain_free) and self._history is not None \
                and ws.store.turns.inline_check:
            # no keychain to read (the provider has no secret, or secrets come from the
            # environment alone): a WAL read, which never waits for a writer, says whether there
            # is anything to reload, and only a reload goes to a thread (on PostgreSQL the check
            # itself is a round trip, so it always goes to the thread below)
            revision, last = ws.store.turns.check(self.id)
            config, history = None, None
            secrets = ws.credentials.secrets_for(spec) if spec.secret_fields else Secrets({})
            if revision != ws._revision or last != self._last_id:
                config, history, secrets = await offloop.run(
                    self._sync_read, spec, ws._revision, self._last_id, True)
        else:
            config, history, secrets = await offloop.run(
                self._sync_read, spec, ws._revision, self._last_id, self._history is not None)
        if config is not None:
            ws._apply(config)
        if self.deleted:
            raise ConfigurationError(f"agent {self.name!r} was deleted.", hint="Create it again to use the name.")
        if history is not None:
            self._history, self._last_id = history
        await self._discover()
        route = self._checked_route()
        now = ws.provider(route.provider)
        if now is not spec or secrets is None:
            if not now.secret_fields:
                secrets = Secrets({})
            elif ws._keychain_free:
                secrets = ws.credentials.secrets_for(now)
            else:
                secrets = await offloop.run(ws.credentials.secrets_for, now)
        return self._prepare(user, tools, options, ws.target(route.provider, route.model, secrets=secrets))

    async def send(self, content: str | Message, *, tools: Iterable[Tool] = (), **options: Any) -> Message:
        """One turn, returned whole. ``options`` are ChatRequest fields (temperature, reasoning...)."""
        async with self._turn_lock():
            user, request, target = await self._begin(content, tools, dict(options))
            backend = self.ws.backend(target.provider.protocol)
            started = time.perf_counter()
            self.running_on = target.provider.id
            try:
                try:
                    reply = await backend.complete(request, target)
                except BaseException as exc:
                    await self._record_failure(user, target, exc, time.perf_counter() - started, streamed=False)
                    raise
                await self._commit(user, reply, target, time.perf_counter() - started, streamed=False)
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
            user, request, target = await self._begin(content, tools, dict(options))
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
                    await self._record_failure(user, target, exc, time.perf_counter() - started, streamed=True)
                    raise
                await self._commit(user, reply, target, time.perf_counter() - started, streamed=True)
            finally:
                self.running_on = None

    # --- ledger ----------------------------------------------------------------------------

    def _usage_row(self, target: Target, usage: Usage, meta_cost: Any, latency: float, outcome: str,
                   streamed: bool) -> tuple[Any, ...]:
        """The ledger row's values, in ``store.schema.USAGE_COLUMNS`` order. An unknown price or
        unknown counts give an unknown cost (NULL), never $0; the row keeps the price it used."""
        model = target.model
        price = pricing.resolve(self.ws.setting(pricing.SETTING), model)
        price_cost = pricing.cost(price, usage)
        if target.provider.billed:
            cost, api_cost = price_cost, price_cost
        else:
            cost = 0.0
            api_cost = float(meta_cost) if isinstance(meta_cost, int | float) else price_cost
        return (
            time.time(), self.ws.session_id, self.id, target.provider.id, model.id, usage.input, usage.output,
            usage.cache_read, usage.cache_write, usage.reasoning, cost, api_cost, latency, outcome, int(streamed),
            usage.state, pricing.price_json(price),
        )

    async def _commit(self, user: Message, reply: Message, target: Target, latency: float, *,
                      streamed: bool) -> None:
        now = time.time()
        # a provider that sent no usage (a stream without include_usage, a server that omits it)
        # is recorded as unknown, never as a request that used no tokens
        usage = reply.usage if reply.usage is not None else Usage.unknown()
        row = self._usage_row(target, usage, reply.meta.get("cost_usd"), latency, "ok", streamed)
        last = await offloop.run(self.ws.store.turns.write, [(self.id, user.role, user.to_json(), "ok", now),
                                                          (self.id, "assistant", reply.to_json(), "ok", now)], row)
        if self._history is not None:
            self._history.extend((user, reply))
        self._last_id = last

    async def _record_failure(
        self, user: Message, target: Target, exc: BaseException, latency: float, *, streamed: bool
    ) -> None:
        if isinstance(exc, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt):
            outcome = "cancelled"
        else:
            outcome = type(exc).__name__
        # nothing reached us that says what the failed request used (a stream cut after the
        # prompt was read may still be billed), so its counts are unknown
        row = self._usage_row(target, Usage.unknown(), None, latency, outcome, streamed)
        messages = [(self.id, user.role, user.to_json(), "unanswered", time.time())]
        if isinstance(exc, KeyboardInterrupt):  # the loop itself may be going down: write here
            last = self.ws.store.turns.write(messages, row)
        else:
            last = await offloop.run(self.ws.store.turns.write, messages, row)
        self._last_id = last  # the history in memory is unchanged by a failed turn
