"""The native HTTP API of a real ``moc serve`` (1 GiB host device)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MIB, MocProcess

CAPACITY = int(1024 * MIB * 0.9)


@pytest.fixture
def http(server: MocProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
        for lease in client.get("/v1/leases").json()["leases"]:
            client.delete(f"/v1/leases/{lease['id']}")


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    assert body["src"] == "moc"
    return body


def test_health_and_devices(http: httpx.Client) -> None:
    health = http.get("/health").json()
    assert health["status"] == "ok"
    (device,) = http.get("/v1/devices").json()["devices"]
    assert device["id"] == "host"
    assert device["kind"] == "host"
    assert device["total_bytes"] == 1024 * MIB
    assert device["capacity_bytes"] == CAPACITY
    assert device["free_bytes"] == CAPACITY - device["held_bytes"] - device["observed_bytes"]
    assert http.get("/v1/devices/host").json()["id"] == "host"
    assert error(http.get("/v1/devices/gpu9"))["code"] == "device_not_found"


def test_lease_lifecycle(http: httpx.Client) -> None:
    created = http.post("/v1/leases", json={"mb": 100, "ttl_s": 30, "holder": "trainer"})
    assert created.status_code == 201
    lease = created.json()
    assert created.headers["location"] == f"/v1/leases/{lease['id']}"
    assert (lease["device"], lease["bytes"], lease["holder"]) == ("host", 100 * MIB, "trainer")
    assert lease["fencing_token"] >= 1
    assert 29 < lease["expires_in_s"] <= 30
    assert lease["expires_at"].endswith("Z")

    assert http.get(f"/v1/leases/{lease['id']}").json()["id"] == lease["id"]
    listed = http.get("/v1/leases", params={"holder": "trainer"}).json()["leases"]
    assert [l["id"] for l in listed] == [lease["id"]]
    assert http.get("/v1/devices/host").json()["held_bytes"] == 100 * MIB

    renewed = http.post(f"/v1/leases/{lease['id']}/renew", json={"ttl_s": 120}).json()
    assert renewed["ttl_s"] == 120
    assert renewed["fencing_token"] == lease["fencing_token"]

    released = http.delete(f"/v1/leases/{lease['id']}")
    assert released.status_code == 200
    assert released.json()["released"] is True
    assert http.get("/v1/devices/host").json()["held_bytes"] == 0
    gone = http.post(f"/v1/leases/{lease['id']}/renew")
    assert gone.status_code == 404
    assert error(gone)["code"] == "lease_released"
    assert error(http.get("/v1/leases/nope"))["code"] == "lease_not_found"


def test_fencing_tokens_increase(http: httpx.Client) -> None:
    tokens = []
    for _ in range(3):
        lease = http.post("/v1/leases", json={"bytes": 1}).json()
        tokens.append(lease["fencing_token"])
        http.delete(f"/v1/leases/{lease['id']}")
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 3


def test_does_not_fit_is_409_with_retry_after(http: httpx.Client) -> None:
    held = http.post("/v1/leases", json={"mb": 800, "ttl_s": 20}).json()
    refused = http.post("/v1/leases", json={"mb": 200})
    assert refused.status_code == 409
    body = error(refused)
    assert body["code"] == "insufficient_memory"
    assert body["details"]["requested_bytes"] == 200 * MIB
    assert body["details"]["free_bytes"] <= CAPACITY - 800 * MIB
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    http.delete(f"/v1/leases/{held['id']}")


def test_larger_than_the_device_fails_at_once(http: httpx.Client) -> None:
    refused = http.post("/v1/leases", json={"mb": 2048, "wait_s": 30})
    assert refused.status_code == 422
    body = error(refused)
    assert body["code"] == "exceeds_capacity"
    assert "can never fit" in body["message"]
    assert body["details"]["capacity_bytes"] == CAPACITY
    assert "retry-after" not in refused.headers


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"bytes": 0}, "bytes", "greater than 0"),
        ({"bytes": -5}, "bytes", "(got -5)"),
        ({"bytes": 2**60}, "bytes", "at most 1125899906842624"),
        ({"mb": 0.0}, "mb", "greater than 0"),
        ({"mb": 1, "bytes": 1}, "bytes", "exactly one"),
        ({}, "bytes", "exactly one"),
        ({"bytes": "100"}, "bytes", "valid integer"),
        ({"bytes": 1, "ttl_s": 0}, "ttl_s", "between 1 and 86400"),
        ({"bytes": 1, "ttl_s": 1e9}, "ttl_s", "(got 1000000000.0)"),
        ({"bytes": 1, "wait_s": -1}, "wait_s", "between 0 and 600"),
        ({"bytes": 1, "priority": 101}, "priority", "between 0 and 100"),
        ({"bytes": 1, "pid": 0}, "pid", "between 1 and"),
        ({"bytes": 1, "holder": "x" * 500}, "holder", "at most 200 characters"),
        ({"bytes": 1, "preemptible": "yes"}, "preemptible", "valid boolean"),
        ({"bytes": 1, "sizee": 3}, "sizee", "unknown field"),
        ({"bytes": 1, "device": ""}, "device", "must not be empty"),
    ],
)
def test_bad_lease_requests_name_the_field(
    http: httpx.Client, body: dict[str, Any], field: str, fragment: str
) -> None:
    response = http.post("/v1/leases", json=body)
    assert response.status_code == 400, response.text
    err = error(response)
    assert err["code"] == "invalid_request"
    assert err["param"] == field
    assert err["message"].startswith(f"{field}:")
    assert fragment in err["message"]


def test_unknown_device_is_404(http: httpx.Client) -> None:
    response = http.post("/v1/leases", json={"bytes": 1, "device": "gpu3"})
    assert response.status_code == 404
    assert "unknown device 'gpu3' (known: host)" in error(response)["message"]


@pytest.mark.parametrize("raw", [b"{", b"[1,2]", b'"text"', b"NaN", b'{"bytes": NaN}'])
def test_malformed_json(http: httpx.Client, raw: bytes) -> None:
    response = http.post("/v1/leases", content=raw)
    assert response.status_code == 400
    assert error(response)["code"] == "invalid_request"


def test_oversized_body(http: httpx.Client) -> None:
    response = http.post("/v1/leases", content=b"{" + b" " * 100_000 + b"}")
    assert response.status_code == 400
    assert "byte limit" in error(response)["message"]


def test_unknown_route_and_method(http: httpx.Client) -> None:
    assert error(http.get("/v1/nothing"))["code"] == "not_found"
    response = http.put("/v1/leases")
    assert response.status_code == 405
    assert error(response)["code"] == "invalid_request"


def test_renew_checks_ttl_and_fencing_token(http: httpx.Client) -> None:
    lease = http.post("/v1/leases", json={"bytes": 1}).json()
    bad_ttl = http.post(f"/v1/leases/{lease['id']}/renew", json={"ttl_s": -1})
    assert error(bad_ttl)["param"] == "ttl_s"
    wrong = http.post(
        f"/v1/leases/{lease['id']}/renew", json={"fencing_token": lease["fencing_token"] + 1}
    )
    assert wrong.status_code == 409
    assert error(wrong)["code"] == "fencing_token_mismatch"
    assert (
        http.delete(f"/v1/leases/{lease['id']}", params={"fencing_token": "x"}).status_code == 400
    )


def test_expired_lease_renew_is_404_expired(http: httpx.Client) -> None:
    lease = http.post("/v1/leases", json={"bytes": 1, "ttl_s": 1}).json()
    time.sleep(1.3)
    response = http.post(f"/v1/leases/{lease['id']}/renew")
    assert response.status_code == 404
    assert error(response)["code"] == "lease_expired"


def test_waiting_request_is_granted_when_memory_frees(
    http: httpx.Client, server: MocProcess
) -> None:
    held = http.post("/v1/leases", json={"mb": 800}).json()
    result: dict[str, Any] = {}

    def wait() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as other:
            r = other.post("/v1/leases", json={"mb": 500, "wait_s": 5, "priority": 70})
            result["status"], result["body"] = r.status_code, r.json()

    thread = threading.Thread(target=wait)
    thread.start()
    deadline = time.monotonic() + 5
    while http.get("/v1/leases").json()["waiting"] != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    http.delete(f"/v1/leases/{held['id']}")
    thread.join(5)
    assert result["status"] == 201
    assert result["body"]["bytes"] == 500 * MIB


def test_wait_that_times_out(http: httpx.Client) -> None:
    held = http.post("/v1/leases", json={"mb": 800}).json()
    t0 = time.monotonic()
    response = http.post("/v1/leases", json={"mb": 500, "wait_s": 0.5})
    assert time.monotonic() - t0 >= 0.5
    assert response.status_code == 409
    assert "after waiting" in error(response)["message"]
    http.delete(f"/v1/leases/{held['id']}")


def test_a_client_that_disconnects_stops_waiting(http: httpx.Client, server: MocProcess) -> None:
    held = http.post("/v1/leases", json={"mb": 800}).json()
    body = b'{"mb": 500, "wait_s": 30}'
    sock = socket.create_connection(("127.0.0.1", server.http_port))
    sock.sendall(
        b"POST /v1/leases HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    deadline = time.monotonic() + 5
    while http.get("/v1/leases").json()["waiting"] != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert http.get("/v1/leases").json()["waiting"] == 1
    sock.close()
    while http.get("/v1/leases").json()["waiting"] != 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert http.get("/v1/leases").json()["waiting"] == 0
    http.delete(f"/v1/leases/{held['id']}")
    # Nobody is left holding the memory the gone client asked for.
    assert http.get("/v1/devices/host").json()["held_bytes"] == 0


def test_higher_priority_revokes_preemptible_and_renew_says_so(http: httpx.Client) -> None:
    low = http.post("/v1/leases", json={"mb": 600, "priority": 10, "preemptible": True}).json()
    high = http.post("/v1/leases", json={"mb": 600, "priority": 90})
    assert high.status_code == 201, high.text
    revoked = http.post(f"/v1/leases/{low['id']}/renew")
    assert revoked.status_code == 410
    assert error(revoked)["code"] == "lease_revoked"
    metrics = http.get("/metrics").text
    assert 'moc_lease_revocations_total{device="host"} 1.0' in metrics


def test_holder_using_more_than_leased_is_reported(http: httpx.Client, server: MocProcess) -> None:
    hog = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; b = b'x' * (120 * 1024 * 1024); print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hog.stdout is not None
        assert hog.stdout.readline().strip() == "ready"
        lease = http.post("/v1/leases", json={"mb": 20, "pid": hog.pid}).json()
        deadline = time.monotonic() + 10
        view = lease
        while not view["over_limit"] and time.monotonic() < deadline:
            time.sleep(0.1)
            view = http.get(f"/v1/leases/{lease['id']}").json()
        assert view["over_limit"] is True
        assert view["used_bytes"] > 100 * MIB
        assert 'moc_lease_overuse_total{device="host"} 1.0' in http.get("/metrics").text
        assert "lease holder uses more than it leased" in server.log()
    finally:
        hog.kill()
        hog.wait()
        if hog.stdout is not None:
            hog.stdout.close()


def test_metrics_exports_lease_and_device_series(http: httpx.Client) -> None:
    lease = http.post("/v1/leases", json={"bytes": 1}).json()
    text = http.get("/metrics").text
    for name in (
        "moc_lease_grants_total",
        "moc_lease_denials_total",
        "moc_lease_expiries_total",
        "moc_lease_wait_seconds_bucket",
        "moc_device_capacity_bytes",
        "moc_device_held_bytes",
        "moc_device_observed_bytes",
        "moc_device_free_bytes",
        "moc_leases_active",
        "moc_lease_waiters",
    ):
        assert name in text, name
    assert 'moc_leases_active{device="host"} 1.0' in text
    http.delete(f"/v1/leases/{lease['id']}")
