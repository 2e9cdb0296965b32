"""The asyncio client; the same surface as :class:`moc.Client`, awaited."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from moc import errors
from moc.sdk.wire import (
    LOST,
    LeaseInfo,
    acquire_body,
    base_url,
    check,
    job_body,
    own_pid,
    renew_interval,
    unreachable,
)

log = logging.getLogger(__name__)


class AsyncClient:
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

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/health")
        return result

    async def devices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/v1/devices"))["devices"]
        return result

    async def models(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/v1/models"))["data"]
        return result

    async def model(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/v1/models/{name}")
        return result

    async def load(self, name: str, *, timeout_s: float | None = 600.0) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", f"/v1/models/{name}/load", timeout=timeout_s
        )
        return result

    async def unload(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/v1/models/{name}/unload", timeout=None)
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
    ) -> dict[str, Any]:
        """Queue an async job (``POST /v1/jobs``); returns it with its ``job_id``."""
        result: dict[str, Any] = await self._call(
            "POST",
            "/v1/jobs",
            json=job_body(model, prompt, messages, priority, metadata, options),
        )
        return result

    async def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/v1/jobs/{job_id}")
        return result

    async def cancel_job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("DELETE", f"/v1/jobs/{job_id}")
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/v1/stats")
        return result

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
        data = await self._call("POST", "/v1/leases", json=body, timeout=timeout)
        return LeaseInfo.from_json(data)

    async def renew(
        self, lease_id: str, *, ttl_s: float | None = None, fencing_token: int | None = None
    ) -> LeaseInfo:
        body = {k: v for k, v in (("ttl_s", ttl_s), ("fencing_token", fencing_token)) if v}
        data = await self._call("POST", f"/v1/leases/{lease_id}/renew", json=body)
        return LeaseInfo.from_json(data)

    async def release(self, lease_id: str, *, fencing_token: int | None = None) -> LeaseInfo:
        params = {"fencing_token": fencing_token} if fencing_token is not None else None
        data = await self._call("DELETE", f"/v1/leases/{lease_id}", params=params)
        return LeaseInfo.from_json(data["lease"])

    async def leases(
        self, *, device: str | None = None, holder: str | None = None
    ) -> list[LeaseInfo]:
        params = {k: v for k, v in (("device", device), ("holder", holder)) if v}
        data = await self._call("GET", "/v1/leases", params=params)
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
        """``async with client.lease(mb=…) as lease:`` — acquired on entry,
        renewed by a background task, released on exit."""
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
    """The asyncio twin of :class:`moc.sdk.client.HeldLease`; ``lost`` is an
    ``asyncio.Event`` a task can wait on."""

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
        self._task: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()
        self.lost_reason: errors.MocError | None = None
        self.info: LeaseInfo | None = None

    @property
    def id(self) -> str:
        assert self.info is not None, "the lease is acquired on entering the async with block"
        return self.info.id

    def check(self) -> None:
        if self.lost_reason is not None:
            raise self.lost_reason

    async def _renew_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
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
                return
            except errors.MocError as err:
                log.warning("lease %s: renew failed, will retry: %s", self.info.id, err)

    async def __aenter__(self) -> AsyncHeldLease:
        self.info = await self._client.acquire(**self._request)
        every = renew_interval(self.info.ttl_s, self._every)
        self._task = asyncio.create_task(self._renew_loop(every))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.info is None or self.lost.is_set():
            return
        try:
            await self._client.release(self.info.id, fencing_token=self.info.fencing_token)
        except LOST:
            pass
        except errors.MocError as err:
            log.warning("lease %s: release failed, it will expire by TTL: %s", self.info.id, err)
