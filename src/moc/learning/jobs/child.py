"""One run of a learning job's child, from its start to its exit, under its lease.

:func:`supervise` waits for the child while it keeps the lease alive (renewed
at a third of its TTL), passes a yield request on (SIGUSR1; SIGKILL when the
child has not exited within the yield timeout), kills the child if the lease
is revoked, stops it on cancel, and hands each protocol line to the caller.
It decides nothing about the job: :class:`Outcome` says what happened, and the
runner writes what that means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moc.config import LearningConfig
from moc.errors import MocError
from moc.learning.jobs.model import Kind, LearningJob
from moc.learning.jobs.process import WorkerProcess
from moc.learning.worker.protocol import JobFile
from moc.learning.worker.selfcall import SelfTls
from moc.leases.model import Lease
from moc.leases.service import LeaseService
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
READ_AFTER_EXIT_S = 5.0  # how long the last lines may take after the exit


@dataclass
class Outcome:
    code: int = -1  # the exit status
    done: dict[str, Any] | None = None  # the output a "done" line gave
    failed: str | None = None  # the reason a "failed" line gave
    yield_asked: bool = False  # a yield request reached the child
    took_s: float | None = None  # from that request to the child gone and the memory free


@dataclass(frozen=True)
class Watch:
    """What the run reports to, and how its memory is given back."""

    on_line: Callable[[dict[str, Any]], None]  # a progress, started, checkpoint, yielded line
    on_yield_asked: Callable[[], None]  # the child has been asked to yield
    let_go: Callable[[], None]  # release the lease (idempotent)


async def supervise(
    proc: WorkerProcess,
    lease: Lease,
    leases: LeaseService,
    cancel: asyncio.Event,
    watch: Watch,
    ttl_s: float,
    yield_timeout_s: float,
) -> Outcome:
    outcome = Outcome()
    events = leases.watch(lease.id)
    asked_at: float | None = None
    reader = asyncio.ensure_future(_read(proc, outcome, watch.on_line))
    waits: dict[str, asyncio.Future[Any]] = {
        "exit": asyncio.ensure_future(proc.wait()),
        "lease": asyncio.ensure_future(events.get()),
        "cancel": asyncio.ensure_future(cancel.wait()),
    }
    kill_at: float | None = None
    renew_at = time.monotonic() + ttl_s / 3
    try:
        while not waits["exit"].done():
            until = renew_at if kill_at is None else min(kill_at, renew_at)
            done, _ = await asyncio.wait(
                set(waits.values()),
                timeout=max(0.0, until - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if time.monotonic() >= renew_at:  # the lease lives as long as the child
                renew_at = time.monotonic() + ttl_s / 3
                with contextlib.suppress(MocError):  # gone: its "ended" event follows
                    await leases.renew(lease.id, None, None)
            if kill_at is not None and time.monotonic() >= kill_at:
                event(log, logging.WARNING, "learning job did not yield in time: killed",
                      pid=proc.pid, yield_timeout_s=yield_timeout_s)  # fmt: skip
                proc.kill()
                kill_at = None
            if waits["lease"] in done:
                item = waits["lease"].result()
                if item.get("event") == "yield" and asked_at is None:
                    asked_at = time.monotonic()
                    proc.ask_to_yield()  # first: the status write can follow
                    kill_at = asked_at + yield_timeout_s
                    watch.on_yield_asked()
                elif item.get("event") == "ended":  # revoked: the memory is gone
                    proc.kill()
                waits["lease"] = asyncio.ensure_future(events.get())
            if waits["cancel"] in done:
                waits["cancel"] = asyncio.ensure_future(asyncio.Event().wait())  # once
                await proc.stop(STOP_GRACE_S)
        outcome.code = waits["exit"].result()
        if asked_at is not None:
            watch.let_go()  # the memory is free now that the child is gone
            outcome.yield_asked = True
            outcome.took_s = time.monotonic() - asked_at
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, READ_AFTER_EXIT_S)
    finally:
        for fut in waits.values():
            fut.cancel()
        reader.cancel()
        leases.unwatch(lease.id, events)
    return outcome


async def _read(
    proc: WorkerProcess, outcome: Outcome, on_line: Callable[[dict[str, Any]], None]
) -> None:
    async for item in proc.events():
        kind = item["event"]
        if kind in ("progress", "started", "checkpoint", "yielded"):
            on_line(item)
        elif kind == "done":
            outcome.done = item.get("output") or {}
        elif kind == "failed":
            outcome.failed = str(item.get("reason", "the trainer failed"))


def job_file(
    job: LearningJob,
    lease: Lease,
    sources: dict[str, Path],
    job_dir: Path,
    config: LearningConfig,
    moc_url: str,
    model_cache: Path,
    moc_tls: SelfTls | None = None,
) -> JobFile:
    """What the child is told: the job, what it reads, where it writes."""
    params = dict(job.params)
    if job.kind is Kind.SFT and params.get("checkpoint_every") is None:
        params["checkpoint_every"] = config.checkpoint_every
    return JobFile(
        id=job.id,
        kind=job.kind.value,
        params=params,
        output_dir=str(job_dir / "output"),
        checkpoint_dir=str(job_dir / "checkpoints"),
        base=str(sources["base"]) if "base" in sources else None,
        model=str(sources["model"]) if "model" in sources else None,
        dataset=str(sources["dataset"]) if "dataset" in sources else None,
        dataset_format=job.dataset_format,
        moc_url=moc_url,
        moc_tls=None if moc_tls is None else moc_tls.to_dict(),
        extra={"device": lease.device, "bytes": lease.bytes, "model_cache": str(model_cache)},
    )


def environment(gpu: str | None, api_key: str | None = None) -> dict[str, str]:
    """Which device the child may use: the GPU its lease is on, or none (a lease
    on host memory runs on the CPU); nothing fetched from a hub; and, with
    auth on, the key it calls moc's own gateway with (``MOC_API_KEY``)."""
    env = {
        "CUDA_VISIBLE_DEVICES": gpu or "",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if api_key is not None:
        env["MOC_API_KEY"] = api_key
    return env
