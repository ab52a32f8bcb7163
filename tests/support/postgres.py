"""A real PostgreSQL server for the test session: Debian's binaries, a private data directory,
port and socket directory under a temp dir, gone when the session ends.

PostgreSQL refuses to run as root, and CI is root on a fresh machine: there the server runs as
the ``postgres`` user the Debian package creates (or ``ironspire-pg``, created here when that user
is missing), through ``setpriv``. Durability settings are off (fsync, synchronous commit): the
tests kill clients, never the server, and a throwaway cluster need not survive a power cut.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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

    def _as_server_user(self, command: list[str]) -> list[str]:
        if self.user is None:
            return command
        entry = pwd.getpwnam(self.user)
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", *command]

    def _run(self, *argv: str) -> None:
        command = self._as_server_user([str(self.bin / argv[0]), *argv[1:]])
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        """initdb, then the server as a child of this process that gets SIGQUIT (immediate
        shutdown) if this process dies, so a killed test run leaves no server behind."""
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        command = [
            str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sockets),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "shared_buffers=128MB",
        ]
        if self.user is not None:
            command = self._as_server_user(["--pdeathsig=QUIT", *command])
        else:
            command = ["setpriv", "--pdeathsig=QUIT", *command]
        self.log = (self.root / "server.log").open("w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start:\n" + (self.root / "server.log").read_text())
            time.sleep(0.05)

    def _ready(self) -> bool:
        done = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)])
        return done.returncode == 0

    def stop(self) -> None:
        try:
            self.process.send_signal(signal.SIGQUIT)  # immediate shutdown: the data is thrown away
            self.process.wait(30)
        finally:
            self.log.close()
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
        return dump_url(self.url(database))


def dump_url(url: str) -> str:
    """``pg_dump`` of the database a SQLAlchemy URL names (data included), as SQL text."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    command = [str(bin_dir() / "pg_dump"), "-h", str(parsed.host), "-p", str(parsed.port or 5432),
               "-U", str(parsed.username), str(parsed.database)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout
