"""The asyncio client, ``moc.AsyncClient``.

``client.py`` is generated from this file by ``scripts/unasync.py``: edit
here, then run it. The one part written twice, renewing a held lease in the
background, is :mod:`moc.sdk.background`.

About 700 lines in one file on purpose: it is the API's one surface, a method
per route, which the generated client mirrors line for line.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import httpx

from moc import errors, wire
from moc.sdk.background import AsyncTicker
from moc.sdk.wire import (
    LOST,
    UPLOAD_CHUNK,
    LeaseInfo,
    acquire_body,
    artifact_path,
    audit_params,
    auth_headers,
    base_url,
    check,
    dataset_params,
    goal_body,
    goal_path,
    job_body,
    key_body,
    key_path,
    own_pid,
    pack,
    renew_interval,
    sse_data,
    unreachable,
    version_params,
)

log = logging.getLogger(__name__)


async def _file_chunks(path: str | os.PathLike[str]) -> AsyncIterator[bytes]:
    """A file's bytes, a chunk at a time: an upload never holds the whole file."""
    # Local reads of a megabyte: a thread for each would cost more than it spares.
    with open(path, "rb") as file:  # noqa: ASYNC230
        while chunk := file.read(UPLOAD_CHUNK):
            yield chunk


class AsyncClient:
    """A connection to a moc daemon (``MOC_URL``, default http://127.0.0.1:8008).

    With authentication on, ``api_key`` (default: the ``MOC_API_KEY``
    environment variable; ``""``: none) is sent with every request as
    ``Authorization: Bearer <key>``. It is kept in the HTTP client's headers
    only: never logged, never in an error message or a repr (a key with a
    space, a control or a non-ASCII character raises ValueError here, without
    it). A missing or refused key raises ``Unauthenticated``, a role that may
    not call a route ``Forbidden``, and a key over its limits ``RateLimited``
    (``retry_after_s``).

    Every method raises the error moc reported, from :mod:`moc.errors`
    (``InsufficientMemory``, ``LeaseExpired``, …), or ``Unavailable`` when moc
    cannot be reached. Answers are :mod:`moc.wire`'s shapes (``wire.Model``,
    ``wire.Job``, …): TypedDicts, so plain dicts at run time, and a field a newer
    moc adds is passed through; leases come as :class:`LeaseInfo`.
    """

    def __init__(
        self, url: str | None = None, *, api_key: str | None = None, timeout: float = 30.0
    ) -> None:
        self.url = base_url(url)
        self._timeout = timeout
        headers = auth_headers(api_key)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=headers)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from exc
        return check(response)

    async def health(self) -> wire.Health:
        result: wire.Health = await self._call("GET", "/health")
        return result

    async def cluster(self) -> wire.ClusterView:
        """The nodes of the cluster as this node sees them (``GET /v1/cluster``)."""
        result: wire.ClusterView = await self._call("GET", "/v1/cluster")
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

    # --- learning ------------------------------------------------------------------
    async def submit_learning(
        self,
        kind: str,
        *,
        base: str | None = None,
        model: str | None = None,
        dataset: str | None = None,
        goal: str | None = None,
        priority: int | None = None,
        device: str | None = None,
        node: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> wire.LearningJob:
        """Submit a learning job (``POST /v1/learning/jobs``): ``sft`` (base +
        dataset), ``quantize`` (model + params.type) or ``index`` (dataset +
        params.name). In a cluster ``node`` names the node to run it on."""
        given: dict[str, Any] = {"base": base, "model": model, "dataset": dataset}
        given |= {"goal": goal, "priority": priority, "device": device, "node": node}
        body: dict[str, Any] = {"kind": kind, "params": params or {}}
        body |= {k: v for k, v in given.items() if v is not None}
        result: wire.LearningJob = await self._call("POST", "/v1/learning/jobs", json=body)
        return result

    async def learning_job(self, job_id: str) -> wire.LearningJob:
        result: wire.LearningJob = await self._call("GET", f"/v1/learning/jobs/{job_id}")
        return result

    async def learning_jobs(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[wire.LearningJob]:
        """Learning jobs, newest first."""
        params: dict[str, Any] = {"limit": limit}
        params |= {k: v for k, v in (("status", status), ("kind", kind)) if v is not None}
        answer: wire.LearningJobList = await self._call("GET", "/v1/learning/jobs", params=params)
        return answer["jobs"]

    async def cancel_learning(self, job_id: str) -> wire.LearningJob:
        """Cancel a learning job; a finished one is returned unchanged."""
        result: wire.LearningJob = await self._call("DELETE", f"/v1/learning/jobs/{job_id}")
        return result

    async def learning_events(self, job_id: str) -> AsyncIterator[wire.LearningEvent]:
        """The job's events as they happen (``{"event", "job"}``: status, progress,
        checkpoint), until it has finished."""
        path = f"/v1/learning/jobs/{job_id}/events"
        try:
            async with self._http.stream("GET", path, timeout=None) as response:
                if response.status_code >= 400:
                    await response.aread()
                    check(response)
                async for line in response.aiter_lines():
                    if (item := sse_data(line)) is not None:
                        yield cast(wire.LearningEvent, item)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from exc

    async def query_index(self, name: str, query: str, *, k: int = 5) -> wire.IndexResults:
        """The ``k`` chunks of index ``name`` closest to ``query``."""
        body = {"query": query, "k": k}
        result: wire.IndexResults = await self._call("POST", f"/v1/indexes/{name}/query", json=body)
        return result

    async def stats(self) -> wire.Stats:
        """Queues by status and priority, loaded models and devices (``GET /v1/stats``)."""
        result: wire.Stats = await self._call("GET", "/v1/stats")
        return result

    async def add_dataset(
        self,
        name: str,
        data: str | os.PathLike[str] | bytes,
        *,
        format: str | None = None,
        replace: bool = False,
    ) -> wire.Dataset:
        """Upload a JSONL dataset (``POST /v1/datasets``) from a file's path or
        from bytes; ``format`` (chat, instruction, documents) is told by the
        first line when not given. A file with any wrong line raises
        ``DatasetInvalid``, whose ``details["errors"]`` name each line and field."""
        params = dataset_params(name, format, replace)
        content: bytes | AsyncIterator[bytes] = data if isinstance(data, bytes) else b""
        headers = {}
        if not isinstance(data, bytes):
            # Sent as a stream with its length, so that moc can refuse a file
            # over its limit before any of it is sent.
            headers["content-length"] = str(Path(data).stat().st_size)  # noqa: ASYNC240
            content = _file_chunks(data)
        path = "/v1/datasets"
        result: wire.Dataset = await self._call(
            "POST", path, params=params, content=content, headers=headers
        )
        return result

    async def datasets(self) -> list[wire.Dataset]:
        """Every dataset, by name (``GET /v1/datasets``)."""
        answer: wire.DatasetList = await self._call("GET", "/v1/datasets")
        return answer["datasets"]

    async def dataset(self, name: str) -> wire.Dataset:
        """One dataset, by name or id."""
        result: wire.Dataset = await self._call("GET", f"/v1/datasets/{name}")
        return result

    async def remove_dataset(self, name: str) -> wire.Dataset:
        """Remove a dataset (``DatasetInUse`` while a learning job uses it); returns it."""
        answer: wire.DatasetRemoved = await self._call("DELETE", f"/v1/datasets/{name}")
        return answer["dataset"]

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

    async def add_artifact(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        kind: str,
        base: str | None = None,
    ) -> wire.Artifact:
        """Add a folder's files (or one file) as the next version of artifact
        ``name`` (``POST /v1/artifacts``). A ``model.sig`` in the folder, as the
        model-signing tool writes it, is their signature and must verify against
        moc's trust policy; without one moc signs them with its own key."""
        packed = pack(path)
        try:
            headers = {"content-length": str(packed.stat().st_size)}
            params = version_params(None, name=name, kind=kind, base=base)
            result: wire.Artifact = await self._call(
                "POST", "/v1/artifacts", params=params, content=_file_chunks(packed),
                headers=headers,
            )  # fmt: skip
            return result
        finally:
            packed.unlink(missing_ok=True)

    async def artifacts(self, *, kind: str | None = None) -> list[wire.Artifact]:
        """Every artifact version, by name then version (``GET /v1/artifacts``)."""
        params = version_params(None, kind=kind)
        answer: wire.ArtifactList = await self._call("GET", "/v1/artifacts", params=params)
        return answer["artifacts"]

    async def artifact(self, ref: str, *, version: int | None = None) -> wire.ArtifactDetail:
        """One version with its files: ``name`` (the latest), ``version=``, or
        ``name@sha256:…``."""
        params = version_params(version)
        result: wire.ArtifactDetail = await self._call("GET", artifact_path(ref), params=params)
        return result

    async def remove_artifact(self, ref: str, *, version: int | None = None) -> list[wire.Artifact]:
        """Remove one version (``version=`` or ``name@sha256:…``) or every version."""
        params = version_params(version)
        answer: wire.ArtifactsRemoved = await self._call(
            "DELETE", artifact_path(ref), params=params
        )
        return answer["removed"]

    async def verify_artifact(
        self, ref: str, *, version: int | None = None
    ) -> wire.ArtifactVerified:
        """Check every file and the signature; raises ``ArtifactTampered``,
        ``ArtifactUntrusted`` or ``ArtifactUnsigned`` when it does not verify."""
        params = version_params(version)
        result: wire.ArtifactVerified = await self._call(
            "POST", artifact_path(ref, "/verify"), params=params
        )
        return result

    async def export_artifact(
        self, ref: str, out: str | os.PathLike[str], *, version: int | None = None
    ) -> wire.Artifact:
        """Write the artifact as a bundle (tar) to ``out``; the artifact written."""
        params = version_params(version)
        try:
            async with self._http.stream(
                "GET", artifact_path(ref, "/export"), params=params, timeout=None
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    check(response)
                digest = response.headers["x-moc-artifact"].partition("@")[2]
                with open(out, "wb") as f:  # noqa: ASYNC230
                    async for chunk in response.aiter_bytes():
                        f.write(chunk)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from exc
        name = ref.partition("@")[0]
        found: wire.ArtifactDetail = await self._call("GET", artifact_path(f"{name}@{digest}"))
        return found

    async def import_artifact(self, path: str | os.PathLike[str]) -> wire.Artifact:
        """Import a bundle another moc exported; it is verified against this moc's
        trust policy before anything is stored."""
        headers = {"content-length": str(Path(path).stat().st_size)}  # noqa: ASYNC240
        result: wire.Artifact = await self._call(
            "POST", "/v1/artifacts/import", content=_file_chunks(path), headers=headers
        )
        return result

    async def adapters(self) -> list[wire.Adapter]:
        """The adapter catalog: each adapter's latest version (``GET /v1/adapters``)."""
        answer: wire.AdapterList = await self._call("GET", "/v1/adapters")
        return answer["adapters"]

    async def signing_keys(self) -> list[wire.SigningKey]:
        """moc's signing keys, with their public halves."""
        answer: wire.SigningKeyList = await self._call("GET", "/v1/signing-keys")
        return answer["keys"]

    async def signing_key(self, name: str) -> wire.SigningKey:
        result: wire.SigningKey = await self._call("GET", f"/v1/signing-keys/{name}")
        return result

    async def create_signing_key(self, name: str, *, type: str | None = None) -> wire.SigningKey:
        """Make a signing key in moc's data directory (``ed25519`` unless ``type``
        is ``ecdsa-p256``); its private half never leaves it."""
        body = {"name": name, "type": type}
        result: wire.SigningKey = await self._call("POST", "/v1/signing-keys", json=body)
        return result

    # --- API keys and the audit log (admin); the caller (any role) -----------------
    async def create_key(
        self,
        name: str,
        *,
        role: str,
        models: list[str] | None = None,
        limits: wire.KeyLimits | None = None,
        expires_at: str | datetime | None = None,
    ) -> wire.ApiKeyCreated:
        """A new API key (``POST /v1/keys``): ``role`` is admin, operator, user or
        viewer; ``models`` globs of the models it may use (None: every one);
        ``limits`` any of requests_per_minute, tokens_per_minute,
        concurrent_requests, device_byte_seconds_per_day. Its secret, ``key``,
        is in this answer only."""
        body = key_body(name, role, models, limits, expires_at)
        result: wire.ApiKeyCreated = await self._call("POST", "/v1/keys", json=body)
        return result

    async def keys(self) -> list[wire.ApiKey]:
        """Every API key, oldest first, without secrets (``GET /v1/keys``)."""
        answer: wire.ApiKeyList = await self._call("GET", "/v1/keys")
        return answer["keys"]

    async def key(self, key_id: str) -> wire.ApiKey:
        result: wire.ApiKey = await self._call("GET", key_path(key_id))
        return result

    async def revoke_key(self, key_id: str) -> wire.ApiKeyRevoked:
        """Refuse the key from now on (revoking a revoked key changes nothing)."""
        result: wire.ApiKeyRevoked = await self._call("DELETE", key_path(key_id))
        return result

    async def rotate_key(self, key_id: str, *, grace_s: float = 0.0) -> wire.ApiKeyCreated:
        """A new secret for the key; the old one still works for ``grace_s``
        seconds (``previous_valid_until``)."""
        body = {"grace_s": grace_s}
        result: wire.ApiKeyCreated = await self._call(
            "POST", key_path(key_id, "/rotate"), json=body
        )
        return result

    async def whoami(self) -> wire.Caller:
        """Who this client's key names: its id, role, models and limits."""
        result: wire.Caller = await self._call("GET", "/v1/whoami")
        return result

    async def audit(
        self,
        *,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        key_id: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[wire.AuditEvent]:
        """Admin and operator actions, newest first (``GET /v1/audit``), by time,
        by who did them (``key_id``) or by ``action`` (key.create, model.load, …)."""
        params = audit_params(since, until, key_id, action, limit)
        answer: wire.AuditList = await self._call("GET", "/v1/audit", params=params)
        return answer["events"]

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
        yield_s: float | None = None,
    ) -> LeaseInfo:
        """Take a lease; ``yield_s`` makes it yieldable (see :meth:`lease`)."""
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
            yield_s=yield_s,
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
        yield_s: float | None = None,
        renew_every_s: float | None = None,
        on_lost: Callable[[errors.MocError], None] | None = None,
        on_yield: Callable[[str], None] | None = None,
    ) -> AsyncHeldLease:
        """A lease held for an ``async with`` block: acquired on entry, renewed in
        the background, released on exit (also when the block raises).

        With ``yield_s`` the lease is yieldable: when a model load or a
        higher-priority request needs its memory, moc asks for it back instead
        of waiting for the TTL. The renewals see the request: ``yield_requested``
        is set, ``yield_by`` says by when, and ``on_yield(yield_by)`` is called
        from the renew task. Leave the block (or release) by then, or the lease
        is revoked."""
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
                "yield_s": yield_s,
            },
            renew_every_s,
            on_lost,
            on_yield,
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
    A yieldable lease asked to let go sets ``yield_requested`` (an ``asyncio.Event``)
    and calls ``on_yield`` once.
    """

    def __init__(
        self,
        client: AsyncClient,
        request: dict[str, Any],
        renew_every_s: float | None,
        on_lost: Callable[[errors.MocError], None] | None,
        on_yield: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._on_yield = on_yield
        self.yield_requested = asyncio.Event()
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
            self._yield_asked()
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

    @property
    def yield_by(self) -> str | None:
        """When moc wants the memory back by (UTC, ISO 8601); None: not asked."""
        return None if self.info is None else self.info.yield_by

    def _yield_asked(self) -> None:
        if self.yield_by is None or self.yield_requested.is_set():
            return
        self.yield_requested.set()
        if self._on_yield is not None:
            self._on_yield(self.yield_by)

    async def __aenter__(self) -> AsyncHeldLease:
        self.info = await self._client.acquire(**self._request)
        every = renew_interval(self.info.ttl_s, self._every, self.info.yield_s)
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
