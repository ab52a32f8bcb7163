"""The Claude Code CLI as a child process, behind claude-agent-sdk's ``Transport`` interface.

We hand the SDK our own transport instead of its subprocess one for a single reason: the SDK's
transport starts the CLI with the parent's whole environment (it can add variables, never remove
them), and an ``ANTHROPIC_API_KEY`` there makes the CLI bill that key instead of the user's
subscription. Here the command line and the environment are built by the caller, explicitly; the
SDK still runs the control protocol and parses every message.

Importing this module imports claude_agent_sdk; ``claude_cli`` does so lazily, only when a turn
actually goes to the CLI.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import suppress
from subprocess import PIPE
from typing import IO, Any

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from claude_agent_sdk import CLIConnectionError, CLIJSONDecodeError, ProcessError, Transport

MAX_LINE = 16 * 1024 * 1024
_STDERR_TAIL = 4000


class CliProcess(Transport):
    """One CLI process per turn: stdin takes stream-json input, stdout gives NDJSON messages."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> None:
        self.argv, self.env, self.cwd = list(argv), dict(env), cwd
        self._process: Process | None = None
        self._stdin: ByteSendStream | None = None
        self._stdout: ByteReceiveStream | None = None
        self._stderr: IO[bytes] | None = None
        self._stderr_text = ""
        self.returncode: int | None = None

    async def connect(self) -> None:
        if self._process is not None:
            return
        # stderr goes to a file, not a pipe: nothing has to drain it while we read stdout,
        # and its tail is there to quote when the process fails.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process; closed in close()
        self._process = await anyio.open_process(
            self.argv, stdin=PIPE, stdout=PIPE, stderr=self._stderr, env=self.env, cwd=self.cwd
        )
        self._stdin, self._stdout = self._process.stdin, self._process.stdout

    async def write(self, data: str) -> None:
        if self._stdin is None:
            raise CLIConnectionError("the Claude CLI's input is already closed")
        try:
            await self._stdin.send(data.encode())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise CLIConnectionError(f"cannot write to the Claude CLI: {exc}") from exc

    def read_messages(self) -> AsyncIterator[dict[str, Any]]:
        return self._read()

    async def _read(self) -> AsyncIterator[dict[str, Any]]:
        if self._process is None or self._stdout is None:
            raise CLIConnectionError("the Claude CLI is not running")
        pending = b""
        with suppress(anyio.EndOfStream, anyio.ClosedResourceError):
            while True:
                pending += await self._stdout.receive()
                *lines, pending = pending.split(b"\n")
                if len(pending) > MAX_LINE:
                    raise CLIJSONDecodeError(pending[:200].decode("utf-8", "replace"),
                                             ValueError(f"line longer than {MAX_LINE} bytes"))
                for line in lines:
                    message = _parse(line)
                    if message is not None:
                        yield message
        message = _parse(pending)
        if message is not None:
            yield message
        code = await self._process.wait()
        if code != 0:
            raise ProcessError(f"the Claude CLI exited with code {code}", exit_code=code, stderr=self.stderr_tail())

    def stderr_tail(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return self._stderr_text
        self._stderr.seek(0, 2)
        size = self._stderr.tell()
        self._stderr.seek(max(size - _STDERR_TAIL, 0))
        return self._stderr.read().decode("utf-8", "replace")

    async def end_input(self) -> None:
        if self._stdin is not None:
            with suppress(Exception):
                await self._stdin.aclose()
            self._stdin = None

    async def close(self) -> None:
        """Bounded: end input, give the CLI 5 s to save its session, then terminate, then kill."""
        process = self._process
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            await self.end_input()
            if process.returncode is None:
                with anyio.move_on_after(5):
                    await process.wait()
            if process.returncode is None:
                with suppress(ProcessLookupError):
                    process.terminate()
                with anyio.move_on_after(5):
                    await process.wait()
            if process.returncode is None:
                with suppress(ProcessLookupError):
                    process.kill()
                with anyio.move_on_after(5):
                    await process.wait()
            with suppress(Exception):
                await process.aclose()
            self.returncode = process.returncode
            if self._stderr is not None:
                self._stderr_text = self.stderr_tail()
                self._stderr.close()
        self._process = None

    def is_ready(self) -> bool:
        return self._process is not None and self._stdin is not None


def _parse(line: bytes) -> dict[str, Any] | None:
    """A JSON object per line; other output some CLI builds print on stdout is skipped."""
    text = line.strip()
    if not text.startswith(b"{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIJSONDecodeError(text[:200].decode("utf-8", "replace"), exc) from exc
    return value if isinstance(value, dict) else None
