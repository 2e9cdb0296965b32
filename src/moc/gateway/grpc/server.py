"""The gRPC servicer and server: leases and health over modelops.ModelOps."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from moc import errors as e
from moc.auth.principal import ANONYMOUS, Principal
from moc.auth.routes import GRPC
from moc.gateway.grpc import modelops_pb2 as pb
from moc.gateway.grpc import modelops_pb2_grpc as pb_grpc
from moc.gateway.grpc.errors import grpc_message, grpc_status
from moc.leases import validate
from moc.leases.model import Lease
from moc.services import Services
from moc.telemetry.logs import event
from moc.version import __version__

log = logging.getLogger(__name__)

SERVICE = "modelops.ModelOps"
MIB = 1024 * 1024
R = TypeVar("R")

# Who sent the call being served: set per call (each runs in a task of its own).
CALLER: ContextVar[Principal] = ContextVar("moc_grpc_caller", default=ANONYMOUS)


def _reply(lease: Lease) -> pb.GpuLeaseReply:
    return pb.GpuLeaseReply(
        granted=True,
        lease_id=lease.id,
        vram_reserved_mb=lease.bytes // MIB,
        fencing_token=lease.fencing_token,
        device=lease.device,
        bytes=lease.bytes,
        expires_at=lease.expires_at,
        ttl_seconds=lease.ttl_s,
    )


async def _guard(
    context: grpc.aio.ServicerContext[Any, Any], call: Callable[[], Awaitable[R]]
) -> R:
    """Run ``call``; turn moc's errors into a gRPC status, and anything else
    into INTERNAL with a log reference (never a traceback to the client)."""
    try:
        return await call()
    except e.MocError as err:
        context.set_trailing_metadata((("moc-error-code", err.code),))
        await context.abort(grpc_status(err), grpc_message(err))
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        ref = uuid.uuid4().hex[:12]
        event(log, logging.ERROR, "unhandled error in grpc call", ref=ref, error=repr(exc))
        log.debug("traceback for %s", ref, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {ref})")
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


class ModelOpsServicer(pb_grpc.ModelOpsServicer):
    def __init__(self, services: Services) -> None:
        self._s = services

    def _owned(self, lease_id: str) -> Lease:
        """The live lease, if the caller may renew and release it."""
        lease = self._s.leases.get(lease_id)
        CALLER.get().check_owns("lease", lease.id, lease.owner)
        return lease

    async def AcquireGpuLease(
        self, request: pb.GpuLeaseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GpuLeaseReply:
        async def call() -> pb.GpuLeaseReply:
            lease_request = validate.lease_request(
                limits=self._s.limits,
                nbytes=request.bytes or None,
                mb=request.vram_estimate_mb or None,
                ttl_s=request.ttl_seconds or None,
                device=request.device or None,
                priority=request.priority if request.HasField("priority") else None,
                holder=request.client,
                pid=request.pid or None,
                wait_s=request.wait_seconds,
                preemptible=request.preemptible,
                owner=CALLER.get().id,
            )
            try:
                lease = await self._s.leases.acquire(lease_request)
            except (e.InsufficientMemory, e.QueueFull) as err:
                return pb.GpuLeaseReply(
                    granted=False,
                    reason=err.message,
                    code=err.code,
                    retry_after_ms=math.ceil(err.retry_after_s * 1000),
                    bytes=lease_request.bytes,
                    vram_reserved_mb=0,
                )
            return _reply(lease)

        return await _guard(context, call)

    async def RenewGpuLease(
        self, request: pb.GpuLeaseRenew, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GpuLeaseReply:
        async def call() -> pb.GpuLeaseReply:
            ttl = (
                validate.ttl(request.ttl_seconds or None, self._s.limits)
                if request.ttl_seconds
                else None
            )
            self._owned(request.lease_id)
            lease = await self._s.leases.renew(request.lease_id, ttl, request.fencing_token or None)
            return _reply(lease)

        return await _guard(context, call)

    async def ReleaseGpuLease(
        self, request: pb.GpuLeaseRelease, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GpuLeaseReleaseAck:
        async def call() -> pb.GpuLeaseReleaseAck:
            owner = self._owned(request.lease_id).owner
            lease = self._s.leases.release(request.lease_id, request.fencing_token or None)
            self._s.auth.audit.on_behalf(CALLER.get(), "lease.revoke", lease.id, owner)
            return pb.GpuLeaseReleaseAck(ok=True, lease_id=lease.id)

        return await _guard(context, call)

    async def GetHealth(
        self, request: pb.HealthRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HealthReply:
        s = self._s
        return pb.HealthReply(
            status="draining" if s.draining else "ok",
            version=__version__,
            uptime_seconds=s.clock.now() - s.started_at,
            active_leases=sum(s.leases.counts_by_device().values()),
            devices=[
                pb.DeviceStatus(
                    id=v.id,
                    kind=v.kind,
                    total_bytes=v.total,
                    capacity_bytes=v.capacity,
                    held_bytes=v.held,
                    observed_bytes=v.external,
                    free_bytes=v.free,
                )
                for v in s.ledger.views()
            ],
        )


# Each method's request type. The servicer is registered with these parsed
# here rather than by gRPC, which answers a corrupt message with UNKNOWN.
_REQUESTS: dict[str, Any] = {
    "AcquireGpuLease": pb.GpuLeaseRequest,
    "RenewGpuLease": pb.GpuLeaseRenew,
    "ReleaseGpuLease": pb.GpuLeaseRelease,
    "GetHealth": pb.HealthRequest,
}


async def _admit(
    services: Services, name: str, context: grpc.aio.ServicerContext[Any, Any]
) -> Principal | None:
    """The caller, from the ``authorization`` metadata, if the route table lets
    it call ``name``; the call is aborted otherwise. None with auth off."""
    auth = services.auth
    if not auth.enabled:
        return None
    access = GRPC[name]
    metadata = dict(context.invocation_metadata() or ())
    try:
        principal = await auth.authenticate(metadata.get("authorization"), _address(context))
        if access.role is not None and not principal.role.allows(access.role):
            raise e.Forbidden(
                f"{principal.role.label} key {principal.id} may not call {name}: it needs "
                f"the role {access.role.label}"
            )
        auth.limits.admit(principal, time.monotonic())
    except e.MocError as err:
        services.metrics.auth_refusals.labels(err.code).inc()
        context.set_trailing_metadata((("moc-error-code", err.code),))
        await context.abort(grpc_status(err), grpc_message(err))
    CALLER.set(principal)
    return principal


def _address(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's address without its port (``ipv4:10.0.0.7:51234``,
    ``ipv6:[::1]:51234``): bad credentials are counted per address, and every
    connection has a port of its own."""
    peer = context.peer() or "-"
    host = peer.split(":", 1)[-1]
    return host.rsplit(":", 1)[0].strip("[]") if ":" in host else host


