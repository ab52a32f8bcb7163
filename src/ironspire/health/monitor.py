"""The health of every provider: checked on demand, re-checked periodically, updated by traffic.

Checks run in parallel, each bounded by a short timeout, so one dead provider delays no other.
Live traffic reaches ``observe`` through the transport's observer hook and changes the state at
once; a rate limit carries its reset time and lifts by itself when that passes.

The state outlives the process in a file (``persist``), or, for workers sharing one database,
on a board every process reads (``share``): there one process probes a provider per interval
for all of them, and what live traffic showed one worker the others show within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ironspire.catalog.readiness import Readiness, readiness
from ironspire.errors import (
    AuthenticationError,
    ConfigurationError,
    CredentialsMissing,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    redact,
)
from ironspire.health.probes import DEFAULT_RATE_LIMIT, probe_for
from ironspire.health.status import HealthState, HealthStatus, now
from ironspire.paths import write_private
from ironspire.transport import Transport
from ironspire.wire import Target

if TYPE_CHECKING:
    from ironspire.protocols.base import Backend

log = logging.getLogger(__name__)


class HealthBoard(Protocol):
    """Where processes sharing a database keep provider health (the store implements it)."""

    def health_states(self) -> dict[str, dict[str, Any]]: ...
    def put_health(self, pid: str, status: dict[str, Any] | None) -> None: ...
    def claim_probe(self, pid: str, fresh: float) -> bool: ...


def target_readiness(target: Target, enabled: bool = True) -> Readiness:
    """``readiness`` over a resolved Target: its secrets, settings (stored, environment,
    defaults) and base URL are exactly what a request would use."""
    present = {*target.secrets, *(k for k, v in target.settings.items() if v)}
    return readiness(target.provider, present=present, base_url=target.base_url, enabled=enabled,
                     settings=target.settings)


class HealthMonitor:
    def __init__(
        self,
        transport: Transport,
        resolve: Callable[[str], Target],
        *,
        provider_ids: Callable[[], Iterable[str]],
        is_enabled: Callable[[str], bool],
        timeout: float = 5.0,
    ) -> None:
        self.transport = transport
        self.resolve = resolve
        self.provider_ids = provider_ids
        self.is_enabled = is_enabled
        self.timeout = timeout
        self._state: dict[str, HealthStatus] = {}
        self._task: asyncio.Task[None] | None = None
        self._path: Path | None = None
        self._board: HealthBoard | None = None
        self._pulled = -1e9
        self._refresh = 1.0
        #: called with (provider, previous state or None, new status) when a provider's state changes
        #: (the workspace records these for the Analytics panel's Reliability timeline)
        self.transitions: list[Callable[[str, str | None, HealthStatus], None]] = []

    # --- kept between commands --------------------------------------------------------------

    def persist(self, path: Path) -> None:
        """Keeps the last known state of each provider in ``path``, so the next command knows it:
        `agents list` after a failed `ask` still warns. Details are already redacted."""
        self._path = path
        for pid, data in self._read().items():
            with contextlib.suppress(KeyError, ValueError, TypeError):
                self._state.setdefault(pid, HealthStatus.from_dict(data))

    def share(self, board: HealthBoard, *, refresh: float = 1.0) -> None:
        """Keeps the state on ``board`` instead of a file: every process on the board sees what
        any of them probed or observed, re-read at most every ``refresh`` seconds."""
        self._board, self._refresh = board, refresh
        self._pull(force=True)

    def _pull(self, *, force: bool = False) -> None:
        if self._board is None:
            return
        moment = time.monotonic()
        if not force and moment - self._pulled < self._refresh:
            return
        self._pulled = moment
        try:
            records = self._board.health_states()
        except Exception as exc:  # the database being away must not break a status line
            log.warning("could not read the shared provider health (%s)", exc)
            return
        for pid, data in records.items():
            with contextlib.suppress(KeyError, ValueError, TypeError):
                theirs = HealthStatus.from_dict(data)
                mine = self._state.get(pid)
                if mine is None or theirs.checked_at > mine.checked_at:
                    self._state[pid] = theirs

    def _read(self) -> dict[str, dict[str, object]]:
        if self._path is None:
            return {}
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _set(self, pid: str, status: HealthStatus | None) -> None:
        previous = self._state.get(pid)
        if status is None:
            self._state.pop(pid, None)
        else:
            self._state[pid] = status
            if previous is None or previous.state is not status.state:
                for listener in self.transitions:
                    try:
                        listener(pid, None if previous is None else previous.state.value, status)
                    except Exception as exc:  # a listener (the ledger) must never break a turn's health update
                        log.warning("health transition of %s not recorded (%s)", pid, exc)
        if self._board is not None:
            try:
                self._board.put_health(pid, None if status is None else status.to_dict())
            except Exception as exc:
                log.warning("could not share provider health (%s)", exc)
            return
        if self._path is None:
            return
        # re-read first: another process (a chat session, a script) may have updated other providers
        data = self._read()
        if status is None:
            data.pop(pid, None)
        else:
            data[pid] = status.to_dict()
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        try:
            write_private(tmp, json.dumps(data, indent=1) + "\n")
            tmp.replace(self._path)
        except OSError as exc:
            log.warning("could not keep provider health in %s (%s)", self._path, exc)

    # --- reading -------------------------------------------------------------------------------

    def status(self, pid: str) -> HealthStatus:
        if not self.is_enabled(pid):
            return HealthStatus(pid, HealthState.DISABLED, detail="disabled in settings")
        self._pull()
        current = self._state.get(pid)
        if current is None:
            return HealthStatus(pid, HealthState.UNKNOWN, detail="not checked yet")
        if current.state is HealthState.RATE_LIMITED and current.until is not None and current.until <= now():
            current = HealthStatus(pid, HealthState.REACHABLE, current.until, current.latency_ms,
                                   "rate limit has reset")
            self._set(pid, current)
        return current

    def statuses(self) -> dict[str, HealthStatus]:
        return {pid: self.status(pid) for pid in self.provider_ids()}

    # --- active checks ------------------------------------------------------------------------

    async def check(self, ids: Iterable[str] | None = None, *, fresh: float = 0.0) -> dict[str, HealthStatus]:
        """Probes the given (default: all) providers now, in parallel.

        ``fresh`` > 0 with a shared board: a provider that some process probed (or is probing)
        in the last ``fresh`` seconds is not probed again; its shared state is returned.
        """
        wanted = list(dict.fromkeys(self.provider_ids() if ids is None else ids))
        results = await asyncio.gather(*(self._check_one(pid, fresh) for pid in wanted))
        return dict(zip(wanted, results, strict=True))

    async def _check_one(self, pid: str, fresh: float = 0.0) -> HealthStatus:
        if not self.is_enabled(pid):
            return self.status(pid)
        if fresh > 0 and self._board is not None and not await asyncio.to_thread(self._board.claim_probe, pid, fresh):
            return await self._await_shared(pid, fresh)
        try:
            target = self.resolve(pid)
            _protocol(target, self.transport).check_configured(target)  # raises with how to fix it
        except (CredentialsMissing, ConfigurationError) as exc:
            result = HealthStatus(pid, HealthState.NOT_CONFIGURED, detail=str(exc))
            self._set(pid, result)
            return result
        try:
            # a hard bound too: DNS or a subprocess can stall outside the HTTP client's own timeouts
            result = await asyncio.wait_for(probe_for(target, self.transport, self.timeout), self.timeout + 1.0)
        except TimeoutError:
            result = HealthStatus(pid, HealthState.UNREACHABLE, latency_ms=self.timeout * 1000,
                                  detail=f"no answer within {self.timeout:g} s")
        except (CredentialsMissing, ConfigurationError) as exc:
            result = HealthStatus(pid, HealthState.NOT_CONFIGURED, detail=str(exc))
        except Exception as exc:  # a broken probe must not take the other checks down with it
            log.exception("health probe for %s failed", pid)
            result = HealthStatus(pid, HealthState.UNKNOWN,
                                  detail=redact(f"check failed: {type(exc).__name__}: {exc}",
                                                target.secrets.values()))
        if self.is_enabled(pid):  # disabled while the probe ran: keep it disabled
            self._set(pid, result)
        return result

    async def _await_shared(self, pid: str, fresh: float) -> HealthStatus:
        """Another process probed ``pid`` lately or is probing it now: its result serves us too
        (waited for as long as a probe may take)."""
        deadline = time.monotonic() + self.timeout + 1.0
        while True:
            await asyncio.to_thread(self._pull, force=True)
            known = self._state.get(pid)
            if known is not None and (now() - known.checked_at).total_seconds() < fresh:
                return self.status(pid)
            if time.monotonic() > deadline:
                return self.status(pid)
            await asyncio.sleep(0.1)

    # --- passive updates ----------------------------------------------------------------------

    def observe(self, pid: str, error: ProviderError | None, latency: float) -> None:
        """Transport observer: what a real request just showed, recorded at once."""
        if not self.is_enabled(pid):
            return
        checked = now()
        ms = latency * 1000
        if error is None:
            status = HealthStatus(pid, HealthState.REACHABLE, checked, ms, "last request succeeded")
        elif isinstance(error, RateLimitError):
            wait = error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT
            status = HealthStatus(pid, HealthState.RATE_LIMITED, checked, ms, error.message,
                                  checked + timedelta(seconds=wait))
        elif isinstance(error, AuthenticationError):
            status = HealthStatus(pid, HealthState.INVALID_KEY, checked, ms, error.message)
        elif isinstance(error, ProviderUnavailable):
            status = HealthStatus(pid, HealthState.UNREACHABLE, checked, ms, error.message)
        else:
            # a rejected request (bad input, unknown model) still proves the provider answers
            status = HealthStatus(pid, HealthState.REACHABLE, checked, ms,
                                  "answered (last request was rejected: " + error.message + ")")
        previous = self._state.get(pid)
        if error is None and previous is not None and previous.state is HealthState.REACHABLE \
                and (checked - previous.checked_at).total_seconds() < 1.0:
            self._state[pid] = status  # busy traffic: the file need not be rewritten per request
            return
        self._set(pid, status)

    def attach(self) -> None:
        """Registers ``observe`` with the transport (once)."""
        if self.observe not in self.transport.observers:
            self.transport.observers.append(self.observe)

    def reset(self, pid: str) -> None:
        self._set(pid, None)

    # --- periodic re-checks -------------------------------------------------------------------

    async def start(self, interval: float, ids: Callable[[], Iterable[str]] | None = None) -> None:
        """Re-checks providers every ``interval`` seconds until ``stop``: those ``ids()`` names (asked
        anew each round, so providers set up mid-session join in), else every enabled provider whose
        required values are present."""
        if interval <= 0:
            raise ConfigurationError("the health check interval must be positive.")
        await self.stop()
        self._task = asyncio.create_task(self._loop(interval, ids), name="ironspire-health")

    async def _loop(self, interval: float, ids: Callable[[], Iterable[str]] | None) -> None:
        while True:
            try:
                wanted = list(ids()) if ids is not None else [
                    pid for pid in self.provider_ids() if self.is_enabled(pid) and self.configured(pid)]
                # on a shared board, a provider another process probed this interval is not probed again
                await self.check([pid for pid in wanted if self.is_enabled(pid)], fresh=interval * 0.9)
            except Exception:
                log.exception("periodic health check failed")
            await asyncio.sleep(interval)

    def configured(self, pid: str) -> bool:
        """Whether a check could authenticate, by the one definition the views use too
        (``catalog.readiness``), over the values a request would carry."""
        try:
            target = self.resolve(pid)
        except (CredentialsMissing, ConfigurationError):
            return False
        return target_readiness(target, self.is_enabled(pid)).configured

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()


def _protocol(target: Target, transport: Transport) -> Backend:
    """The target's adapter: it knows what its requests need (a URL, which secrets)."""
    from ironspire.protocols import backend_for

    return backend_for(target.provider.protocol, transport)
