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
  record nothing at all; so is a turn refused by a used-up budget (``BudgetExceeded``).
- With fallback routes (``workspace/fallback.py``) a turn may make several requests: each one
  gets its own ledger row, written in the turn's one transaction (each naming the turn and its
  route's place in the chain, ``store/schema.py``'s ``usage.turn`` / ``attempt``), and the reply's
  ``meta["fallback"]`` names the route that answered and every route tried or skipped. The
  agent's own route is never changed by a fallback.

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
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ironspire.catalog.providers import ProviderSpec
from ironspire.errors import (
    CapabilityError,
    ConfigurationError,
    ContextWindowExceeded,
    CredentialsMissing,
    IronspireError,
    ProviderUnavailable,
    RateLimitError,
    TurnNotSaved,
    enable_remedy,
    set_default_remedy,
)
from ironspire.messages import (
    Accumulator,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    StreamEvent,
    Text,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from ironspire.protocols.base import ChatRequest, PromptCache, Secrets, Target, Tool
from ironspire.protocols.common import parse_cache
from ironspire.workspace import budgets, commits, fallback, images, offloop, preflight, pricing, routing
from ironspire.workspace.effort import DEFAULT_EFFORT, Effort, check_effort
from ironspire.workspace.fallback import Attempt, FallbackRoute

if TYPE_CHECKING:
    from ironspire.store.store import Config
    from ironspire.workspace.workspace import Workspace

#: the events whose ``text`` counts towards a reply's size (a tuple: ``A | B`` in the stream's loop
#: would build a union object for every event)
_TEXTUAL = (TextDelta, ReasoningDelta)

#: per-agent values kept in the settings table, keyed by agent id (not workspace settings)
AGENT_FALLBACK, AGENT_BUDGET = "agent_fallback:{}", "agent_budget:{}"


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


@dataclass(slots=True)
class _Turn:
    """One turn's state while it walks its routes (own route first, then the fallbacks)."""

    user: Message
    tools: tuple[Tool, ...]
    options: dict[str, Any]
    spec: ProviderSpec | None  # the provider whose secrets were read with the sync check
    secrets: Secrets | None
    chain: tuple[FallbackRoute, ...]
    triggers: frozenset[str]
    attempts: list[Attempt] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # ledger rows of failed requests
    error: BaseException | None = None  # the last request's failure
    skip_error: IronspireError | None = None  # why the first skipped route was skipped
    primary: str = ""
    place: int = 0  # the route in flight's place in [own route, *chain] (the ledger's ``attempt``)

    def falls_back(self, error: BaseException) -> bool:
        """Whether the next route may take over after ``error`` (no output reached the caller)."""
        return bool(self.chain) and isinstance(error, Exception) and fallback.failure_kind(error) in self.triggers


class _TurnLock:
    """``Agent._turn_lock``: a class, not a generator-based context manager, which costs a turn
    several µs more on entry and exit."""

    __slots__ = ("agent",)

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def __aenter__(self) -> None:
        agent = self.agent
        if agent._lock is None:
            agent._lock = asyncio.Lock()
        await agent._lock.acquire()
        try:
            if agent._store_lock is None:
                agent._store_lock = agent.ws.store.agent_lock(agent.id)
            await agent._store_lock.acquire()
        except BaseException:
            agent._lock.release()
            raise
        agent.ws._turns_in_flight += 1

    async def __aexit__(self, *_: object) -> None:
        agent = self.agent
        agent.ws._turns_in_flight -= 1
        try:
            agent._store_lock.release()
        finally:
            assert agent._lock is not None
            agent._lock.release()


class _Budgeted:
    """``Agent._budgeted``: the gates the turn passed, released on exit with what it cost."""

    __slots__ = ("agent", "gates", "spent")

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.gates: list[budgets.Gate] = []
        self.spent: list[float | None] = [None]

    async def __aenter__(self) -> list[float | None]:
        agent = self.agent
        ws = agent.ws
        try:
            for owner in (agent, None):
                budget = ws.budget if owner is None else owner.budget
                if budget is None:
                    continue
                gate = ws.budget_gate("workspace" if owner is None else f"agent:{agent.id}")

                async def read(owner: Agent | None = owner) -> budgets.BudgetState:
                    state = await offloop.run(ws.budget_state, owner)
                    assert state is not None
                    return state

                await gate.admit(read)
                self.gates.append(gate)
        except BaseException:
            self._release()
            raise
        return self.spent

    async def __aexit__(self, *_: object) -> None:
        self._release()

    def _release(self) -> None:
        for gate in self.gates:
            gate.release(self.spent[0])


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

    @property
    def fallback(self) -> tuple[FallbackRoute, ...] | None:
        """The agent's own fallback chain; None when it uses the workspace's default chain."""
        return fallback.from_stored(self.ws._settings.get(AGENT_FALLBACK.format(self.id)))

    @property
    def fallback_chain(self) -> tuple[FallbackRoute, ...]:
        """The routes a turn tries after the agent's own, in order (its own chain or the default)."""
        own = self.fallback
        return self.ws.default_fallback if own is None else own

    def set_fallback(self, routes: str | Iterable[str | FallbackRoute] | None) -> None:
        """``"P/M,P/M"`` or a list of routes; ``[]`` or ``""`` for no fallbacks at all, None to
        use the workspace's default chain. Each route is checked now (a typo fails here)."""
        chain = None if routes is None else fallback.to_stored(self.ws.check_fallback(routes))
        self.ws._put(AGENT_FALLBACK.format(self.id), chain)

    @property
    def budget(self) -> budgets.Budget | None:
        return budgets.from_stored(self.ws._settings.get(AGENT_BUDGET.format(self.id)))

    def set_budget(self, usd: float | None, period: str = "month") -> None:
        """This agent's spending budget, per ``period`` ("day" or "month"); None removes it."""
        value = None if usd is None else budgets.make_budget(usd, period).to_stored()
        self.ws._put(AGENT_BUDGET.format(self.id), value)

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
        messages = [Message.from_stored(body) for _, body, status, _ in rows if status == "ok"]
        return messages, (rows[-1][0] if rows else None)

    def drop_last(self, count: int) -> int:
        """Removes the ``count`` newest stored messages (unanswered ones included), e.g. a reply too
        large for any later turn; returns how many were removed. The next turn sees the rest."""
        if count < 1:
            raise ConfigurationError("--drop-last needs a number of messages of 1 or more.")
        dropped = self.ws.store.drop_messages(self.id, count)
        self._history = None
        return dropped

    def reset(self) -> int:
        """Forgets the whole conversation (route and system prompt stay); returns how many messages went."""
        dropped = self.ws.store.drop_messages(self.id)
        self._history = None
        return dropped

    def transcript(self, *, limit: int | None = None, unanswered: bool = True) -> list[Entry]:
        """Everything stored for this agent, unanswered messages included, oldest first; or the
        newest ``limit`` of it (only those are read and parsed)."""
        rows = self.ws.store.transcript(self.id, limit=limit, unanswered=unanswered)
        return [Entry(Message.from_stored(body), status, at) for _, body, status, at in rows]

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
        if any(isinstance(p, Image) for p in user.parts):  # by content and size, before anything is stored
            images.check(user, target.provider.protocol, target.provider.id, target.model.id)
        request = preflight.check(
            request, target, images=ws.setting("degrade_images"), tools=ws.setting("degrade_tools")
        )
        return user, request, target

    async def _discover(self, route: routing.Route | None = None, turn: _Turn | None = None) -> None:
        """Lets a provider that lists its models at runtime (Ollama, Groq, Together, Fireworks,
        custom endpoints) fill the registry first, so pre-flight and the ledger use the model's
        real facts (context window, prices) rather than a guess. The workspace caches the listing
        briefly and never raises for a provider that cannot list (the request then fails)."""
        route = route or self.route
        if route is None:
            return
        if route.model is not None:
            known = self.ws.registry.find(route.provider, route.model)
            if known is not None and known.source == "configured":
                return  # the user's own facts win over any listing: nothing to ask
        # the key the turn already read for this provider, if it did (no keychain trip per turn)
        secrets = turn.secrets if turn is not None and turn.spec is not None and turn.spec.id == route.provider \
            else None
        await self.ws.discover_models(route.provider, secrets=secrets)

    def _turn_lock(self) -> _TurnLock:
        """This agent's turns one at a time: within the process (an asyncio lock), then across
        processes (the store's lock, awaited without blocking the loop)."""
        return _TurnLock(self)

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

    async def _begin(self, content: str | Message, tools: Iterable[Tool], options: dict[str, Any]) -> _Turn:
        """Under the turn lock: brings this process up to date with the store (database and
        keychain reads in one trip to a worker thread); ``_routes`` then builds the requests."""
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
        chain = self.fallback_chain
        triggers = frozenset(ws.setting("fallback_on") or ()) if chain else frozenset()
        return _Turn(user, tuple(tools), options, spec, secrets, chain, triggers)

    async def _secrets(self, turn: _Turn, spec: ProviderSpec) -> Secrets:
        if spec is turn.spec and turn.secrets is not None:
            return turn.secrets
        if not spec.secret_fields:
            return Secrets({})
        if self.ws._keychain_free:
            return self.ws.credentials.secrets_for(spec)
        return await offloop.run(self.ws.credentials.secrets_for, spec)

    async def _routes(self, turn: _Turn) -> AsyncGenerator[tuple[ChatRequest, Target]]:
        """The routes this turn may send to, in order, each prepared (pre-flight passed).

        Without fallbacks this is the agent's route alone and every problem raises as it always
        did. With fallbacks a route that cannot take the turn (disabled, cooling down, no
        credentials, fails pre-flight) is skipped with the reason recorded; when every route was
        skipped or failed, the turn's error is raised here.
        """
        ws = self.ws
        if not turn.chain:
            await self._discover(turn=turn)
            route = self._checked_route()
            secrets = await self._secrets(turn, ws.provider(route.provider))
            target = ws.target(route.provider, route.model, secrets=secrets)
            turn.primary = f"{target.provider.id}/{target.model.id}"
            yield self._prepare(turn.user, turn.tools, dict(turn.options), target)[1:]
            return
        primary = self.route
        if primary is None:
            self._checked_route()  # raises: no route, with how to set one
            return
        routes = [primary, *(routing.Route(r.provider, r.model, False) for r in turn.chain)]
        with contextlib.suppress(ConfigurationError):
            turn.primary = f"{primary.provider}/{primary.model or ws._model(primary.provider, None).id}"
        seen: set[tuple[str, str]] = set()
        cooldown = float(ws.setting("fallback_cooldown") or fallback.DEFAULT_COOLDOWN)
        for place, route in enumerate(routes):
            model = route.model or "?"
            try:
                skip = None if ws.is_enabled(route.provider) else "disabled"
                skip = skip or fallback.health_skip(ws.health.status(route.provider), cooldown)
                if skip is not None:
                    turn.skip_error = turn.skip_error or self._skip_error(route, skip)
                    turn.attempts.append(Attempt(route.provider, model, "skipped", skip))
                    continue
                await self._discover(route, turn)
                spec = ws.provider(route.provider)
                target = ws.target(route.provider, route.model, secrets=await self._secrets(turn, spec))
                model = target.model.id
                if (spec.id, model) in seen:
                    continue
                seen.add((spec.id, model))
                turn.primary = turn.primary or f"{spec.id}/{model}"
                ws.backend(target.provider.protocol).check_configured(target)
                _, request, target = self._prepare(turn.user, turn.tools, dict(turn.options), target)
            except (ConfigurationError, CredentialsMissing, CapabilityError, ContextWindowExceeded) as exc:
                turn.skip_error = turn.skip_error or exc
                turn.attempts.append(Attempt(route.provider, model, "skipped", str(exc)))
                continue
            turn.place = place
            yield request, target
        if turn.error is None:  # nothing was sent: the first route's reason (no ledger row, as pre-flight)
            assert turn.skip_error is not None
            turn.skip_error.attempts = tuple(turn.attempts)
            raise turn.skip_error

    def _skip_error(self, route: routing.Route, reason: str) -> IronspireError:
        status = self.ws.health.status(route.provider)
        if reason == "disabled":
            return ConfigurationError(f"agent {self.name!r}: {route.provider} is disabled.",
                                      remedy=enable_remedy(route.provider, self.name))
        if str(getattr(status, "state", "")) == "rate_limited":
            until = getattr(status, "until", None)
            left = None if until is None else max(until.timestamp() - time.time(), 0.0)
            return RateLimitError(route.provider, reason, retry_after=left, model=route.model)
        return ProviderUnavailable(route.provider, reason, model=route.model)

    async def send(self, content: str | Message, *, tools: Iterable[Tool] = (), **options: Any) -> Message:
        """One turn, returned whole. ``options`` are ChatRequest fields (temperature, reasoning...)."""
        async with self._turn_lock():
            turn = await self._begin(content, tools, dict(options))
            limit = float(self.ws.setting("max_turn_seconds"))
            deadline = time.perf_counter() + limit  # for the whole turn, fallbacks included
            async with self._budgeted(turn) as spent, contextlib.aclosing(self._routes(turn)) as routes:
                async for request, target in routes:
                    backend = self.ws.backend(target.provider.protocol)
                    started = time.perf_counter()
                    self.running_on = target.provider.id
                    try:
                        try:
                            async with asyncio.timeout(max(deadline - started, 0.0)):
                                reply = await backend.complete(request, target)
                        except TimeoutError:
                            raise over_cap(target, f"the turn ran past max_turn_seconds ({limit:g} s)") from None
                        self._check_size(reply, target)
                    except BaseException as exc:
                        self._failed(turn, target, exc, time.perf_counter() - started, streamed=False)
                        if turn.falls_back(exc):
                            continue
                        await self._record_failure(turn)
                        raise
                    finally:
                        self.running_on = None
                    reply = await self._commit(turn, reply, target, time.perf_counter() - started, streamed=False,
                                               spent=spent)
                    return reply
                await self._record_failure(turn)
                assert turn.error is not None  # _routes raised if no request was made
                raise turn.error

    async def stream(
        self, content: str | Message, *, tools: Iterable[Tool] = (), **options: Any
    ) -> AsyncIterator[StreamEvent]:
        """One turn as events; it is committed when the stream ends normally.

        Stopping early (``break``, cancellation) counts as a cancelled turn: nothing is added
        to the history. The final message is then ``agent.history[-1]``. A fallback route takes
        over only while no event has reached the caller.
        """
        async with self._turn_lock():
            turn = await self._begin(content, tools, dict(options))
            limit = float(self.ws.setting("max_turn_seconds"))
            deadline = time.perf_counter() + limit  # for the whole turn, fallbacks included
            async with self._budgeted(turn) as spent, contextlib.aclosing(self._routes(turn)) as routes:
                async for request, target in routes:
                    backend = self.ws.backend(target.provider.protocol)
                    acc = Accumulator(target.provider.id, target.model.id)
                    started = time.perf_counter()
                    self.running_on = target.provider.id
                    output = False
                    budget = _output_budget(request.max_tokens or target.model.max_output_tokens)
                    produced = 0
                    add, clock = acc.add, time.perf_counter  # this loop runs once per event of every stream
                    try:
                        events = backend.stream(request, target)
                        try:
                            async for event in events:
                                if isinstance(event, _TEXTUAL):
                                    produced += len(event.text)
                                elif isinstance(event, ToolCallDelta):
                                    produced += len(event.arguments)
                                if produced > budget:
                                    raise over_cap(target, f"the reply ran far past max_tokens ({produced} characters)")
                                if clock() > deadline:
                                    raise over_cap(target, f"the turn ran past max_turn_seconds ({limit:g} s)")
                                add(event)
                                output = True
                                yield event
                        finally:
                            closer = getattr(events, "aclose", None)
                            if closer is not None:
                                await closer()
                        reply = acc.message()
                        self._check_size(reply, target)
                    except BaseException as exc:
                        self._failed(turn, target, exc, time.perf_counter() - started, streamed=True)
                        if not output and turn.falls_back(exc):
                            continue
                        await self._record_failure(turn)
                        raise
                    finally:
                        self.running_on = None
                    await self._commit(turn, reply, target, time.perf_counter() - started, streamed=True, spent=spent)
                    return
                await self._record_failure(turn)
                assert turn.error is not None  # _routes raised if no request was made
                raise turn.error

    def _check_size(self, reply: Message, target: Target) -> None:
        limit = int(self.ws.setting("max_reply_bytes"))
        size = sum(len(p.text) if isinstance(p, Text | Reasoning) else len(str(getattr(p, "arguments", "")))
                   for p in reply.parts)
        if size > limit:
            raise over_cap(target, f"the reply is larger than max_reply_bytes ({limit} bytes)")

    def _budgeted(self, turn: _Turn) -> _Budgeted:
        """Admits the turn under the agent's and the workspace's budgets (refusing it before
        anything is sent when one is used up) and releases it with what it cost. Without
        budgets this costs nothing. The context's value receives the turn's billed cost."""
        return _Budgeted(self)

    def _failed(self, turn: _Turn, target: Target, exc: BaseException, latency: float, *, streamed: bool) -> None:
        """Records a request that failed: its ledger row (written with the turn) and its attempt."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt):
            outcome = "cancelled"
        else:
            outcome = type(exc).__name__
        # nothing reached us that says what the failed request used (a stream cut after the
        # prompt was read may still be billed), so its counts are unknown
        row = self._usage_row(turn, target, Usage.unknown(), None, latency, outcome, streamed)
        turn.rows.append(row)
        turn.attempts.append(Attempt(target.provider.id, target.model.id, outcome, str(exc), latency, row[10]))
        turn.error = exc
        if isinstance(exc, IronspireError) and turn.chain:
            exc.attempts = tuple(turn.attempts)
    # --- ledger ----------------------------------------------------------------------------

    def _usage_row(self, turn: _Turn, target: Target, usage: Usage, meta_cost: Any, latency: float, outcome: str,
                   streamed: bool) -> tuple[Any, ...]:
        """The ledger row's values, in ``store.schema.USAGE_COLUMNS + ROUTE_COLUMNS`` order (the
        turn log adds the turn's id). An unknown price or unknown counts give an unknown cost
        (NULL), never $0; the row keeps the price it used, and a fallback route's row the route
        it stood in for."""
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
            usage.cache_read, usage.cache_write, usage.reasoning, _money(cost), _money(api_cost), _money(latency),
            outcome, int(streamed), usage.state, pricing.price_json(price),
            turn.place, (turn.primary or None) if turn.place else None,
        )

    async def _commit(self, turn: _Turn, reply: Message, target: Target, latency: float, *, streamed: bool,
                      spent: list[float | None]) -> Message:
        now = time.time()
        # a provider that sent no usage (a stream without include_usage, a server that omits it)
        # is recorded as unknown, never as a request that used no tokens
        usage = clamp_usage(reply.usage)
        if usage is not reply.usage:
            reply = replace(reply, usage=usage)
        row = self._usage_row(turn, target, usage if usage is not None else Usage.unknown(),
                              reply.meta.get("cost_usd"), latency, "ok", streamed)
        if turn.attempts:  # a fallback answered, or routes were skipped: the reply says which and why
            turn.attempts.append(Attempt(target.provider.id, target.model.id, "ok", "", latency, row[10]))
            answered = f"{target.provider.id}/{target.model.id}"
            if answered != turn.primary:
                reply = replace(reply, meta={**reply.meta, "fallback": {
                    "primary": turn.primary, "answered": answered, "attempts": [a.to_json() for a in turn.attempts]}})
        rows = [(self.id, turn.user.role, turn.user.to_json(), "ok", now),
                (self.id, "assistant", reply.to_json(), "ok", now)]
        try:
            last = await commits.store_turn(self.ws.store.turns, rows, row, turn.rows,
                                            alone=self.ws._turns_in_flight == 1)
        except Exception as exc:  # a full disk, a read-only home: the reply must not be lost with it
            raise TurnNotSaved(self.name, f"{type(exc).__name__}: {exc}", self._recover(turn.user, reply)) from exc
        if self._history is not None:
            self._history.extend((turn.user, reply))
        self._last_id = last
        # one request at an unknown price makes the turn's spend unknown (a budget must not count it as $0)
        costs = [r[10] for r in (*turn.rows, row)]
        spent[0] = None if any(c is None for c in costs) else sum(costs)
        return reply

    async def _record_failure(self, turn: _Turn) -> None:
        """The turn failed (the caller raises its last request's error): the user's message is kept as
        unanswered with the ledger rows of every request it made, in one transaction."""
        exc = turn.error
        assert exc is not None and turn.rows
        messages = [(self.id, turn.user.role, turn.user.to_json(), "unanswered", time.time())]
        rows = turn.rows
        try:
            if isinstance(exc, KeyboardInterrupt):  # the loop itself may be going down: write here
                last = self.ws.store.turns.write(messages, rows[-1], rows[:-1])
            else:
                last = await commits.store_turn(self.ws.store.turns, messages, rows[-1], rows[:-1],
                                                alone=self.ws._turns_in_flight == 1)
        except Exception as store_exc:  # the turn's own error is what the caller must see
            exc.add_note(f"the unanswered message was not saved either ({type(store_exc).__name__}: {store_exc})")
            return
        self._last_id = last  # the history in memory is unchanged by a failed turn

    def _recover(self, user: Message, reply: Message) -> str | None:
        """Writes the turn that could not be stored to ``recovery/`` under the home (0600)."""
        import json

        from ironspire.paths import private_dir, write_private

        try:
            folder = private_dir(self.ws.home / "recovery")
            path = folder / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-agent{self.id}-{time.time_ns()}.json"
            write_private(path, json.dumps({"agent": self.name, "user": json.loads(user.to_json()),
                                            "assistant": json.loads(reply.to_json())}, indent=1) + "\n")
        except Exception:
            return None
        return str(path)


#: the largest token count stored: no request reads or writes a trillion tokens, and SQLite's
#: integers end at 2**63 (a provider's 1e20 would fail the commit of a reply already shown)
MAX_TOKENS = 2**31 - 1


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0
    return int(min(max(value, 0), MAX_TOKENS))


def _money(value: Any) -> Any:
    """A finite, non-negative amount (or None); nan, inf and 1e300 from a provider become 0."""
    if value is None:
        return None
    if not isinstance(value, int | float) or not 0 <= value < 1e12:
        return 0.0
    return float(value)


def clamp_usage(usage: Usage | None) -> Usage | None:
    """The provider's token counts, each made a whole number in 0..MAX_TOKENS (same object if already)."""
    if usage is None:
        return None
    values = (usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning)
    i, o, cr, cw, r = values
    if type(i) is type(o) is type(cr) is type(cw) is type(r) is int and min(values) >= 0 \
            and max(values) <= MAX_TOKENS:  # what providers send: nothing to clamp
        return usage
    i, o, cr, cw, r = (_count(v) for v in values)
    return Usage(i, o, cr, cw, r, state=usage.state)


def _output_budget(max_tokens: int | None) -> int:
    """Characters of output a turn may produce: 16 a token (four times the usual ~4) above the
    limit asked for, so only a reply far past max_tokens (a provider ignoring it) is stopped."""
    return 16 * (max_tokens or 32_768) + 65_536


def over_cap(target: Target, what: str) -> Exception:
    from ironspire.errors import ProviderUnavailable

    return ProviderUnavailable(target.provider.id, f"{what}; the turn was stopped and the history is unchanged",
                               model=target.model.id)