def _parsing(services: Services, name: str, method: Any, request_type: Any) -> Any:
    async def handler(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        principal = await _admit(services, name, context) if services.auth.enabled else None
        try:
            try:
                request = request_type.FromString(raw)
            except DecodeError:
                context.set_trailing_metadata((("moc-error-code", e.InvalidRequest.code),))
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"request: not a valid {request_type.DESCRIPTOR.full_name} message",
                )
            return await method(request, context)
        finally:
            if principal is not None:
                services.auth.limits.done(principal)

    return handler


def _handlers(services: Services, servicer: ModelOpsServicer) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: grpc.unary_unary_rpc_method_handler(
                _parsing(services, name, getattr(servicer, name), request_type),
                response_serializer=lambda reply: reply.SerializeToString(),
            )
            for name, request_type in _REQUESTS.items()
        },
    )


class GrpcServer:
    def __init__(self, services: Services) -> None:
        # gRPC sets SO_REUSEPORT by default: a second moc on the same port would
        # then start, and the kernel would split lease requests between two
        # ledgers. Without it a taken port fails the bind, as for HTTP.
        self._server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self._server.add_generic_rpc_handlers((_handlers(services, ModelOpsServicer(services)),))
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )

    def bind(self, host: str, port: int, credentials: grpc.ServerCredentials | None = None) -> int:
        """Bind and return the port (useful with port 0); with ``credentials``,
        TLS on it. Raises OSError when the address is taken."""
        address = f"{host}:{port}"
        try:
            if credentials is None:
                bound = self._server.add_insecure_port(address)
            else:
                bound = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot bind gRPC to {host}:{port}: {exc}") from exc
        if bound == 0:
            raise OSError(f"cannot bind gRPC to {host}:{port}: address in use or not available")
        return bound

    async def start(self) -> None:
        await self._server.start()
        for name in ("", SERVICE):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
