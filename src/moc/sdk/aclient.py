"""The asyncio client, ``moc.AsyncClient``.

``client.py`` is generated from this file by ``scripts/unasync.py``: edit
here, then run it. The one part written twice, renewing a held lease in the
background, is :mod:`moc.sdk.background`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from moc import errors, wire
from moc.sdk.background import AsyncTicker
from moc.sdk.wire import (
    LOST,
    LeaseInfo,
    acquire_body,
    base_url,
    check,
    goal_body,
    goal_path,
    job_body,
    own_pid,
    renew_interval,
    unreachable,
)

log = logging.getLogger(__name__)


class AsyncClient:
    """A connection to a moc daemon (``MOC_URL``, default http://127.0.0.1:8008).

    Every method raises the error moc reported, from :mod:`moc.errors`
    (``InsufficientMemory``, ``LeaseExpired``, …), or ``Unavailable`` when moc
    cannot be reached. Answers are :mod:`moc.wire`'s shapes (``wire.Model``,
    ``wire.Job``, …): TypedDicts, so plain dicts at run time, and a field a newer
    moc adds is passed through; leases come as :class:`LeaseInfo`.
    """

    def __init__(self, url: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = base_url(url)
        self._timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from exc
        return check(response)

    async def health(self) -> wire.Health:
        result: wire.Health = await self._call("GET", "/health")
        return result

    async def devices(self) -> list[wire.Device]:
        answer: wire.DeviceList = await self._call("GET", "/v1/devices")
        return answer["devices"]

    async def models(self) -> list[wire.Model]:
        """Every model in the catalog with its state (``GET /v1/models``)."""
        answer: wire.ModelList = await self._call("GET", "/v1/models")
        return answer["data"]

    async def model(self, name: str) -> wire.ModelDetail:
        """One model: spec, state, and its estimated and measured size."""
        result: wire.ModelDetail = await self._call("GET", f"/v1/models/{name}")
        return result

    async def load(self, name: str, *, timeout_s: float | None = 600.0) -> wire.ModelDetail:
        """Load ``name`` and wait until it serves (evicting idle models if needed)."""
        path = f"/v1/models/{name}/load"
        result: wire.ModelDetail = await self._call("POST", path, timeout=timeout_s)
        return result

    async def unload(self, name: str) -> wire.ModelUnloaded:
        """Stop ``name``'s runtime; ``unloaded`` is false when it was not loaded."""
        path = f"/v1/models/{name}/unload"
        result: wire.ModelUnloaded = await self._call("POST", path, timeout=None)
        return result

    async def submit_job(
        self,
        model: str,
        *,
        prompt: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        priority: str = "normal",
        metadata: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> wire.Job:
        """Queue an async job (``POST /v1/jobs``); returns it with its ``job_id``."""
        body = job_body(model, prompt, messages, priority, metadata, options)
        result: wire.Job = await self._call("POST", "/v1/jobs", json=body)
        return result

    async def job(self, job_id: str) -> wire.Job:
        result: wire.Job = await self._call("GET", f"/v1/jobs/{job_id}")
        return result

    async def jobs(self, *, status: str | None = None, limit: int = 100) -> list[wire.Job]:
        """Jobs, newest first (``GET /v1/jobs``)."""
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        answer: wire.JobList = await self._call("GET", "/v1/jobs", params=params)
        return answer["data"]

    async def cancel_job(self, job_id: str) -> wire.Job:
        """Cancel a job; a finished one is returned unchanged."""
        result: wire.Job = await self._call("DELETE", f"/v1/jobs/{job_id}")
        return result

    async def stats(self) -> wire.Stats:
        """Queues by status and priority, loaded models and devices (``GET /v1/stats``)."""
        result: wire.Stats = await self._call("GET", "/v1/stats")
        return result

    async def create_goal(
        self,
        name: str,
        weight: float,
        *,
        description: str | None = None,
        status: str | None = None,
    ) -> wire.Goal:
        """A goal learning jobs may name (``POST /v1/goals``); status: active by default."""
        body = goal_body(name=name, weight=weight, description=description, status=status)
        result: wire.Goal = await self._call("POST", "/v1/goals", json=body)
        return result

    async def goals(self) -> list[wire.Goal]:
        """Every goal, oldest first (``GET /v1/goals``)."""
        answer: wire.GoalList = await self._call("GET", "/v1/goals")
        return answer["goals"]

    async def goal(self, name: str) -> wire.Goal:
        result: wire.Goal = await self._call("GET", goal_path(name))
        return result

    async def update_goal(
        self,
        name: str,
        *,
        weight: float | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> wire.Goal:
        """Change the fields given; pausing a goal makes its running jobs yield."""
        body = goal_body(weight=weight, description=description, status=status)
        result: wire.Goal = await self._call("PATCH", goal_path(name), json=body)
        return result

    async def delete_goal(self, name: str) -> wire.Goal:
        """Delete a goal; returns it as it was."""
        answer: wire.GoalDeleted = await self._call("DELETE", goal_path(name))
        return answer["goal"]

    async def acquire(
        self,
        *,
        bytes: int | None = None,
        mb: float | None = None,
        device: str | None = None,
        ttl_s: float | None = None,
        priority: int | None = None,
        holder: str | None = None,
        pid: int | None = None,
        wait_s: float | None = None,
        preemptible: bool = False,
    ) -> LeaseInfo:
        body = acquire_body(
            bytes=bytes,
            mb=mb,
            device=device,
            ttl_s=ttl_s,
            priority=priority,
            holder=holder,
            pid=pid,
            wait_s=wait_s,
            preemptible=preemptible,
        )
        timeout = self._timeout + (wait_s or 0.0)
        data: wire.Lease = await self._call("POST", "/v1/leases", json=body, timeout=timeout)
        return LeaseInfo.from_json(data)

    async def renew(
        self, lease_id: str, *, ttl_s: float | None = None, fencing_token: int | None = None
    ) -> LeaseInfo:
        body = {k: v for k, v in (("ttl_s", ttl_s), ("fencing_token", fencing_token)) if v}
        data: wire.Lease = await self._call("POST", f"/v1/leases/{lease_id}/renew", json=body)
        return LeaseInfo.from_json(data)

    async def release(self, lease_id: str, *, fencing_token: int | None = None) -> LeaseInfo:
        params = {"fencing_token": fencing_token} if fencing_token is not None else None
        path = f"/v1/leases/{lease_id}"
        data: wire.LeaseReleased = await self._call("DELETE", path, params=params)
        return LeaseInfo.from_json(data["lease"])

    async def leases(
        self, *, device: str | None = None, holder: str | None = None
    ) -> list[LeaseInfo]:
        params = {k: v for k, v in (("device", device), ("holder", holder)) if v}
        data: wire.LeaseList = await self._call("GET", "/v1/leases", params=params)
        return [LeaseInfo.from_json(lease) for lease in data["leases"]]

    def lease(
        self,
        *,
        bytes: int | None = None,
        mb: float | None = None,
        device: str | None = None,
        ttl_s: float | None = None,
        priority: int | None = None,
        holder: str | None = None,
        pid: int | None = None,
        wait_s: float | None = None,
        preemptible: bool = False,
        renew_every_s: float | None = None,
        on_lost: Callable[[errors.MocError], None] | None = None,
    ) -> AsyncHeldLease:
        """A lease held for an ``async with`` block: acquired on entry, renewed in
        the background, released on exit (also when the block raises)."""
        return AsyncHeldLease(
            self,
            {
                "bytes": bytes,
                "mb": mb,
                "device": device,
                "ttl_s": ttl_s,
                "priority": priority,
                "holder": holder,
                "pid": own_pid(self.url, pid),
                "wait_s": wait_s,
                "preemptible": preemptible,
            },
            renew_every_s,
            on_lost,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncHeldLease:
    """A lease kept alive by a background task while an ``async with`` block runs.

    If moc says the lease is gone (expired, revoked by a higher priority),
    renewing stops, ``lost`` (an ``asyncio.Event``) is set, ``lost_reason``
    holds the error and ``on_lost`` is called from the renew task. Code that
    must not run without its memory should call :meth:`check` at safe points.
    """

    def __init__(
        self,
        client: AsyncClient,
        request: dict[str, Any],
        renew_every_s: float | None,
        on_lost: Callable[[errors.MocError], None] | None,
    ) -> None:
        self._client = client
        self._request = request
        self._every = renew_every_s
        self._on_lost = on_lost
        self._ticker: AsyncTicker | None = None
        self.lost = asyncio.Event()
        self.lost_reason: errors.MocError | None = None
        self.info: LeaseInfo | None = None

    @property
    def id(self) -> str:
        assert self.info is not None, "the lease is acquired on entering the async with block"
        return self.info.id

    def check(self) -> None:
        """Raise the reason if the lease was lost."""
        if self.lost_reason is not None:
            raise self.lost_reason

    async def _renew(self) -> bool:
        """One renewal; False once the lease is gone for good."""
        assert self.info is not None
        try:
            self.info = await self._client.renew(
                self.info.id, fencing_token=self.info.fencing_token
            )
        except LOST as err:
            self.lost_reason = err
            self.lost.set()
            if self._on_lost is not None:
                self._on_lost(err)
            return False
        except errors.MocError as err:
            # moc unreachable or busy: try again next tick; the TTL is there
            # for exactly this.
            log.warning("lease %s: renew failed, will retry: %s", self.info.id, err)
        return True

    async def __aenter__(self) -> AsyncHeldLease:
        self.info = await self._client.acquire(**self._request)
        every = renew_interval(self.info.ttl_s, self._every)
        self._ticker = AsyncTicker(self._renew, every, f"moc-lease-{self.info.id[:8]}")
        self._ticker.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ticker is not None:
            await self._ticker.stop()
        if self.info is None or self.lost.is_set():
            return
        try:
            await self._client.release(self.info.id, fencing_token=self.info.fencing_token)
        except LOST:
            pass  # already gone: nothing to give back
        except errors.MocError as err:
            # Never mask the block's own exception; the TTL reclaims the lease.
            log.warning("lease %s: release failed, it will expire by TTL: %s", self.info.id, err)
