"""How leases, devices and models are shown to clients, the same on every transport.

Each view builds a plain dict whose shape is written once in :mod:`moc.wire`;
the annotation is all it costs (lease views sit on the acquire and list paths).
"""

from __future__ import annotations

import functools
import time
from typing import Any, cast

from moc.devices.probe import DeviceInfo
from moc.jobs import model as jobs
from moc.learning.jobs import model as learning
from moc.leases import model as leases
from moc.ledger import DeviceView
from moc.lifecycle.slot import ModelView
from moc.models.catalog import Sizing
from moc.models.spec import ModelSpec
from moc.wire import Device, Job, Lease, Model, ModelSize
from moc.wire.jobs import PriorityLabel
from moc.wire.learning import LearningJob
from moc.wire.models import SizeSource


def iso(t: float) -> str:
    """UTC, to the millisecond (truncated, as ``datetime.isoformat`` does)."""
    second, ms = divmod(int(t * 1000), 1000)
    return f"{_iso_second(second)}.{ms:03d}Z"


@functools.lru_cache(maxsize=1024)
def _iso_second(second: int) -> str:
    # Every lease view shows two times; formatting a second once is what makes
    # this a third of datetime's cost on the lease path.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def lease_view(lease: leases.Lease, now: float, used: int | None, over_limit: bool) -> Lease:
    return {
        "id": lease.id,
        "device": lease.device,
        "bytes": lease.bytes,
        "holder": lease.holder,
        "pid": lease.pid,
        "priority": lease.priority,
        "preemptible": lease.preemptible,
        "fencing_token": lease.fencing_token,
        "ttl_s": lease.ttl_s,
        "created_at": iso(lease.created_at),
        "expires_at": iso(lease.expires_at),
        "expires_in_s": round(max(0.0, lease.expires_at - now), 3),
        "used_bytes": used,
        "over_limit": over_limit,
        "yield_s": lease.yield_s,
        "yield_by": None if lease.yield_by is None else iso(lease.yield_by),
    }


def device_view(info: DeviceInfo, view: DeviceView) -> Device:
    return {
        "id": info.id,
        "kind": info.kind,
        "name": info.name,
        "uuid": info.uuid,
        "total_bytes": view.total,
        "capacity_bytes": view.capacity,
        "held_bytes": view.held,
        "observed_bytes": view.external,
        # "stale": the last reading failed (read_error says why); observed_bytes
        # and free_bytes are from the last reading that worked.
        "reading": "ok" if view.unread is None else "stale",
        "read_error": view.unread,
        "free_bytes": view.free,
        "leases": view.leases,
        "reservations": view.reservations,
    }


def model_view(model: ModelView, started_at: float) -> Model:
    """One model as ``GET /v1/models`` lists it: OpenAI's fields, then moc's."""
    spec = model.spec
    return {
        "id": spec.name,
        "object": "model",
        "created": int(started_at),
        "owned_by": "moc",
        "backend": spec.backend,
        "state": "remote" if spec.remote else model.state.value,
        "device": model.device,
        "pid": model.pid,
        "estimated_bytes": model.sizing.estimate.total if model.sizing else None,
        "reserved_bytes": model.reserved or None,
        "measured_bytes": model.measured,
        "in_flight": model.in_flight,
        "pinned": spec.pinned,
        "keep_alive_s": spec.keep_alive,
        "unload_in_s": None if model.unload_in_s is None else round(model.unload_in_s, 1),
        "load_s": None if model.load_s is None else round(model.load_s, 4),
        "runtime_start_s": None
        if model.runtime_start_s is None
        else round(model.runtime_start_s, 4),
        "failures": model.failures,
        "last_error": model.last_error,
    }


def sizing_view(sizing: Sizing) -> ModelSize:
    est = sizing.estimate
    return {
        "bytes": sizing.bytes,
        # Sizing.source and Priority.label are typed str; tests/wire keeps the
        # wire's Literal sets equal to the values they take.
        "source": cast(SizeSource, sizing.source),
        "estimate": {
            "weights_bytes": est.weights,
            "kv_cache_bytes": est.kv_cache,
            "compute_bytes": est.compute,
            "runtime_bytes": est.runtime,
            "total_bytes": est.total,
        },
        "measured_bytes": sizing.measured,
        "device_kind": sizing.key.device_kind,
    }


def spec_view(spec: ModelSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude_none=True)


def _maybe_iso(t: float | None) -> str | None:
    return None if t is None else iso(t)


def _output(result: dict[str, Any] | None) -> str | None:
    """The generated text of a chat completion, for clients that want only that."""
    if not result:
        return None
    choices = result.get("choices") or [{}]
    message = choices[0].get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else None


def job_view(job: jobs.Job) -> Job:
    return {
        "job_id": job.id,
        "object": "job",
        "model": job.model,
        "priority": cast(PriorityLabel, job.priority.label),
        "status": job.status.value,
        "metadata": job.metadata,
        "attempts": job.attempts,
        "output": _output(job.result),
        "result": job.result,
        "error": job.error,
        "created_at": iso(job.created_at),
        "queued_at": _maybe_iso(job.queued_at),
        "started_at": _maybe_iso(job.started_at),
        "finished_at": _maybe_iso(job.finished_at),
    }


def learning_job_view(job: learning.LearningJob) -> LearningJob:
    p = job.progress
    return {
        "id": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "base": job.base,
        "model": job.model,
        "dataset": job.dataset,
        "goal": job.goal,
        "priority": job.priority,
        "device": job.device,
        "params": job.params,
        "progress": {
            "step": p.step,
            "total": p.total,
            "loss": p.loss,
            "tokens_per_s": p.tokens_per_s,
            "eta_s": p.eta_s,
        },
        "bytes": job.bytes,
        "bytes_source": job.bytes_source,
        "held_on": job.held_on,
        "peak_used_bytes": job.peak_used,
        "yields": job.yields,
        "resumes": job.resumes,
        "error": job.error,
        "output": job.output,
        "created_at": iso(job.created_at),
        "started_at": _maybe_iso(job.started_at),
        "finished_at": _maybe_iso(job.finished_at),
    }
