"""One model's runtime process, supervised as a state machine.

The supervisor owns the process and its :class:`~moc.backends.state.State`;
every change goes through :meth:`Supervisor._to`, which checks the move
against the transition table, logs it, tells the owner (metrics, memory) and
wakes whoever waits for a change. Ownership: one supervisor per loaded model,
driven from the event loop only; the lifecycle calls ``start`` and ``stop``
and never touches the process itself. What the supervisor has to tell its
owner goes through :class:`Hooks`.

A process that dies while ready is restarted after an exponential backoff;
after ``restart_limit`` consecutive failures the model is ``degraded`` and
left alone until an operator loads it again. Out-of-memory lines in its log
are reported to the owner, who raises the model's learned size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from moc.backends.launch import Launch
from moc.backends.oom import oom_lines
from moc.backends.process import RuntimeProcess, log_tail
from moc.backends.state import State, backoff_delay, check
from moc.errors import LoadFailed
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

READY_POLL_FAST_S = 0.001  # first second: a tight poll keeps moc's share of a cold load small
READY_POLL_S = 0.05


@dataclass(frozen=True)
class SupervisionPolicy:
    ready_timeout_s: float
    stop_grace_s: float
    restart_limit: int
    backoff_s: float
    backoff_max_s: float


@dataclass(frozen=True)
class Change:
    model: str
    old: State
    new: State
    reason: str


@dataclass(frozen=True)
class Hooks:
    """What a supervisor tells the lifecycle, which owns the model's memory."""

    on_change: Callable[[Change], None]  # every state change, after it happened
    on_started: Callable[[int, int], None]  # (pid, port) of a runtime process just spawned
    on_oom: Callable[[list[str]], None]  # out-of-memory lines from its log
    on_usage: Callable[[int], None]  # bytes the runtime reports it uses


class Supervisor:
    """The state machine every runtime shares; subclasses say how a runtime
    is brought up, noticed gone and brought down (:meth:`_bring_up`,
    :meth:`_until_down`, :meth:`_bring_down`)."""

    def __init__(self, model: str, policy: SupervisionPolicy, hooks: Hooks) -> None:
        self.model = model
        self._policy = policy
        self._hooks = hooks
        self.state = State.STOPPED
        self.process: RuntimeProcess | None = None  # for runtimes that are moc's processes
        self.failures = 0
        self.last_error: str | None = None
        self.runtime_start_s: float | None = None  # spawn → /health 200, the last start
        self._changed = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    # --- the one transition function --------------------------------------
    def _to(self, new: State, reason: str) -> None:
        old = self.state
        check(old, new)
        self.state = new
        level = (
            logging.WARNING
            if new in (State.BACKOFF, State.FAILED, State.DEGRADED)
            else logging.INFO
        )
        event(log, level, "model state", model=self.model, old=old, new=new, reason=reason)
        self._hooks.on_change(Change(self.model, old, new, reason))
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        """Until the next state change."""
        await self._changed.wait()

    @property
    def url(self) -> str:
        """Where the runtime serves (its root, without /v1)."""
        raise NotImplementedError

    # --- what a kind of runtime fills in -------------------------------------
    async def _bring_up(self) -> None:
        """Start the runtime and wait until it serves; raises LoadFailed."""
        raise NotImplementedError

    async def _until_down(self) -> str:
        """Return, with what happened, once a ready runtime stops serving."""
        raise NotImplementedError

    async def _bring_down(self) -> None:
        raise NotImplementedError

    def _failure(self, what: str) -> LoadFailed:
        return LoadFailed(f"model {self.model}: {what}", model=self.model)

    # --- starting ----------------------------------------------------------
    async def start(self, reason: str) -> None:
        """Start the runtime and wait until it serves; raises LoadFailed."""
        self._to(State.STARTING, reason)
        try:
            await self._bring_up()
        except LoadFailed as exc:
            self.failures += 1
            self.last_error = exc.message
            if self.failures > self._policy.restart_limit:
                self._to(State.DEGRADED, f"{self.failures} failures in a row")
            else:
                self._to(State.FAILED, exc.message)
            raise
        self._became_ready("started")

    def _became_ready(self, reason: str) -> None:
        self.failures = 0
        self.last_error = None
        self._to(State.READY, reason)
        self._watcher = asyncio.create_task(self._watch(), name=f"watch {self.model}")

    # --- crashes and restarts ------------------------------------------------
    async def _watch(self) -> None:
        what = await self._until_down()
        if self.state is not State.READY:
            return  # a stop in progress owns the runtime now
        self.failures += 1
        self.last_error = self._failure(what).message
        self._to(State.BACKOFF, what)
        await self._restart()

    async def _restart(self) -> None:
        """Restart with backoff until ready, degraded, or stopped by someone else."""
        while self.state is State.BACKOFF:
            if self.failures > self._policy.restart_limit:
                self._to(State.DEGRADED, f"{self.failures} failures in a row")
                return
            delay = backoff_delay(self.failures, self._policy.backoff_s, self._policy.backoff_max_s)
            await asyncio.sleep(delay)
            if self.state is not State.BACKOFF:
                return
            self._to(State.STARTING, f"restart {self.failures} after {delay:g} s")
            try:
                await self._bring_up()
            except LoadFailed as exc:
                self.failures += 1
                self.last_error = exc.message
                self._to(State.BACKOFF, "restart failed")
                continue
            self._became_ready("restarted")
            return

    # --- stopping --------------------------------------------------------------
    def mark_stopping(self, reason: str) -> None:
        """Enter ``stopping`` now, in the caller's synchronous step; :meth:`stop` finishes."""
        if self.state in (State.STARTING, State.READY, State.BACKOFF):
            self._to(State.STOPPING, reason)

    async def stop(self, reason: str) -> None:
        """Stop the runtime (SIGTERM, SIGKILL after the grace period).

        One caller at a time: the loader shares one stop per model.
        """
        if self.state is State.STOPPED:
            return
        if self.state in (State.FAILED, State.DEGRADED):
            self._to(State.STOPPED, reason)
            return
        self.mark_stopping(reason)
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self._bring_down()
        self._to(State.STOPPED, reason)


