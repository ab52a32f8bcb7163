"""The PostgreSQL a benchmark runs on: the one ``--database`` names, or a private server under a
temp dir for the length of the run (the test suite's harness, ``tests/support/postgres.py``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    sys.path.insert(0, str(REPO / "tests"))
    from support.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server.create_database()
    finally:
        server.stop()
