"""A request's way through moc: breaker, queue, load, backend, one retry.

:meth:`Dispatcher.open` takes a validated request to the point where the
backend has answered with its status, and returns the reply unread; the
caller (a gateway route) streams or reads it. Everything the request holds
(its slot in the scheduler, the model kept from eviction, the backend
connection) is entered on the caller's :class:`contextlib.AsyncExitStack`, so
it is released when the caller is done, however it ends.

The breakers belong to the dispatcher; they are read and changed only on the
event loop, with no ``await`` between deciding and recording.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from moc.backends.runtime import Handle
from moc.clock import Clock
from moc.config import GatewayConfig
from moc.dispatch.breaker import Breaker, BreakerState
from moc.dispatch.request import InferenceRequest
from moc.dispatch.upstream import Reply, Upstream, UpstreamFailed
from moc.errors import BackendUnavailable, CircuitOpen, LoadFailed, UpstreamTimeout
from moc.lifecycle.loader import Loader
from moc.scheduler.task import Scheduler
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

# Answers that say the backend cannot serve, and count against its breaker. A
# backend that answers anything else quickly is up: llama.cpp answers some
# malformed requests with 500, and one client's bad requests must not make the
# model fail fast for everyone.
_UNAVAILABLE = frozenset({502, 503, 504})


@dataclass
class Timing:
    """Where a request's time went, filled in stage by stage."""

    arrived: float = field(default_factory=time.monotonic)
    queued_s: float = 0.0  # waiting in the queue
    load_s: float = 0.0  # waiting for the model to load (0 when it was ready)
    upstream_s: float = 0.0  # from sending to the backend's status line

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``x-moc-queue-ms`` (queue and load) and ``x-moc-overhead-ms`` (moc's own time)."""
        waited = self.queued_s + self.load_s
        overhead = max(0.0, time.monotonic() - self.arrived - waited - self.upstream_s)
        return [
            (b"x-moc-queue-ms", b"%.3f" % (waited * 1000)),
            (b"x-moc-overhead-ms", b"%.3f" % (overhead * 1000)),
        ]


@dataclass
class Opened:
    """A request at its backend: the reply (not read yet), where it went, and
    what it holds (its turn in the scheduler, its model kept from eviction,
    the backend connection). ``close()`` gives all of it back."""

    reply: Reply
    handle: Handle
    breaker: Breaker
    close: Callable[[], None]


class Dispatcher:
    def __init__(
        self,
        models: Loader,
        scheduler: Scheduler,
        upstream: Upstream,
        config: GatewayConfig,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._models = models
        self._scheduler = scheduler
        self._upstream = upstream
        self._config = config
        self._clock = clock
        self._metrics = metrics
        self._breakers: dict[str, Breaker] = {}

    def breaker(self, model: str) -> Breaker:
        found = self._breakers.get(model)
        if found is None:
            found = Breaker(self._config.breaker_failures, self._config.breaker_open_s)
            self._breakers[model] = found
        return found

    def breaker_states(self) -> dict[str, BreakerState]:
        return {name: b.state for name, b in self._breakers.items()}

    async def open(
        self,
        request: InferenceRequest,
        timing: Timing,
        *,
        bounded: bool = True,
        on_admitted: Callable[[], None] | None = None,
    ) -> Opened:
        """Queue the request, load its model, send it; the reply is not read yet.

        Raises the MocError to answer with: ModelNotFound, CircuitOpen,
        QueueFull, QueueTimeout, LoadFailed, BackendUnavailable, ….
        ``bounded=False`` (async jobs, bounded by their own store) skips the
        queue's length limit and deadline; ``on_admitted`` is called when the
        request's turn comes. The caller must ``close()`` what it gets.
        """
        # An adapter (vLLM's, or the registry's) is asked for by its name and
        # runs on its base model.
        name, served = self._models.resolve(request.model)  # ModelNotFound before it queues
        breaker = self.breaker(name)
        now = self._clock.now()
        if not breaker.allow(now):
            raise CircuitOpen(
                f"model {name}'s backend failed {breaker.failures} times in a row; requests "
                f"fail fast for {breaker.retry_after(now):.1f} s more, then one is let through "
                "to test it",
                retry_after_s=max(breaker.retry_after(now), 0.1),
                model=name,
            )
        t0 = time.monotonic()
        try:
            ticket = await self._scheduler.enter(name, request.priority, bounded=bounded)
        except BaseException:
            breaker.abandon()  # a half-open probe that never reached the backend
            raise
        finally:  # a request turned away after waiting reports its wait too
            timing.queued_s = time.monotonic() - t0
        held = False
        try:
            self._metrics.queue_waited(request.priority.label, timing.queued_s)
            if on_admitted is not None:
                on_admitted()
            t0 = time.monotonic()
            try:
                handle = await self._models.hold(name, served)
            except LoadFailed:
                breaker.failure(self._clock.now())
                raise
            if served != name:
                handle = replace(handle, served_name=served)

            held = True
            t1 = time.monotonic()
            timing.load_s = t1 - t0
            reply, handle = await self._send(request, handle, breaker)
            timing.upstream_s = time.monotonic() - t1
        except BaseException:
            breaker.abandon()
            if held:
                self._models.release(name)
            self._scheduler.leave(ticket)
            raise

        def close() -> None:
            reply.close()
            self._models.release(name)
            self._scheduler.leave(ticket)

        return Opened(reply, handle, breaker, close)

    async def _send(
        self, request: InferenceRequest, handle: Handle, breaker: Breaker
    ) -> tuple[Reply, Handle]:
        try:
            reply = await self._upstream.send(
                handle, request.endpoint.value, request.body_for(handle.served_name, handle.lora)
            )
        except UpstreamFailed as exc:
            reply, handle = await self._resend(request, handle, breaker, exc)
        if reply.status in _UNAVAILABLE:
            breaker.failure(self._clock.now())
        else:
            breaker.success()
        return reply, handle

    async def _resend(
        self, request: InferenceRequest, handle: Handle, breaker: Breaker, exc: UpstreamFailed
    ) -> tuple[Reply, Handle]:
        """Send a non-streaming request once more after its backend restarts
        (``gateway.retry_once``), if the backend never answered it; or raise.
        Nothing of an unanswered request reached the client."""
        if exc.answered or exc.timed_out or request.stream or not self._config.retry_once:
            breaker.failure(self._clock.now())
            raise self.failed(handle.name, exc) from exc
        event(log, logging.WARNING, "retrying after a restart", model=handle.name, error=str(exc))
        self._metrics.requests_retried.labels(handle.name).inc()
        restarted = await self._models.after_failure(handle.name)
        handle = replace(restarted, served_name=handle.served_name)  # keep an adapter's name
        try:
            body = request.body_for(handle.served_name, handle.lora)
            return await self._upstream.send(handle, request.endpoint.value, body), handle
        except UpstreamFailed as again:
            breaker.failure(self._clock.now())
            raise self.failed(handle.name, again) from again

    async def close(self) -> None:
        await self._upstream.close()

    def stream_failed(self, opened: Opened, exc: UpstreamFailed) -> BackendUnavailable:
        """The backend broke off a response it had begun: counted against its
        breaker; returns the error to end the response with."""
        opened.breaker.failure(self._clock.now())
        return self.failed(opened.handle.name, exc)

    def failed(self, model: str, exc: UpstreamFailed) -> BackendUnavailable:
        """The error a client sees for a backend that failed its request."""
        if exc.timed_out:
            timeout = self._config.upstream_timeout_s
            return UpstreamTimeout(
                f"model {model}'s backend sent nothing for {timeout:g} s "
                "(gateway.upstream_timeout_s); the request was not sent again",
                model=model,
                timeout_s=timeout,
            )
        mid = " mid-answer" if exc.answered else ""
        return BackendUnavailable(f"model {model}'s backend failed{mid}: {exc}", model=model)
