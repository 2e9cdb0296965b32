"""Running async jobs: from the store into the scheduler, and their outcome back.

Ownership: :class:`JobRunner` owns the live jobs (``_live``: job id → task)
and, after a job is inserted, is the only writer of its row. It runs on the
event loop; every status change is written before it is acted on.

At most ``window`` jobs are live at once (queued in the scheduler or
running); the rest wait as ``pending`` rows, taken in priority then age
order, so a hundred thousand accepted jobs cost rows, not tasks. Jobs compete
with interactive requests in the scheduler by priority, and are grouped by
model like them; they have no queue deadline (their bound is
``jobs.max_queued``).

A job whose backend is unavailable is tried again, up to ``MAX_ATTEMPTS``
times with a growing pause. On shutdown live jobs are left as they are in the
store (queued or running) and run again after the next start; an attempt cut
short by a restart counts too (:mod:`moc.jobs.recovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from moc.clock import Clock
from moc.config import JobsConfig
from moc.dispatch.request import Endpoint, InferenceRequest
from moc.dispatch.service import Dispatcher, Timing
from moc.dispatch.upstream import UpstreamFailed, error_message
from moc.errors import (
    JobNotFound,
    MocError,
    QueueFull,
    ShuttingDown,
    StoreUnavailable,
    Unavailable,
)
from moc.jobs.model import TERMINAL_STATUSES, Job, JobStatus, JobSubmission, new_job_id
from moc.jobs.recovery import recover
from moc.jobs.store import JobStore
from moc.lifecycle.table import ModelTable
from moc.scheduler.waiting import Priority
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRY_PAUSE_S = 1.0


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        dispatcher: Dispatcher,
        models: ModelTable,
        clock: Clock,
        metrics: Metrics,
        config: JobsConfig,
        window: int,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._models = models
        self._clock = clock
        self._metrics = metrics
        self._config = config
        self._window = window
        self._live: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.id_prefix = ""  # in a cluster, "<node>.": any node can tell whose a job is

    # --- the API's operations ------------------------------------------------------
    def submit(self, submission: JobSubmission, owner: str = "") -> Job:
        self._models.view(submission.model)  # ModelNotFound now, not when it runs
        if self._closing:
            raise ShuttingDown("moc is shutting down; submit the job again after it restarts")
        active = self._store.active_count()
        if active >= self._config.max_queued:
            raise QueueFull(
                f"{active} jobs are waiting or running, the limit (jobs.max_queued) is "
                f"{self._config.max_queued}; retry later",
                retry_after_s=5.0,
                limit=self._config.max_queued,
            )
        job = Job(
            id=self.id_prefix + new_job_id(),
            model=submission.model,
            priority=Priority.parse(submission.priority),
            body=submission.body(),
            metadata=submission.metadata,
            created_at=self._clock.now(),
            owner=owner,
        )
        self._store.insert(job)
        self._wake.set()
        return job

    def get(self, job_id: str) -> Job:
        job = self._store.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
        return job

    def find(
        self, status: JobStatus | None, model: str | None, limit: int, owner: str | None = None
    ) -> list[Job]:
        """Newest first; ``owner``: only that caller's."""
        return self._store.find(status, model, limit, owner)

    def counts(self) -> dict[tuple[str, int], int]:
        """Jobs by (status, priority)."""
        return self._store.counts()

    def cancel(self, job_id: str) -> Job:
        """Cancel a job that has not finished; a finished one is returned as it is."""
        job = self.get(job_id)
        if job.status in TERMINAL_STATUSES:
            return job
        job.status = JobStatus.CANCELLED
        job.finished_at = self._clock.now()
        self._store.save(job)
        self._metrics.jobs.labels(job.status.value).inc()
        task = self._live.pop(job_id, None)
        if task is not None:
            task.cancel()  # withdraws it from the queue, or closes its backend request
        self._wake.set()
        return job

    # --- running -------------------------------------------------------------------
    def start(self) -> tuple[int, int]:
        """Recover jobs an earlier moc left unfinished, then start feeding; (requeued, failed)."""
        # Read, decide and write with no await between: this runner is the only writer
        # of job rows, so the rows cannot change under the decision.
        recovery = recover(self._store.interrupted(), MAX_ATTEMPTS)
        self._store.settle(recovery, self._clock.now())
        self._tasks = [
            asyncio.create_task(self._feed(), name="jobs feeder"),
            asyncio.create_task(self._forget_old(), name="jobs cleanup"),
        ]
        self._wake.set()  # jobs accepted before the restart are pending already
        return len(recovery.requeue), len(recovery.fail)

    async def close(self) -> None:
        """Stop; live jobs stay queued or running in the store and resume next start."""
        self._closing = True
        for task in [*self._tasks, *self._live.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._live.values(), return_exceptions=True)

    async def _feed(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            room = self._window - len(self._live)
            if room <= 0:
                continue
            try:
                jobs = self._store.next_pending(room)
            except StoreUnavailable as exc:
                event(log, logging.ERROR, "jobs not read", error=str(exc))
                await asyncio.sleep(1.0)
                self._wake.set()
                continue
            for job in jobs:
                if job.id in self._live or len(self._live) >= self._window:
                    continue
                task = asyncio.create_task(self._run(job), name=f"job {job.id}")
                self._live[job.id] = task

    async def _run(self, job: Job) -> None:
        try:
            self._mark(job, JobStatus.QUEUED, queued_at=self._clock.now())
            while True:
                outcome = await self._attempt(job)
                if outcome is None:
                    return
                job.attempts += 1
                if job.attempts >= MAX_ATTEMPTS:
                    self._finish(job, JobStatus.FAILED, error=outcome)
                    return
                event(log, logging.INFO, "job retried", job=job.id, error=outcome["message"])
                await asyncio.sleep(RETRY_PAUSE_S * job.attempts)
                self._mark(job, JobStatus.QUEUED, queued_at=self._clock.now())
        except StoreUnavailable as exc:
            event(log, logging.ERROR, "job state not saved", job=job.id, error=str(exc))
        finally:
            if self._live.get(job.id) is asyncio.current_task():
                del self._live[job.id]
            self._wake.set()

    async def _attempt(self, job: Job) -> dict[str, Any] | None:
        """One try; None when the job ended, else the error worth another try."""
        request = InferenceRequest(Endpoint.CHAT, job.model, job.priority, False, job.body, None)
        try:
            opened = await self._dispatcher.open(
                request,
                Timing(),
                bounded=False,
                on_admitted=lambda: self._mark(
                    job, JobStatus.RUNNING, started_at=self._clock.now()
                ),
            )
            try:
                body = await opened.reply.read()
                status = opened.reply.status
            finally:
                opened.close()
        except ShuttingDown:
            return None  # left queued in the store; it runs after the next start
        except (Unavailable, UpstreamFailed) as exc:
            return {"code": getattr(exc, "code", "backend_unavailable"), "message": str(exc)}
        except MocError as exc:
            self._finish(job, JobStatus.FAILED, error={"code": exc.code, "message": exc.message})
            return None
        if status >= 500:
            return {"code": "backend_error", "message": error_message(body), "status": status}
        if status >= 400:
            error = {"code": "backend_error", "message": error_message(body), "status": status}
            self._finish(job, JobStatus.FAILED, error=error)
            return None
        self._finish(job, JobStatus.COMPLETE, result=orjson.loads(body))
        return None

    def _mark(self, job: Job, status: JobStatus, **times: float) -> None:
        job.status = status
        for name, value in times.items():
            setattr(job, name, value)
        self._store.save(job)

    def _finish(self, job: Job, status: JobStatus, **outcome: dict[str, Any]) -> None:
        job.result = outcome.get("result")
        job.error = outcome.get("error")
        self._mark(job, status, finished_at=self._clock.now())
        self._metrics.jobs.labels(status.value).inc()

    async def _forget_old(self) -> None:
        while True:
            await asyncio.sleep(60.0)
            with contextlib.suppress(StoreUnavailable):
                self._store.forget_finished(self._clock.now() - self._config.keep_s)
