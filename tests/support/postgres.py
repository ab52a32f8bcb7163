"""A real PostgreSQL server for the test session: Debian's binaries, a private data directory,
port and socket directory under a temp dir, gone when the session ends.

PostgreSQL refuses to run as root, and CI is root on a fresh machine: there the server runs as
the ``postgres`` user the Debian package creates (or ``ironspire-pg``, created here when that user
is missing), through ``runuser``. Durability settings are off (fsync, synchronous commit): the
tests kill clients, never the server, and a throwaway cluster need not survive a power cut.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SUPERUSER = "ironspire"


class PostgresMissing(RuntimeError):
    pass


def bin_dir() -> Path:
    """The newest installed server's binaries (Debian keeps them outside PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresMissing(
        "PostgreSQL is not installed; `bash scripts/test.sh` installs Debian's `postgresql` package "
        "(or run `apt-get install postgresql`)."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> str | None:
    """None when this process may run the server itself; else the unprivileged user to run it as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "ironspire-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "ironspire-pg"], check=True)
    return "ironspire-pg"


class PostgresServer:
    def __init__(self) -> None:
        self.bin = bin_dir()
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="ironspire-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.sockets.mkdir()
        self.port = _free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
            "-c shared_buffers=128MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w",
                  "-t", "60", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def dump(self, database: str) -> str:
        """``pg_dump`` of one database, as SQL text (data included)."""
        command = [str(self.bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, database]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        return done.stdout
