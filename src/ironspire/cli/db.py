"""`ironspire db`: the workspace database itself (which one, its schema, moving it elsewhere).

The database is SQLite in IRONSPIRE_HOME unless ``ironspire --database URL`` or
IRONSPIRE_DATABASE_URL names another (PostgreSQL: ``postgresql+psycopg://USER@HOST:PORT/DB``).
"""

from __future__ import annotations

from typing import Any

import typer

from ironspire.cli.output import console, emit_json

app = typer.Typer(help="The workspace database: status, schema upgrade, copy between SQLite and PostgreSQL.",
                  no_args_is_help=True)


def _current() -> Any:
    """The URL in force (``--database``, IRONSPIRE_DATABASE_URL, or SQLite in the home)."""
    from ironspire.paths import home
    from ironspire.store import engines

    return engines.resolve(home())


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Which database the workspace uses, its schema revision and what it holds."""
    from ironspire.store import copy, engines, migrations

    url = _current()
    sums = copy.checksums(url)
    engine = engines.make_engine(url)
    try:
        revision = migrations.current_revision(engine)
    finally:
        engine.dispose()
    record = {"database": engines.shown(url), "engine": url.get_backend_name(), "revision": revision,
              "head": migrations.HEAD, "rows": {name: s.rows for name, s in sums.items()},
              "checksums": {name: s.sha256 for name, s in sums.items()}}
    if as_json:
        emit_json(record)
        return
    console.print(f"{record['database']} ({record['engine']}), schema {revision} (this Ironspire: {migrations.HEAD})")
    for name, s in sums.items():
        console.print(f"  {name:<18} {s.rows:>10,} rows  sha256 {s.sha256[:16]}")


@app.command("upgrade")
def upgrade() -> None:
    """Brings the database's schema to this Ironspire's (PostgreSQL: run once per release, before
    starting the workers; SQLite upgrades itself when opened)."""
    from ironspire.store import engines

    url = _current()
    before, after = engines.upgrade(url)
    if before == after:
        console.print(f"{engines.shown(url)} is already at schema {after}.")
    else:
        console.print(f"Upgraded {engines.shown(url)} from schema {before or 'none'} to {after}.")


@app.command("copy")
def copy_(
    source: str | None = typer.Option(None, "--from", help="Database to copy (default: this workspace's)."),
    target: str | None = typer.Option(None, "--to", help="Database to copy into (default: this workspace's)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a target that already holds a workspace."),
) -> None:
    """Copies a workspace between databases (SQLite <-> PostgreSQL): every row, ids kept, proven
    by equal row counts and checksums. Credentials are not in any database: set them per machine."""
    from ironspire.errors import ConfigurationError
    from ironspire.store import copy, engines

    if source is None and target is None:
        raise ConfigurationError("say where to copy from or to.",
                                 hint="Use --to URL (from this workspace's database) or --from URL (into it).")
    src = engines.parse(source) if source is not None else _current()
    dst = engines.parse(target) if target is not None else _current()
    sums = copy.copy(src, dst, replace=replace)
    total = sum(s.rows for s in sums.values())
    console.print(f"Copied {total:,} rows from {engines.shown(src)} to {engines.shown(dst)}; "
                  "row counts and checksums match:")
    for name, s in sums.items():
        console.print(f"  {name:<18} {s.rows:>10,} rows  sha256 {s.sha256[:16]}")
