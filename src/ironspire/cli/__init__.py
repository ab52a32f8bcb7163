"""The `ironspire` command's entry point.

``ironspire --version`` and a plain ``ironspire ask AGENT MESSAGE`` are answered here, before
Typer, Rich and the sub-apps load (the framework's import and argument parsing were a third of
``ask``'s time to the reply's first byte); everything else, including every ``ask`` with other
options, ``-`` for stdin or a message to refuse, goes to the Typer app in ``ironspire.cli.app``,
which runs the same turn (``cli/turn.py``).
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from ironspire import __version__

        sys.stdout.write(f"ironspire {__version__}\n")
        return
    quick = _quick_ask(sys.argv[1:])
    if quick is not None:
        from ironspire.cli import turn
        from ironspire.cli.failures import reported

        agent, message, check = quick
        try:
            with reported():
                turn.ask(agent, message, check=check)
        except BrokenPipeError:  # the reader went away (`| head`): quietly, as the full CLI does
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            sys.exit(1)
        return
    from ironspire.cli.app import main as run

    run()


def _quick_ask(args: list[str]) -> tuple[str, str, bool] | None:
    if not args or args[0] != "ask":
        return None
    from ironspire.cli.turn import quick_args

    return quick_args(args)
