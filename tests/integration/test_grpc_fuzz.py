"""Bad input on gRPC against a real ``moc serve``: random bytes as each
method's request, valid messages with absurd values, oversized messages.
Each is answered with a specific status (never UNKNOWN or INTERNAL) or, for
an acquire that does not fit, ``granted=false``; and moc stays up."""

from __future__ import annotations

import math
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moc.gateway.grpc import modelops_pb2 as pb
from moc.gateway.grpc import modelops_pb2_grpc as pb_grpc
from tests.conftest import MocProcess

METHODS = ["AcquireGpuLease", "RenewGpuLease", "ReleaseGpuLease", "GetHealth"]
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
# What each kind of bad input may be answered with: all documented in modelops.proto.
ALLOWED = {
    grpc.StatusCode.INVALID_ARGUMENT,  # malformed or out of range
    grpc.StatusCode.NOT_FOUND,  # no such lease, device
    grpc.StatusCode.FAILED_PRECONDITION,  # revoked, fencing token mismatch
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # message over the size limit
}
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

int64 = st.integers(-(2**63), 2**63 - 1)
uint64 = st.integers(0, 2**64 - 1)
int32 = st.integers(-(2**31), 2**31 - 1)
names = st.text(max_size=40) | st.sampled_from(["", "host", "nope", "x" * 5000, "\x00"])
doubles = st.floats(allow_nan=True, allow_infinity=True)


@pytest.fixture(scope="module")
def channel(server: MocProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.ModelOpsStub:
    return pb_grpc.ModelOpsStub(channel)


def _still_up(stub: pb_grpc.ModelOpsStub) -> None:
    assert stub.GetHealth(pb.HealthRequest(), timeout=10).status == "ok"


def _answered(call: object) -> grpc.StatusCode:
    """Run ``call``; the status it ended with (OK when it returned)."""
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as err:
        code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
        details = err.details()  # type: ignore[attr-defined]
    else:
        return grpc.StatusCode.OK
    assert code not in FORBIDDEN, details
    assert code in ALLOWED, (code, details)
    return code


@SETTINGS
@given(method=st.sampled_from(METHODS), junk=st.binary(max_size=200))
def test_random_bytes_as_a_request_get_a_specific_status(
    channel: grpc.Channel, stub: pb_grpc.ModelOpsStub, method: str, junk: bytes
) -> None:
    raw = channel.unary_unary(f"/modelops.ModelOps/{method}")  # bytes in, bytes out
    _answered(lambda: raw(junk, timeout=10))
    _still_up(stub)


@SETTINGS
@given(
    client=names,
    mb=int64,
    nbytes=int64,
    priority=st.none() | int32,
    ttl=int64,
    device=names,
    pid=int64,
    wait=doubles,
    preemptible=st.booleans(),
)
def test_absurd_acquire_values_are_refused_or_answered(
    stub: pb_grpc.ModelOpsStub,
    client: str,
    mb: int,
    nbytes: int,
    priority: int | None,
    ttl: int,
    device: str,
    pid: int,
    wait: float,
    preemptible: bool,
) -> None:
    request = pb.GpuLeaseRequest(
        client=client,
        model_name="fuzz",
        vram_estimate_mb=mb,
        ttl_seconds=ttl,
        bytes=nbytes,
        device=device,
        pid=pid,
        wait_seconds=wait,
        preemptible=preemptible,
    )
    if priority is not None:
        request.priority = priority
    replies: list[pb.GpuLeaseReply] = []
    code = _answered(lambda: replies.append(stub.AcquireGpuLease(request, timeout=30)))
    if code is grpc.StatusCode.OK and replies[0].granted:
        stub.ReleaseGpuLease(pb.GpuLeaseRelease(lease_id=replies[0].lease_id), timeout=10)
    elif code is grpc.StatusCode.OK:  # does not fit: an answer with moc's code
        assert replies[0].code in ("insufficient_memory", "exceeds_capacity", "queue_full")
    if math.isnan(wait):
        assert code is grpc.StatusCode.INVALID_ARGUMENT
    _still_up(stub)


@SETTINGS
@given(lease_id=names, ttl=int64, token=uint64, release=st.booleans())
def test_absurd_renew_and_release_values_are_refused(
    stub: pb_grpc.ModelOpsStub, lease_id: str, ttl: int, token: int, release: bool
) -> None:
    if release:
        call = lambda: stub.ReleaseGpuLease(  # noqa: E731
            pb.GpuLeaseRelease(lease_id=lease_id, fencing_token=token), timeout=10
        )
    else:
        call = lambda: stub.RenewGpuLease(  # noqa: E731
            pb.GpuLeaseRenew(lease_id=lease_id, ttl_seconds=ttl, fencing_token=token), timeout=10
        )
    assert _answered(call) is not grpc.StatusCode.OK  # no lease has a random id
    _still_up(stub)


def test_a_nan_wait_names_the_field(stub: pb_grpc.ModelOpsStub) -> None:
    request = pb.GpuLeaseRequest(vram_estimate_mb=1, wait_seconds=math.nan)
    with pytest.raises(grpc.RpcError) as caught:
        stub.AcquireGpuLease(request, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "wait_seconds" in caught.value.details()  # type: ignore[attr-defined]


def test_an_oversized_message_is_refused_and_moc_stays_up(
    channel: grpc.Channel, stub: pb_grpc.ModelOpsStub
) -> None:
    # gRPC's default receive limit is 4 MiB; a 5 MiB client name is over it.
    request = pb.GpuLeaseRequest(client="x" * (5 * 1024 * 1024), vram_estimate_mb=1)
    with pytest.raises(grpc.RpcError) as caught:
        stub.AcquireGpuLease(request, timeout=30)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    # Under the limit but far over moc's own: refused naming the field.
    request = pb.GpuLeaseRequest(client="x" * (1024 * 1024), vram_estimate_mb=1)
    with pytest.raises(grpc.RpcError) as caught:
        stub.AcquireGpuLease(request, timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "client" in caught.value.details()  # type: ignore[attr-defined]
    _still_up(stub)
