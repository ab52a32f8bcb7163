"""The `ironspire` command: one Typer app with a sub-app per area (providers, models, agents...).

Sub-apps live in their own modules and are registered here; each imports what it needs inside
its commands so that `ironspire --help` and `--version` start quickly.
"""

from __future__ import annotations

import typer

from ironspire import __version__
from ironspire.cli import agents as agents_cli
from ironspire.cli import analytics as analytics_cli
from ironspire.cli import chat as chat_cli
from ironspire.cli import db as db_cli
from ironspire.cli import default as default_cli
from ironspire.cli import models as models_cli
from ironspire.cli import portable as portable_cli
from ironspire.cli import providers as providers_cli
from ironspire.cli import serve as serve_cli

app = typer.Typer(
    name="ironspire",
    help="A multi-agent workspace: every agent on the provider and model of its choice.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(providers_cli.app, name="providers")
app.add_typer(models_cli.app, name="models")
app.add_typer(default_cli.app, name="default")
app.add_typer(agents_cli.app, name="agents")
app.add_typer(db_cli.app, name="db")
chat_cli.register(app)
analytics_cli.register(app)
portable_cli.register(app)
serve_cli.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ironspire {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    database: str | None = typer.Option(
        None, "--database", metavar="URL",
        help="The workspace database (default: SQLite in IRONSPIRE_HOME; also IRONSPIRE_DATABASE_URL), "
        "e.g. postgresql+psycopg://USER@HOST:5432/ironspire.",
    ),
) -> None:
    """Ironspire command line."""
    if database is not None:
        import os

        from ironspire.store import engines

        if engines.sqlite_path(database) is None:  # a plain SQLite URL needs no SQLAlchemy to check
            engines.parse(database)  # a malformed URL is refused before any command runs
        os.environ[engines.ENV] = database  # every command, and every workspace it opens, uses it


def main() -> None:
    """Runs the CLI, turning Ironspire's own errors into a clear message and exit code 1."""
    from ironspire.cli.failures import reported

    with reported():
        app()
