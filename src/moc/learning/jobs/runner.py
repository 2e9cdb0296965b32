"""Running learning jobs: their turn, their memory, their child process, yielding.

Ownership: :class:`LearningRunner` owns the live jobs (``_live``: job id → the
task that drives it) and, after a job is accepted, is the only writer of its
row; every change of status is written before it is acted on. It runs on the
event loop.

A job's turn comes from the goals (:class:`~moc.learning.goals.policy.GoalTurns`),
at most ``learning.max_parallel_jobs`` at once. Its memory is a *yieldable
lease* (holder ``learning:<id>``) of its priority, sized from the estimate or
what the same (base, kind, settings) was measured using before, so it shows
in ``/v1/leases``, ``/v1/devices`` and ``moc ps`` and the device monitor
measures its process. A job that does not fit waits (``queued``) as a lease
waiter; one that can never fit fails with ``exceeds_capacity``.

Yielding: when a model load or a higher-priority lease needs the memory, the
lease service asks the lease to yield; the driver sends the child SIGUSR1, the
child checkpoints at its next step and exits, the lease is released, and the
job waits for memory again (``yielded``), resuming from its checkpoint. A
child that has not exited within ``learning.yield_timeout_s`` is killed and
resumes from its last checkpoint. The lease's own yield deadline is a few
seconds later, so the driver always acts first and the memory is handed on
only once the child is gone.

One run of the child (renewing, yielding, cancel) is :mod:`moc.learning.jobs.child`;
what stays here, about 550 lines, is the one owner of the jobs' state and
every change of status, which is why it is not split further.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moc.artifacts.registry import Registry
from moc.artifacts.store import Artifact
from moc.clock import Clock
from moc.config import Config
from moc.errors import (
    ExceedsCapacity,
    InsufficientMemory,
    LearningJobNotFound,
    MocError,
    ShuttingDown,
)
from moc.fanout import Fanout
from moc.learning.goals.policy import Candidate, GoalTurns, GoalWeight
from moc.learning.jobs import child, outputs, sizing
from moc.learning.jobs.model import (
    FINISHED,
    Kind,
    LearningJob,
    LearningJobRequest,
    Progress,
    Status,
    new_job_id,
)
from moc.learning.jobs.process import WorkerProcess
from moc.learning.jobs.store import LearningJobStore
from moc.learning.jobs.validate import Accepted, Lookups, accept
from moc.learning.worker.protocol import EXIT_DONE, EXIT_YIELDED, JobFile
from moc.learning.worker.selfcall import SelfTls
from moc.leases.model import Lease, LeaseRequest
from moc.leases.service import LeaseService
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics
from moc.units import format_size

log = logging.getLogger(__name__)

HOLDER_PREFIX = "learning:"
LEASE_MARGIN_S = 5.0  # the lease's yield deadline, past the driver's kill
WAIT_SLICE_S = 3600.0  # one lease wait; waited again while the job is queued
PROGRESS_WRITE_EVERY_S = 1.0

JobEvent = dict[str, Any]


def holder_of(job_id: str) -> str:
    return HOLDER_PREFIX + job_id


class _Live:
    """What the driver of one job shares with the API calls about it."""

    def __init__(self) -> None:
        self.cancel = asyncio.Event()
        self.proc: WorkerProcess | None = None
        self.lease: Lease | None = None
        self.peak = 0  # the most its process was seen using, this run
        self.latest: LearningJob | None = None  # its progress, ahead of the store
        self.began: tuple[float, int] | None = None  # (when, step) its run began: the pace
        self.written_at = 0.0  # when its progress was last written


class LearningRunner:
    def __init__(
        self,
        store: LearningJobStore,
        leases: LeaseService,
        lookups: Lookups,
        goals: Callable[[], dict[str, GoalWeight]],
        clock: Clock,
        metrics: Metrics,
        config: Config,
        publish_index: Callable[[str, Path], Path],
        registry: Registry,
        moc_url: str = "",
    ) -> None:
        self._store = store
        self._leases = leases
        self._lookups = lookups
        self._goals = goals
        self._clock = clock
        self._metrics = metrics
        self._config = config
        self._learning = config.learning
        self._ttl_s = config.leases.default_ttl_s  # a job's lease, renewed while it runs
        self._python = config.learning.interpreter
        self._root = config.data_dir / "learning" / "jobs"
        self._publish_index = publish_index  # a finished index into place, by name
        self._registry = registry  # where finished outputs are registered
        self.moc_url = moc_url  # set once the HTTP socket is bound (its port may be 0)
        self.moc_tls: SelfTls | None = None  # and how to trust it, when moc serves TLS
        self.moc_api_key: str | None = None  # and the key children show it, when auth is on
        self._turns = GoalTurns(config.goals.policy)
        self._live: dict[str, _Live] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sources: dict[str, dict[str, Path]] = {}
        self._watchers: Fanout[str, JobEvent] = Fanout()
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._closing = False
        self.id_prefix = ""  # in a cluster, "<node>.": any node can tell whose a job is

    # --- the API's operations --------------------------------------------------------
    def submit(self, request: LearningJobRequest, owner: str = "") -> LearningJob:
        if self._closing:
            raise ShuttingDown("moc is shutting down; submit the job again after it restarts")
        accepted = accept(request, self._lookups, self._new, self._learning.priority)
        job = dataclasses.replace(self._sized(accepted), owner=owner)
        self._leases.check_could_ever_fit(self._lease_request(job))  # exceeds_capacity now
        self._store.put(job)
        self._sources[job.id] = accepted.sources
        self._metrics.learning_jobs.labels(job.kind.value, "submitted").inc()
        event(log, logging.INFO, "learning job accepted", job=job.id, kind=job.kind.value,
              bytes=format_size(job.bytes or 0), goal=job.goal)  # fmt: skip
        self._wake.set()
        return job

    def _new(self, **fields: Any) -> LearningJob:
        now = self._clock.now()
        return LearningJob(
            id=self.id_prefix + new_job_id(),
            created_at=now,
            updated_at=now,
            seq=self._store.next_seq(),
            **fields,
        )

    def _sized(self, accepted: Accepted) -> LearningJob:
        job = accepted.job
        measured = self._store.measured(sizing.key(job))
        if measured is not None:
            return dataclasses.replace(job, bytes=measured, bytes_source="measured")
        nbytes = sizing.estimate_bytes(job, accepted.sources)
        return dataclasses.replace(job, bytes=nbytes, bytes_source="estimate")

    def get(self, job_id: str) -> LearningJob:
        live = self._live.get(job_id)
        job = (live.latest if live is not None else None) or self._store.get(job_id)
        if job is None:
            raise LearningJobNotFound(f"no learning job {job_id!r}", job_id=job_id)
        return job

    def find(self, status: Status | None, kind: Kind | None, limit: int) -> list[LearningJob]:
        return self._store.find(status, kind, limit)

    def cancel(self, job_id: str) -> LearningJob:
        """Cancel a job that has not finished; a finished one is returned as it is."""
        job = self.get(job_id)
        if job.status in FINISHED:
            return job
        live = self._live.get(job_id)
        if live is not None:
            live.cancel.set()  # its driver stops the child and releases the memory
            return job
        return self._set(job, Status.CANCELLED, finished_at=self._clock.now())

    def watch(self, job_id: str) -> asyncio.Queue[JobEvent]:
        """A queue of the job's events (progress, status); :meth:`unwatch` ends it."""
        job = self.get(job_id)
        queue = self._watchers.subscribe(job_id)
        queue.put_nowait({"event": "status", "job": job})
        if job.status in FINISHED:
            self._watchers.unsubscribe(job_id, queue)
            queue.put_nowait({"event": "end"})
        return queue

    def unwatch(self, job_id: str, queue: asyncio.Queue[JobEvent]) -> None:
        self._watchers.unsubscribe(job_id, queue)

    def goals_changed(self) -> None:
        """A goal was paused, resumed or reweighted: yield the paused goals'
        running jobs, and look at the queue again."""
        for job_id, live in self._live.items():
            job = self._store.get(job_id)
            if job is None or self._goal_active(job):
                continue
            if live.lease is not None and job.status is Status.RUNNING:
                self._leases.request_yield([live.lease.id], f"goal {job.goal} is paused")
        self._wake.set()

    def _goal_active(self, job: LearningJob) -> bool:
        if job.goal is None:
            return True
        weight = self._goals().get(job.goal)
        return weight is not None and weight.active

    # --- start and stop ----------------------------------------------------------
    def restore(self) -> int:
        """After a restart: release the leases the last moc's jobs held (their
        children died with it) and put unfinished jobs back in line; they
        resume from their checkpoints. Returns how many."""
        for lease in self._leases.live():
            if lease.holder.startswith(HOLDER_PREFIX):
                with contextlib.suppress(MocError):
                    self._leases.release(lease.id, None)
        again = 0
        for job in self._store.unfinished():
            if job.status is not Status.PENDING:
                self._set(job, Status.PENDING, held_on=None)
                again += 1
        return again

    def start(self) -> None:
        self._scheduler = asyncio.create_task(self._schedule(), name="learning-scheduler")

    async def close(self) -> None:
        """Stop every child (each checkpoints if it can within the yield
        timeout); their jobs resume after the next start."""
        self._closing = True
        if self._scheduler is not None:
            self._scheduler.cancel()
        for live in self._live.values():
            if live.proc is not None:
                live.proc.ask_to_yield()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._learning.yield_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(asyncio.CancelledError):
            if self._scheduler is not None:
                await self._scheduler

    # --- whose turn --------------------------------------------------------------
    async def _schedule(self) -> None:
        while True:
            self._wake.clear()
            self._start_turns()
            await self._wake.wait()

    def _start_turns(self) -> None:
        goals = self._goals()
        while len(self._live) < self._learning.max_parallel_jobs and not self._closing:
            pending = [j for j in self._store.unfinished() if j.status is Status.PENDING]
            candidates = [
                Candidate(j.id, j.goal, j.priority, j.seq)
                for j in pending
                if j.id not in self._live
            ]
            chosen = self._turns.pick(candidates, goals)
            if chosen is None:
                return
            self._turns.started(chosen)
            self._live[chosen.job_id] = _Live()
            task = asyncio.create_task(self._drive(chosen.job_id), name=f"learn {chosen.job_id}")
            self._tasks[chosen.job_id] = task
            task.add_done_callback(functools.partial(self._ended, chosen.job_id))

    def _ended(self, job_id: str, _: object = None) -> None:
        live = self._live.pop(job_id, None)
        if live is not None and live.latest is not None:  # progress not written yet
            with contextlib.suppress(MocError):
                self._store.put(live.latest)
        self._tasks.pop(job_id, None)
        self._wake.set()

    # --- one job, start to end ---------------------------------------------------
    async def _drive(self, job_id: str) -> None:
        live = self._live[job_id]
        job = self.get(job_id)
        try:
            while True:
                job = self._set(job, Status.QUEUED)
                lease = await self._memory(job, live)
                if lease is None:
                    return  # cancelled while waiting, or failed
                job = self.get(job_id)
                try:
                    outcome = await self._run_child(job, live, lease)
                finally:
                    self._let_go(live)
                job = self.get(job_id)
                if outcome != "yielded" or self._closing:
                    return
                if not self._goal_active(job):
                    self._set(job, Status.PENDING)  # waits for its goal to be active again
                    return
        except asyncio.CancelledError:
            if live.proc is not None:
                await live.proc.stop(child.STOP_GRACE_S)
            self._let_go(live)
            raise
        except MocError as exc:
            self._fail(self.get(job_id), exc.message)
        except Exception as exc:  # a bug: the job fails, the daemon goes on
            log.exception("learning job %s failed unexpectedly", job_id)
            self._fail(self.get(job_id), f"internal error: {exc!r}")

    async def _memory(self, job: LearningJob, live: _Live) -> Lease | None:
        """Wait for the job's lease; None if it was cancelled or can never fit."""
        request = self._lease_request(job)
        while True:
            acquire = asyncio.ensure_future(self._leases.acquire(request))
            cancel = asyncio.ensure_future(live.cancel.wait())
            try:
                await asyncio.wait({acquire, cancel}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                cancel.cancel()
            if live.cancel.is_set():
                acquire.cancel()
                with contextlib.suppress(BaseException):
                    lease = await acquire
                    self._leases.release(lease.id, None)
                self._set(job, Status.CANCELLED, finished_at=self._clock.now())
                return None
            try:
                lease = acquire.result()
            except ExceedsCapacity as exc:
                self._fail(job, exc.message)
                return None
            except InsufficientMemory:
                continue  # waited a whole slice: wait again
            except ShuttingDown:
                return None  # queued as it is: it runs after the next start
            live.lease = lease
            return lease

    def _lease_request(self, job: LearningJob) -> LeaseRequest:
        assert job.bytes is not None
        return LeaseRequest(
            bytes=job.bytes,
            ttl_s=self._ttl_s,
            device=job.device,
            priority=job.priority,
            holder=holder_of(job.id),
            wait_s=WAIT_SLICE_S,
            yield_s=self._learning.yield_timeout_s + LEASE_MARGIN_S,
            owner=job.owner,
        )

    def _let_go(self, live: _Live) -> None:
        if live.lease is not None:
            with contextlib.suppress(MocError):
                self._leases.release(live.lease.id, None)
            live.lease = None
        live.proc = None

    async def _run_child(self, job: LearningJob, live: _Live, lease: Lease) -> str:
        """Run the child once: "done", "yielded", "failed" or "cancelled"."""
        job_dir = self._root / job.id
        job_dir.mkdir(parents=True, exist_ok=True)
        self._job_file(job, lease).write(job_dir)
        try:
            env = child.environment(self._lookups.gpu_of(lease.device), self.moc_api_key)
            proc = await WorkerProcess.start(self._python, job_dir, env)
        except OSError as exc:
            self._fail(job, exc.strerror or str(exc))
            return "failed"
        live.proc = proc
        self._leases.attach_pid(lease.id, proc.pid)
        job = self._set(job, Status.RUNNING, started_at=job.started_at or self._clock.now(),
                        held_on=lease.device, error=None)  # fmt: skip

        job_id = job.id

        def yield_asked() -> None:
            self._set(self.get(job_id), Status.YIELDING)

        watch = child.Watch(
            on_line=lambda item: self._progressed(job_id, item),
            on_yield_asked=yield_asked,
            let_go=lambda: self._let_go(live),
        )
        outcome = await child.supervise(
            proc, lease, self._leases, live.cancel, watch, self._ttl_s,
            self._learning.yield_timeout_s,
        )  # fmt: skip
        job = self._remember_size(self.get(job_id), live)
        if live.cancel.is_set():
            self._set(job, Status.CANCELLED, finished_at=self._clock.now(), held_on=None)
            self._metrics.learning_jobs.labels(job.kind.value, "cancelled").inc()
            return "cancelled"
        if outcome.code == EXIT_DONE and outcome.done is not None:
            return "done" if await self._complete(job, outcome.done) else "failed"
        if outcome.yield_asked or outcome.code == EXIT_YIELDED:
            self._released_after_yield(job, outcome.took_s)
            return "yielded"
        reason = outcome.failed or f"the trainer exited with status {outcome.code}"
        tail = proc.log_tail()
        self._fail(job, f"{reason}\n--- last lines of {proc.log_path}:\n{tail}" if tail else reason)
        return "failed"

    def _progressed(self, job_id: str, item: dict[str, Any]) -> None:
        """A progress line: kept in memory at once, written at most once a second."""
        job = self.get(job_id)
        live = self._live[job_id]
        if live.lease is not None:
            live.peak = max(live.peak, self._leases.used_bytes(live.lease.id) or 0)
        step = int(item.get("step", job.progress.step))
        total = item.get("total", job.progress.total)
        loss = item.get("loss", job.progress.loss)
        rate = item.get("tokens_per_s", job.progress.tokens_per_s)
        now = time.monotonic()
        resumes = job.resumes
        if item["event"] == "started":
            live.began = (now, step)
            if item.get("resumed"):  # the child found a checkpoint to go on from
                resumes += 1
                self._metrics.learning_resumes.labels(job.kind.value).inc()
        progress = Progress(step, total, loss, rate, _eta(live.began, step, total, now))
        if item["event"] == "progress":
            self._metrics.learning_steps.labels(job.kind.value).inc()
            if loss is not None:
                self._metrics.learning_loss.labels(job.kind.value).set(float(loss))
        updated = dataclasses.replace(
            job, progress=progress, updated_at=self._clock.now(), resumes=resumes
        )
        live.latest = updated
        if now - live.written_at >= PROGRESS_WRITE_EVERY_S or item["event"] != "progress":
            self._store.put(updated)
            live.written_at = now
        self._publish(job_id, {"event": item["event"], "job": updated})

    # --- the end of a run ----------------------------------------------------------
    def _released_after_yield(self, job: LearningJob, took_s: float | None) -> None:
        """``took_s``: from the yield request to the memory being free (None: the
        child stopped on its own, without being asked)."""
        if took_s is not None:
            self._metrics.learning_yield_seconds.observe(took_s)
        self._metrics.learning_yields.labels(job.kind.value).inc()
        self._set(job, Status.YIELDED, yields=job.yields + 1, held_on=None)
        took_ms = None if took_s is None else round(took_s * 1000, 1)
        event(log, logging.INFO, "learning job yielded", job=job.id, step=job.progress.step,
              took_ms=took_ms)  # fmt: skip

    async def _complete(self, job: LearningJob, output: dict[str, Any]) -> bool:
        """Its output in place and registered as an artifact; False (and the
        job failed) if the registry refused it."""
        job_dir = self._root / job.id
        if job.kind is Kind.INDEX:
            name = str(job.params["name"])
            path = self._publish_index(name, job_dir / "output")
            output = {**output, "path": str(path), "name": name}
        try:
            artifact = await self._register(job, output)
        except MocError as exc:
            self._fail(job, f"its output could not be registered as an artifact: {exc.message}")
            return False
        output = {**output, "artifact": artifact.ref}
        self._set(job, Status.COMPLETE, output=output, finished_at=self._clock.now(), held_on=None)
        self._metrics.learning_jobs.labels(job.kind.value, "complete").inc()
        event(log, logging.INFO, "learning job complete", job=job.id, kind=job.kind.value,
              artifact=artifact.ref)  # fmt: skip
        return True

    async def _register(self, job: LearningJob, output: dict[str, Any]) -> Artifact:
        sources = self._sources.get(job.id) or self._sources_again(job)
        digest = self._lookups.dataset(job.dataset).digest if job.dataset else None
        r = await asyncio.to_thread(outputs.registration, job, output, sources, digest)
        return await self._registry.register(r.name, r.kind, r.files, base=r.base,
                                       architecture=r.architecture, producer=r.producer,
                                       metrics=r.metrics)  # fmt: skip

    def _fail(self, job: LearningJob, reason: str) -> None:
        self._set(job, Status.FAILED, error=reason, finished_at=self._clock.now(), held_on=None)
        self._metrics.learning_jobs.labels(job.kind.value, "failed").inc()
        event(
            log, logging.WARNING, "learning job failed", job=job.id, reason=reason.splitlines()[0]
        )

    def _remember_size(self, job: LearningJob, live: _Live) -> LearningJob:
        """The job with its measured peak, which the next run of the same base,
        kind and settings asks for (with headroom) instead of the estimate."""
        if live.peak <= 0:
            return job
        peak = max(live.peak, job.peak_used or 0)
        with contextlib.suppress(MocError):
            self._store.remember(sizing.key(job), sizing.with_headroom(peak), self._clock.now())
        return self._set(job, job.status, peak_used=peak)

    # --- helpers ---------------------------------------------------------------------
    def _set(self, job: LearningJob, status: Status, **changes: Any) -> LearningJob:
        updated = dataclasses.replace(job, status=status, updated_at=self._clock.now(), **changes)
        self._store.put(updated)
        if (live := self._live.get(job.id)) is not None:
            live.latest = updated
        if status is not job.status:
            self._publish(job.id, {"event": "status", "job": updated}, last=status in FINISHED)
        return updated

    def _publish(self, job_id: str, item: JobEvent, last: bool = False) -> None:
        ending: tuple[JobEvent, ...] = ({"event": "end"},) if last else ()
        self._watchers.publish(job_id, item, *ending, last=last)

    def _job_file(self, job: LearningJob, lease: Lease) -> JobFile:
        sources = self._sources.get(job.id) or self._sources_again(job)
        cache = self._root.parent / "models"  # MiniLM unpacked once for every index job
        return child.job_file(job, lease, sources, self._root / job.id, self._learning,
                              self.moc_url, cache, self.moc_tls)  # fmt: skip

    def _sources_again(self, job: LearningJob) -> dict[str, Path]:
        """What a job accepted before a restart reads, looked up again."""
        sources: dict[str, Path] = {}
        if job.base is not None:
            sources["base"] = self._lookups.base(job.base)
        if job.model is not None:
            sources["model"] = self._lookups.gguf(job.model)
        if job.dataset is not None:
            sources["dataset"] = self._lookups.dataset(job.dataset).path
        self._sources[job.id] = sources
        return sources


def _eta(began: tuple[float, int] | None, step: int, total: Any, now: float) -> float | None:
    """Seconds left at the pace of the run that ``began`` (when, at which step)."""
    if began is None or not isinstance(total, int) or step <= began[1]:
        return None
    per_step = (now - began[0]) / (step - began[1])
    return round(max(0, total - step) * per_step, 1)
