"""modelops.ModelOps over gRPC against a real ``moc serve``."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from moc.gateway.grpc import modelops_pb2 as pb
from moc.gateway.grpc import modelops_pb2_grpc as pb_grpc
from tests.conftest import MIB, MocProcess


@pytest.fixture
def channel(server: MocProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.ModelOpsStub:
    return pb_grpc.ModelOpsStub(channel)


def code_of(err: grpc.RpcError) -> str:
    return dict(err.trailing_metadata())["moc-error-code"]  # type: ignore[attr-defined]


def test_acquire_renew_release_in_the_seed_shape(stub: pb_grpc.ModelOpsStub) -> None:
    reply = stub.AcquireGpuLease(
        pb.GpuLeaseRequest(
            client="test_client",
            model_name="llama-7b",
            vram_estimate_mb=100,
            priority=1,
            ttl_seconds=30,
        )
    )
    assert reply.granted
    assert reply.vram_reserved_mb == 100
    assert reply.bytes == 100 * MIB
    assert reply.device == "host"
    assert reply.fencing_token >= 1
    renewed = stub.RenewGpuLease(pb.GpuLeaseRenew(lease_id=reply.lease_id, ttl_seconds=60))
    assert renewed.ttl_seconds == 60
    assert renewed.expires_at > reply.expires_at
    ack = stub.ReleaseGpuLease(pb.GpuLeaseRelease(lease_id=reply.lease_id))
    assert ack.ok
    with pytest.raises(grpc.RpcError) as info:
        stub.RenewGpuLease(pb.GpuLeaseRenew(lease_id=reply.lease_id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert code_of(info.value) == "lease_released"


def test_denial_is_an_answer_with_retry_after(stub: pb_grpc.ModelOpsStub) -> None:
    held = stub.AcquireGpuLease(pb.GpuLeaseRequest(client="a", vram_estimate_mb=800))
    reply = stub.AcquireGpuLease(pb.GpuLeaseRequest(client="b", vram_estimate_mb=500))
    assert not reply.granted
    assert reply.code == "insufficient_memory"
    assert reply.retry_after_ms >= 1000
    assert "at most" in reply.reason
    never = stub.AcquireGpuLease(pb.GpuLeaseRequest(client="b", vram_estimate_mb=4096))
    assert (never.granted, never.code, never.retry_after_ms) == (False, "exceeds_capacity", 0)
    stub.ReleaseGpuLease(pb.GpuLeaseRelease(lease_id=held.lease_id))


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (pb.GpuLeaseRequest(client="x"), "exactly one"),
        (pb.GpuLeaseRequest(vram_estimate_mb=-3), "vram_estimate_mb: must be greater than 0"),
        (pb.GpuLeaseRequest(vram_estimate_mb=1, ttl_seconds=-1), "ttl_seconds: must be between"),
        (pb.GpuLeaseRequest(vram_estimate_mb=1, priority=500), "priority: must be between"),
        (pb.GpuLeaseRequest(vram_estimate_mb=1, wait_seconds=float("nan")), "wait_seconds"),
        (pb.GpuLeaseRequest(vram_estimate_mb=1, device="gpu4"), "unknown device"),
    ],
)
def test_bad_requests_are_invalid_argument(
    stub: pb_grpc.ModelOpsStub, request_: pb.GpuLeaseRequest, fragment: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.AcquireGpuLease(request_)
    assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert fragment in info.value.details()  # type: ignore[attr-defined]


def test_unknown_lease_and_wrong_token(stub: pb_grpc.ModelOpsStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ReleaseGpuLease(pb.GpuLeaseRelease(lease_id="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    lease = stub.AcquireGpuLease(pb.GpuLeaseRequest(vram_estimate_mb=1))
    with pytest.raises(grpc.RpcError) as info:
        stub.RenewGpuLease(
            pb.GpuLeaseRenew(lease_id=lease.lease_id, fencing_token=lease.fencing_token + 5)
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(info.value) == "fencing_token_mismatch"
    stub.ReleaseGpuLease(pb.GpuLeaseRelease(lease_id=lease.lease_id))


def test_get_health(stub: pb_grpc.ModelOpsStub) -> None:
    reply = stub.GetHealth(pb.HealthRequest())
    assert reply.status == "ok"
    assert [d.id for d in reply.devices] == ["host"]
    assert reply.devices[0].capacity_bytes == int(1024 * MIB * 0.9)


def test_standard_health_service(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "modelops.ModelOps"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"modelops.ModelOps", "grpc.health.v1.Health"} <= names
