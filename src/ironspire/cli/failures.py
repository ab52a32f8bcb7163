"""How a command that failed ends: Ironspire's own errors as one clear line and exit code 1,
never a traceback. Shared by the Typer app and the entry point's fast paths, without importing
the CLI framework (Rich loads only to print an error)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from ironspire.errors import IronspireError


@contextmanager
def reported() -> Iterator[None]:
    try:
        yield
    except IronspireError as exc:
        fail(exc)
    except Exception as exc:
        damaged = damaged_database(exc)
        if damaged is None:
            raise
        fail(damaged)


def fail(exc: IronspireError) -> NoReturn:
    from rich.console import Console

    from ironspire.cli.output import safe

    Console(stderr=True).print(f"[bold red]error:[/] {safe(exc)}", markup=True, highlight=False)
    sys.exit(1)


def damaged_database(exc: Exception) -> IronspireError | None:
    """A database that went bad under a command (a corrupt page found by a query) is reported
    naming the file, like one found damaged at open, instead of as a driver traceback."""
    import os
    from pathlib import Path

    if "sqlalchemy" not in sys.modules and "sqlite3" not in sys.modules:
        return None
    from ironspire.paths import home
    from ironspire.store.store import URL_ENV, default_url, explain

    url = os.environ.get(URL_ENV) or default_url(home())
    return explain(exc, Path(url.split(":///", 1)[-1]))
