"""`ironspire ask|chat|history`: talking to an agent from the terminal, replies streamed."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, cast

import typer

from ironspire.cli import turn
from ironspire.cli.output import console, emit_json, inert, safe
from ironspire.cli.turn import budget_warning as _budget_warning
from ironspire.cli.turn import stream_reply as _stream_reply
from ironspire.cli.turn import text_problem
from ironspire.cli.turn import warn_health as _warn

if TYPE_CHECKING:
    from ironspire.health import HealthMonitor

JSON = typer.Option(False, "--json", help="Machine-readable output.")


CHAT_COMMANDS = "/switch PROVIDER [MODEL], /inherit, /exit"


def _require_text(message: str) -> str:
    problem = text_problem(message)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="'MESSAGE'")
    return message


def _read_stdin() -> str:
    raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(f"the message on stdin is not valid UTF-8 (byte {exc.start}); "
                                 "convert it first, e.g. with iconv.", param_hint="'MESSAGE'") from None


def ask(
    agent_name: str = typer.Argument(..., metavar="AGENT"),
    message: str = typer.Argument(..., help="The message (\"-\" reads it from stdin)."),
    check: bool = typer.Option(True, "--check/--no-check", help=(
        "Probe the provider first and warn if unhealthy (skipped when a request or check found it "
        "reachable within health_interval seconds).")),
) -> None:
    """Send one message to an agent and stream the reply to stdout."""
    if message == "-":
        message = _read_stdin().rstrip("\r\n")  # the newline that ends piped input is not part of it
    _require_text(message)
    turn.ask(agent_name, message, check=check)


async def _read_line() -> str:
    """stdin read on a daemon thread, so the event loop (and the health monitor) runs meanwhile and
    an interrupted read cannot hold the process open at exit."""
    import asyncio
    import threading

    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()

    def deliver(line: str) -> None:
        if not done.done():
            done.set_result(line)

    def read() -> None:
        try:
            line = sys.stdin.readline()
        except UnicodeDecodeError:
            line = "\udcff\n"  # refused as not UTF-8 by the session, which goes on
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=read, daemon=True, name="ironspire-stdin").start()
    return await done


def chat(agent_name: str = typer.Argument(..., metavar="AGENT")) -> None:
    """Talk with an agent interactively. Commands: /switch PROVIDER MODEL, /inherit, /exit.

    While the session is open, configured providers are re-checked in the background every
    `health_interval` seconds (`ironspire providers health-interval`).
    """
    import asyncio

    from ironspire.cli._workspace import workspace
    from ironspire.errors import IronspireError
    from ironspire.views import configured_ids

    with workspace() as ws, asyncio.Runner() as runner:
        agent = ws.agent(agent_name)
        console.print(f"Chatting with [bold]{safe(agent.name)}[/] on {safe(agent.route)}. /exit to leave.")
        monitor = cast("HealthMonitor", ws.health)
        runner.run(monitor.start(float(ws.setting("health_interval")), lambda: configured_ids(ws)))
        _warn(ws, agent)
        try:
            while True:
                typer.echo(f"{inert(agent.name)}> ", nl=False)
                try:
                    line = runner.run(_read_line())
                except KeyboardInterrupt:  # Ctrl-C at the prompt leaves, as /exit does
                    typer.echo("")
                    break
                if not line:
                    break
                text = line.strip()
                if not text:
                    continue
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    typer.echo("that line is not valid UTF-8; nothing was sent.", err=True)
                    continue
                if text in ("/exit", "/quit"):
                    break
                if text.startswith("//"):  # a message that itself begins with "/"
                    text = text[1:]
                elif text.startswith("/") and text.split()[0] not in ("/switch", "/inherit"):
                    typer.echo(
                        f"unknown command {text.split()[0]}. Commands: {CHAT_COMMANDS} "
                        "(start with // to send a message that begins with /).",
                        err=True,
                    )
                    continue
                try:
                    if text.startswith("/switch"):
                        args = text.split()[1:]
                        if len(args) not in (1, 2):
                            typer.echo("usage: /switch PROVIDER [MODEL]", err=True)
                            continue
                        agent.switch(args[0], args[1] if len(args) == 2 else None)
                        typer.echo(f"now on {agent.route} (history kept: {len(agent.history)} messages)")
                        _warn(ws, agent)
                        continue
                    if text == "/inherit":
                        agent.inherit()
                        typer.echo(f"now on {agent.route}")
                        continue
                    _warn(ws, agent)  # the monitor may have learned something since the last turn
                    _budget_warning(ws, agent)
                    runner.run(_stream_reply(agent, text))
                except KeyboardInterrupt:  # Ctrl-C during a reply stops that reply, not the session
                    typer.echo("")
                    typer.echo("interrupted: the reply was not saved; your message is kept as unanswered.", err=True)
                except IronspireError as exc:
                    typer.echo(f"error: {inert(exc)}", err=True)
        finally:
            runner.run(monitor.stop())
            runner.run(ws.transport.close())


def history(
    agent_name: str = typer.Argument(..., metavar="AGENT"),
    as_json: bool = JSON,
    all_: bool = typer.Option(False, "--all", help="Every message, unanswered ones of failed turns included."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Show the newest N messages (ignored with --all)."),
    drop_last: int | None = typer.Option(None, "--drop-last", min=1, metavar="N",
                                         help="Delete the N newest messages (asks first)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --drop-last: do it without asking."),
) -> None:
    """Show an agent's conversation."""
    from ironspire import views
    from ironspire.cli._workspace import workspace
    from ironspire.messages import ToolResult

    if drop_last is not None:
        from ironspire.cli.agents import confirm

        with workspace() as ws:
            agent = ws.agent(agent_name)
            confirm(f"Delete the {drop_last} newest messages of {safe(agent.name)}?", yes)
            dropped = agent.drop_last(drop_last)
        console.print(f"{safe(agent_name)}: {dropped} messages deleted.")
        return
    with workspace() as ws:
        entries = views.history(ws, agent_name, unanswered=all_, limit=None if all_ else limit)
    if as_json:
        emit_json([e.to_json() for e in entries])
        return
    if not entries:
        console.print("No messages yet.")
    for e in entries:
        m = e.message
        who = m.role + (f" ({e.produced_by})" if e.produced_by else "")
        notice = e.fallback_notice
        if notice:
            who += f", {notice}"
        mark = "  [yellow](unanswered)[/]" if e.status == "unanswered" else ""
        body = m.text
        for call in m.tool_calls:
            body += f"\n[tool call {call.name}({dict(call.arguments)})]"
        for part in m.parts:
            if isinstance(part, ToolResult):
                body += f"\n[{'error from' if part.is_error else 'result of'} tool {part.tool_name}: {part.text()}]"
        body = body.strip("\n")
        console.print(f"[bold]{safe(who)}[/]{mark}")
        console.print(inert(body), markup=False)
        console.print()


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
    app.command("chat")(chat)
    app.command("history")(history)
