"""One turn from the terminal, without the CLI framework: what `ironspire ask` does and the
warnings and streamed reply `ironspire chat` shares with it.

Nothing here imports Typer, Click or Rich, so the plain `ironspire ask AGENT MESSAGE` can run
from the entry point (``ironspire.cli.main``) before the framework loads, the way `--version`
does: that was about a third of the command's time to the reply's first byte. The Typer command
in ``cli/chat.py`` parses everything else and calls the same ``ask`` below.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ironspire.cli.output import inert

if TYPE_CHECKING:
    from ironspire.workspace import Agent, Workspace


def err(text: str, *, nl: bool = True) -> None:
    """A line for the person on stderr (never mixed into the reply on stdout)."""
    sys.stderr.write(text + ("\n" if nl else ""))
    sys.stderr.flush()


def warn_health(
    ws: Workspace, agent: Agent, fix: str = "switch with `/switch PROVIDER MODEL`", *, once: bool = False
) -> None:
    """``once``: for a single request, where a provider without credentials fails at once with
    the same explanation, so warning first would only say it twice."""
    from ironspire.health import HealthState
    from ironspire.views import health_warning

    route = agent.route
    if once and route is not None and ws.health.status(route.provider).state is HealthState.NOT_CONFIGURED:
        return
    warning = health_warning(ws, route.provider if route else None)
    if warning:
        err(f"warning: {inert(warning.rstrip('.'))}; the reply may fail ({inert(fix)}).")


def budget_warning(ws: Workspace, agent: Agent) -> None:
    """At 80% of a budget the agent's turns count against, one line before the turn is sent
    (at 100% the turn itself is refused, with the reset)."""
    if agent.budget is None and ws.budget is None:  # nothing to warn about: no view to build
        return
    from ironspire.views import agent_budgets, workspace_budget

    for budget in agent_budgets(ws, agent, workspace_budget(ws)):
        if budget.warning and budget.level == "warning":
            err(f"warning: {budget.warning}.")


def text_problem(message: str) -> str | None:
    """Why ``message`` cannot be sent, or None. An empty message would still be sent, billed and
    stored as a turn; text that is not valid UTF-8 (argv bytes Python kept as lone surrogates)
    cannot be encoded for any provider."""
    if not message.strip():
        return "the message is empty."
    try:
        message.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"the message is not valid UTF-8 (byte {exc.start}); convert it first, e.g. with iconv."
    return None


async def stream_reply(agent: Agent, text: str) -> None:
    from ironspire.messages import ReasoningDelta, TextDelta

    thinking = False
    async for event in agent.stream(text):
        if isinstance(event, ReasoningDelta) and event.text:
            if not thinking:
                err("[thinking] ", nl=False)
                thinking = True
            err(event.text, nl=False)
        elif isinstance(event, TextDelta):
            if thinking:
                err("")
                thinking = False
            sys.stdout.write(event.text)
            sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    from ironspire.views import fallback_notice

    history = agent.history
    notice = fallback_notice(history[-1]) if history else None
    if notice:  # the agent's own route failed and another answered: say which, once
        err(f"note: {notice}.")


def needs_probe(ws: Workspace, pid: str) -> bool:
    """Whether ``ask`` probes ``pid`` before sending: not when a request or a check found it
    reachable within the last ``health_interval`` seconds (the age a chat session's health has
    at most). A probe is a round trip to the provider before the one that matters, and a
    provider that just answered needs none; anything else (unknown, unhealthy, rate-limited,
    older) is probed, so the warning before the turn is current."""
    from ironspire.health.status import now

    status = ws.health.status(pid)
    checked = getattr(status, "checked_at", None)
    if not getattr(status, "healthy", False) or checked is None:
        return True
    age: float = (now() - checked).total_seconds()
    return age >= float(ws.setting("health_interval"))


def ask(agent_name: str, message: str, *, check: bool = True) -> None:
    """Sends one message (already checked with ``text_problem``) and streams the reply to
    stdout. Ctrl-C exits with status 130 after saying what was kept."""
    import asyncio

    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        agent = ws.agent(agent_name)

        async def run() -> None:
            try:
                route = agent.route
                if check and route is not None and ws.is_enabled(route.provider) and needs_probe(ws, route.provider):
                    await ws.health.check([route.provider])
                warn_health(ws, agent, f"switch with `ironspire agents set {agent.name} --provider P --model M`",
                            once=True)
                budget_warning(ws, agent)
                await stream_reply(agent, message)
            finally:
                await ws.transport.close()

        try:
            asyncio.run(run())
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            sys.stdout.flush()
            err("interrupted: no reply was saved (a message already sent is kept as unanswered; "
                f"see `ironspire history {agent.name} --all`).")
            raise SystemExit(130) from None


def quick_args(args: list[str]) -> tuple[str, str, bool] | None:
    """``(agent, message, check)`` when ``args`` (argv after the program) is a plain
    ``ask AGENT MESSAGE`` with at most ``--check``/``--no-check``, and the message can be sent;
    None for anything else (help, other options, stdin, a value starting with "-", a message
    to refuse), which the full CLI parses and answers."""
    if not args or args[0] != "ask":
        return None
    check, positional = True, []
    for arg in args[1:]:
        if arg in ("--check", "--no-check"):
            check = arg == "--check"
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
    if len(positional) != 2 or text_problem(positional[1]) is not None:
        return None
    return positional[0], positional[1], check