class ProcessSupervisor(Supervisor):
    """A runtime that is a process moc starts: llama.cpp's server, vLLM."""

    def __init__(
        self,
        model: str,
        make_launch: Callable[[], Launch],
        log_path: Path,
        http: httpx.AsyncClient,
        policy: SupervisionPolicy,
        hooks: Hooks,
    ) -> None:
        super().__init__(model, policy, hooks)
        self._make_launch = make_launch
        self.log_path = log_path
        self._http = http
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def adopt(self, process: RuntimeProcess, port: int) -> None:
        """Take over a healthy runtime an earlier moc started."""
        self._to(State.STARTING, "found running after a restart of moc")
        self.process, self.port = process, port
        self._became_ready("adopted")

    async def _bring_up(self) -> None:
        await self._spawn_until_ready()

    async def _until_down(self) -> str:
        assert self.process is not None
        status = await self.process.wait()
        await self.process.stop(0)  # children the runtime left behind (vLLM's workers) go too
        return f"the runtime exited with status {status}"

    async def _bring_down(self) -> None:
        if self.process is not None:
            await self.process.stop(self._policy.stop_grace_s)
        self.process = None

    async def _spawn_until_ready(self) -> None:
        launch = self._make_launch()
        self.port = launch.port
        try:
            self.process = RuntimeProcess.start(launch, self.log_path)
        except OSError as exc:
            raise LoadFailed(f"model {self.model}: {exc.strerror}", model=self.model) from exc
        spawned = time.monotonic()
        self._hooks.on_started(self.process.pid, launch.port)
        try:
            await asyncio.wait_for(self._until_healthy(self.process), self._policy.ready_timeout_s)
            self.runtime_start_s = time.monotonic() - spawned
        except TimeoutError:
            await self.process.stop(self._policy.stop_grace_s)
            raise self._failure(
                f"did not become ready within {self._policy.ready_timeout_s:g} s"
            ) from None
        except LoadFailed:
            await self.process.stop(self._policy.stop_grace_s)
            raise
        except asyncio.CancelledError:
            await self.process.stop(self._policy.stop_grace_s)
            raise

    async def _until_healthy(self, process: RuntimeProcess) -> None:
        started = time.monotonic()
        url = f"{self.url}/health"
        listening = False
        while True:
            if process.returncode is not None:
                raise self._failure(f"the runtime exited with status {process.returncode}")
            # Until its port takes connections (most of a start), a bare
            # connect is the probe: an HTTP request costs ten times the CPU.
            listening = listening or await _accepts(self.port)
            if listening:
                with contextlib.suppress(httpx.HTTPError):
                    response = await self._http.get(url, timeout=2.0)
                    if response.status_code == 200:
                        return
            fast = time.monotonic() - started < 1.0
            await asyncio.sleep(READY_POLL_FAST_S if fast else READY_POLL_S)

    def _failure(self, what: str) -> LoadFailed:
        tail = log_tail(self.log_path)
        ooms = oom_lines(tail)
        if ooms:
            self._hooks.on_oom(ooms)
        shown = "\n".join(tail[-5:])
        return LoadFailed(
            f"model {self.model}: {what}; last log lines:\n{shown}",
            model=self.model,
            log=str(self.log_path),
            out_of_memory=bool(ooms),
        )


async def _accepts(port: int | None) -> bool:
    """Does something take connections on this loopback port?"""
    if port is None:
        return False
    with socket.socket() as sock:
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except OSError:
            return False
    return True
