"""Authentication end to end: a real ``moc serve`` with ``auth.enabled``, real
llama.cpp runtimes, the official ``openai`` and ``ollama`` clients, gRPC with
metadata, and the route table walked for every role."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import ollama
import openai
import pytest

from moc.auth.routes import GRPC, HTTP, Access
from moc.gateway.grpc import modelops_pb2 as pb
from moc.gateway.grpc import modelops_pb2_grpc as pb_grpc
from tests.conftest import MIB, MocProcess, free_port
from tests.integration.support import Factory, spec

ADMIN = "admin-secret-for-the-auth-tests-0123456789"
JWT_SECRET = "a-shared-hs256-secret-of-at-least-32-chars!"
ROLES = ("viewer", "user", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}


@pytest.fixture(scope="module")
def moc(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Iterator[MocProcess]:
    config = {
        "models": [spec(tiny_models, "a"), spec(tiny_models, "b")],
        "auth": {
            "enabled": True,
            "metrics": "viewer",
            "failed_per_minute": 30,
            "jwt": {"secret": JWT_SECRET, "issuer": "https://idp.test", "audience": "moc"},
        },
        "leases": {"max_wait_s": 0.5},
    }
    proc = MocProcess(tmp_path_factory.mktemp("auth") / "data", config)
    saved = os.environ.get("MOC_ADMIN_KEY")
    os.environ["MOC_ADMIN_KEY"] = ADMIN
    try:
        proc.start()
    finally:
        if saved is None:
            del os.environ["MOC_ADMIN_KEY"]
        else:
            os.environ["MOC_ADMIN_KEY"] = saved
    yield proc
    assert proc.stop() == 0, proc.log()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def make_key(moc: MocProcess, role: str, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"{moc.url}/v1/keys", json={"name": f"{role}-key", "role": role, **fields},
        headers=bearer(ADMIN), timeout=10,
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


@pytest.fixture(scope="module")
def keys(moc: MocProcess) -> dict[str, str]:
    return {role: make_key(moc, role)["key"] for role in ROLES}


# --- the route table, walked ---------------------------------------------------------
PARAMS = {"name": "a", "lease_id": "nope", "job_id": "nope", "key_id": "nope",
          "device_id": "host"}  # fmt: skip
OPEN_BY_SETTING = {("GET", "/metrics")}  # auth.metrics: viewer here


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PARAMS[m.group(1)], path)


def _denied_or_not(moc: MocProcess, key: str, method: str, path: str) -> int:
    body = None if method in ("GET", "DELETE") else {}
    answer = httpx.request(method, moc.url + _url(path), json=body, headers=bearer(key), timeout=60)
    return answer.status_code


WALK = sorted((m, p, a) for (m, p), a in HTTP.items() if a.role is not None)


@pytest.mark.parametrize(("method", "path", "access"), WALK, ids=[f"{m} {p}" for m, p, _ in WALK])
def test_every_route_admits_exactly_the_roles_the_table_names(
    moc: MocProcess, keys: dict[str, str], method: str, path: str, access: Access
) -> None:
    assert access.role is not None
    for role in ROLES:
        status = _denied_or_not(moc, keys[role], method, path)
        if RANK[role] >= RANK[access.role.label]:
            assert status not in (401, 403), (role, method, path, status)
        else:
            assert status == 403, (role, method, path, status)


def test_without_credentials_only_health_and_the_document_answer(moc: MocProcess) -> None:
    assert httpx.get(f"{moc.url}/health").status_code == 200
    assert httpx.get(f"{moc.url}/openapi.json").status_code == 200
    refused = httpx.get(f"{moc.url}/v1/models")
    assert refused.status_code == 401
    error = refused.json()["error"]
    assert (error["code"], error["type"], error["src"]) == (
        "unauthenticated", "invalid_request_error", "moc",
    )  # fmt: skip
    ollama_shape = httpx.get(f"{moc.url}/api/tags").json()
    assert ollama_shape["code"] == "unauthenticated"
    assert isinstance(ollama_shape["error"], str)
    for header in ("Basic abc", "Bearer", "Bearer moc_nope", "x" * 9000):
        assert httpx.get(f"{moc.url}/v1/models", headers={"authorization": header}).status_code in (
            401, 429,
        )  # fmt: skip
    assert httpx.get(f"{moc.url}/metrics").status_code == 401


# --- real clients ---------------------------------------------------------------------
def openai_client(moc: MocProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{moc.url}/v1", api_key=key, max_retries=0)


def test_the_openai_and_ollama_clients_send_the_key(moc: MocProcess, keys: dict[str, str]) -> None:
    with openai_client(moc, keys["user"]) as client:
        reply = client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    assert reply.choices[0].message.content is not None
    with openai_client(moc, "wrong") as client, pytest.raises(openai.AuthenticationError) as no:
        client.models.list()
    assert no.value.code == "unauthenticated"
    with openai_client(moc, keys["viewer"]) as client, pytest.raises(openai.PermissionDeniedError):
        client.completions.create(model="a", prompt="hi", max_tokens=2)
    with ollama.Client(host=moc.url, headers=bearer(keys["user"])) as ollama_client:
        chat = ollama_client.chat(
            model="a", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 4}
        )
    assert chat.message.content is not None
    with ollama.Client(host=moc.url) as anonymous, pytest.raises(ollama.ResponseError) as refused:
        anonymous.list()
    assert refused.value.status_code == 401


def test_a_key_for_some_models_is_refused_the_others(moc: MocProcess) -> None:
    only_b = make_key(moc, "user", models=["b*"])["key"]
    with openai_client(moc, only_b) as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(
                model="a", messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
        assert "'a'" in str(refused.value)
        client.chat.completions.create(
            model="b", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    job = httpx.post(
        f"{moc.url}/v1/jobs", json={"model": "a", "prompt": "x"}, headers=bearer(only_b)
    )
    assert job.status_code == 403


# --- owners ---------------------------------------------------------------------------
def test_a_lease_is_its_keys_and_an_operator_revokes_it_on_the_record(
    moc: MocProcess, keys: dict[str, str]
) -> None:
    alice, bob = make_key(moc, "user")["key"], make_key(moc, "user")["key"]
    lease = httpx.post(
        f"{moc.url}/v1/leases", json={"bytes": MIB, "ttl_s": 30}, headers=bearer(alice)
    ).json()
    lid = lease["id"]
    for method, path, body in (
        ("GET", f"/v1/leases/{lid}", None),
        ("POST", f"/v1/leases/{lid}/renew", {}),
        ("DELETE", f"/v1/leases/{lid}", None),
    ):
        refused = httpx.request(method, moc.url + path, json=body, headers=bearer(bob))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
    mine = httpx.get(f"{moc.url}/v1/leases", headers=bearer(bob)).json()["leases"]
    assert lid not in [x["id"] for x in mine]
    theirs = httpx.get(f"{moc.url}/v1/leases", headers=bearer(keys["operator"])).json()["leases"]
    assert lid in [x["id"] for x in theirs]
    released = httpx.delete(f"{moc.url}/v1/leases/{lid}", headers=bearer(keys["operator"]))
    assert released.status_code == 200
    events = httpx.get(
        f"{moc.url}/v1/audit", params={"action": "lease.revoke"}, headers=bearer(ADMIN)
    ).json()["events"]
    assert any(e["object"] == lid and e["details"]["owner"] != e["key_id"] for e in events)


def test_a_job_is_its_keys(moc: MocProcess) -> None:
    alice, bob = make_key(moc, "user")["key"], make_key(moc, "user")["key"]
    job = httpx.post(
        f"{moc.url}/v1/jobs", json={"model": "a", "prompt": "x", "options": {"max_tokens": 2}},
        headers=bearer(alice),
    ).json()  # fmt: skip
    assert httpx.get(f"{moc.url}/v1/jobs/{job['job_id']}", headers=bearer(bob)).status_code == 403
    assert (
        httpx.delete(f"{moc.url}/v1/jobs/{job['job_id']}", headers=bearer(bob)).status_code == 403
    )
    assert httpx.get(f"{moc.url}/v1/jobs/{job['job_id']}", headers=bearer(alice)).status_code == 200
    listed = httpx.get(f"{moc.url}/v1/jobs", headers=bearer(bob)).json()["data"]
    assert job["job_id"] not in [j["job_id"] for j in listed]


# --- limits ---------------------------------------------------------------------------
def test_requests_per_minute_answer_429_with_openai_headers(moc: MocProcess) -> None:
    key = make_key(moc, "viewer", limits={"requests_per_minute": 3})["key"]
    answers = [httpx.get(f"{moc.url}/v1/models", headers=bearer(key)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    assert answers[2].headers["x-ratelimit-remaining-requests"] == "0"
    assert answers[3].json()["error"]["code"] == "rate_limited"
    assert answers[3].json()["error"]["type"] == "rate_limit_error"
    assert int(answers[3].headers["retry-after"]) >= 1


def test_tokens_per_minute_are_settled_from_the_reported_usage(moc: MocProcess) -> None:
    key = make_key(moc, "user", limits={"tokens_per_minute": 400})["key"]
    ask: dict[str, Any] = {"model": "a", "messages": [{"role": "user", "content": "hi"}]}
    with openai_client(moc, key) as client:
        reply = client.chat.completions.create(**ask, max_tokens=4)
        assert reply.usage is not None
        used = reply.usage.total_tokens
        # the charge before the answer was an estimate; what is left now is what it used
        after = httpx.get(f"{moc.url}/v1/models", headers=bearer(key))
        left = int(after.headers["x-ratelimit-remaining-tokens"])
        assert 400 - used - 1 <= left <= 400 - used + 10, (used, left)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(**ask, max_tokens=1000)
    assert refused.value.code == "rate_limited"


def test_device_byte_seconds_per_day_bound_a_keys_leases(moc: MocProcess) -> None:
    key = make_key(moc, "user", limits={"device_byte_seconds_per_day": 10 * MIB * 10})["key"]
    ok = httpx.post(
        f"{moc.url}/v1/leases", json={"bytes": 5 * MIB, "ttl_s": 10}, headers=bearer(key)
    )
    assert ok.status_code == 201, ok.text
    over = httpx.post(
        f"{moc.url}/v1/leases", json={"bytes": 6 * MIB, "ttl_s": 10}, headers=bearer(key)
    )
    assert over.status_code == 429
    assert over.json()["error"]["details"]["field"] == "device_byte_seconds_per_day"
    me = httpx.get(f"{moc.url}/v1/whoami", headers=bearer(key)).json()
    assert 0 < me["device_byte_seconds_today"] <= 5 * MIB * 10
    renew = httpx.post(
        f"{moc.url}/v1/leases/{ok.json()['id']}/renew", json={"ttl_s": 60}, headers=bearer(key)
    )
    assert renew.status_code == 429  # 5 MiB for a minute more would pass it
    assert (
        httpx.delete(f"{moc.url}/v1/leases/{ok.json()['id']}", headers=bearer(key)).status_code
        == 200
    )


# --- JWT, gRPC, audit, secrets --------------------------------------------------------
def _token(**claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "svc-a", "iss": "https://idp.test", "aud": "moc", "exp": now + 60, **claims}
    return jwt.encode(body, JWT_SECRET, algorithm="HS256")


def test_a_jwt_from_the_identity_provider_names_a_role(moc: MocProcess) -> None:
    me = httpx.get(f"{moc.url}/v1/whoami", headers=bearer(_token(role="operator"))).json()
    assert (me["id"], me["role"]) == ("jwt:svc-a", "operator")
    refused = httpx.get(f"{moc.url}/v1/keys", headers=bearer(_token(role="operator")))
    assert refused.status_code == 403
    unsigned = jwt.encode(
        {"sub": "x", "role": "admin", "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    for bad in (unsigned, _token(role="admin", aud="other"), _token(role="admin", exp=1)):
        assert httpx.get(f"{moc.url}/v1/keys", headers=bearer(bad)).status_code == 401


def test_grpc_reads_the_key_from_metadata(moc: MocProcess, keys: dict[str, str]) -> None:
    with grpc.insecure_channel(moc.grpc_target) as channel:
        stub = pb_grpc.ModelOpsStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.AcquireGpuLease(pb.GpuLeaseRequest(client="t", bytes=MIB, ttl_seconds=30))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        with pytest.raises(grpc.RpcError) as viewer:
            stub.AcquireGpuLease(
                pb.GpuLeaseRequest(client="t", bytes=MIB, ttl_seconds=30),
                metadata=(("authorization", f"Bearer {keys['viewer']}"),),
            )
        assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        mine = (("authorization", f"Bearer {keys['user']}"),)
        reply = stub.AcquireGpuLease(
            pb.GpuLeaseRequest(client="t", bytes=MIB, ttl_seconds=30), metadata=mine
        )
        other = (("authorization", f"Bearer {make_key(moc, 'user')['key']}"),)
        with pytest.raises(grpc.RpcError) as not_theirs:
            stub.ReleaseGpuLease(pb.GpuLeaseRelease(lease_id=reply.lease_id), metadata=other)
        assert not_theirs.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        assert stub.ReleaseGpuLease(pb.GpuLeaseRelease(lease_id=reply.lease_id), metadata=mine).ok
        assert stub.GetHealth(pb.HealthRequest(), metadata=mine).status == "ok"


GRPC_CALLS: dict[str, Any] = {
    "AcquireGpuLease": pb.GpuLeaseRequest(client="walk", bytes=MIB, ttl_seconds=5),
    "RenewGpuLease": pb.GpuLeaseRenew(lease_id="nope"),
    "ReleaseGpuLease": pb.GpuLeaseRelease(lease_id="nope"),
    "GetHealth": pb.HealthRequest(),
}


def test_every_grpc_method_admits_exactly_the_roles_the_table_names(
    moc: MocProcess, keys: dict[str, str]
) -> None:
    assert set(GRPC_CALLS) == set(GRPC)
    with grpc.insecure_channel(moc.grpc_target) as channel:
        stub = pb_grpc.ModelOpsStub(channel)
        for name, request in GRPC_CALLS.items():
            least = GRPC[name].role
            assert least is not None
            for role in ROLES:
                metadata = (("authorization", f"Bearer {keys[role]}"),)
                try:
                    getattr(stub, name)(request, metadata=metadata)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as err:
                    code = err.code()  # type: ignore[attr-defined]
                if RANK[role] >= RANK[least.label]:
                    assert code not in (
                        grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                    ), (name, role, code)  # fmt: skip
                else:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, (name, role, code)


def test_operator_actions_are_audited(moc: MocProcess, keys: dict[str, str]) -> None:
    loaded = httpx.post(f"{moc.url}/v1/models/b/load", headers=bearer(keys["operator"]), timeout=60)
    assert loaded.status_code == 200
    events = httpx.get(f"{moc.url}/v1/audit", headers=bearer(ADMIN)).json()["events"]
    load = next(e for e in events if e["action"] == "model.load" and e["object"] == "b")
    assert (load["result"], load["status"], load["details"]["role"]) == ("ok", 200, "operator")
    created = [e for e in events if e["action"] == "key.create" and e["status"] == 201]
    assert created
    assert all(e["key_id"] == "env-admin" for e in created)
    refused = [e for e in events if e["action"] == "key.create" and e["status"] != 201]
    assert all(e["result"] == str(e["status"]) for e in refused)  # recorded with how it ended
    assert "audit" in moc.log()
    assert '"action":"model.load"' in moc.log()


def test_no_secret_is_ever_written_to_the_log_or_the_metrics(
    moc: MocProcess, keys: dict[str, str]
) -> None:
    metrics = httpx.get(f"{moc.url}/metrics", headers=bearer(keys["viewer"])).text
    assert 'moc_auth_refusals_total{code="forbidden"}' in metrics
    log = moc.log()
    # A key is moc_<id>_<secret>, and the secret may hold "_" itself.
    for body in (ADMIN, *(key.split("_", 2)[2] for key in keys.values())):
        assert body not in log
        assert body not in metrics


# Last of the daemon's tests: it spends this address's allowance of bad credentials.
def test_a_flood_of_bad_keys_is_cut_off_and_good_callers_go_on(
    moc: MocProcess, keys: dict[str, str]
) -> None:
    with httpx.Client(base_url=moc.url) as http:
        statuses = [http.get("/v1/devices", headers=bearer(f"moc_{i:012x}_{'A' * 43}")).status_code
                    for i in range(60)]  # fmt: skip
        assert statuses[0] == 401
        assert statuses[-1] == 429
        t0 = time.perf_counter()
        good = [
            http.get("/v1/devices", headers=bearer(keys["viewer"])).status_code for _ in range(20)
        ]
        assert good == [200] * 20
        assert (time.perf_counter() - t0) / 20 < 0.1


# --- safe defaults --------------------------------------------------------------------
def _serve(tmp_path: Path, *env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MOC_") or "CLAIM" in k}
    environ.update(e.split("=", 1) for e in env)
    return subprocess.run(
        [sys.executable, "-m", "moc", "serve", "--data-dir", str(tmp_path / "d"),
         "--http-port", str(free_port()), "--grpc-port", "0"],
        env=environ, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_moc_refuses_to_listen_beyond_loopback_without_auth(tmp_path: Path) -> None:
    refused = _serve(tmp_path, "MOC_SERVER__HOST=0.0.0.0", "MOC_DEVICES__NVML=off")
    assert refused.returncode == 2
    assert "server.allow_unauthenticated" in refused.stderr + refused.stdout


def test_auth_without_a_way_in_refuses_to_start(tmp_path: Path) -> None:
    refused = _serve(tmp_path, "MOC_AUTH__ENABLED=true", "MOC_DEVICES__NVML=off")
    assert refused.returncode == 2
    assert "MOC_ADMIN_KEY" in refused.stderr + refused.stdout


# --- moc's calls to itself -------------------------------------------------------------
# (Not under no_stray_runtimes: this module's daemon keeps its runtimes of the
# same model files until the module ends.)
def test_an_index_embedded_through_moc_itself_shows_mocs_own_key(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    from tests.integration.test_learning import LEARNING
    from tests.integration.test_tls import index_through_moc

    embedder = spec(tiny_models, "b", args=["--embeddings", "--pooling", "mean"])
    config = {"models": [embedder], "learning": LEARNING, "auth": {"enabled": True}}
    proc = moc_factory(config, env={"MOC_ADMIN_KEY": ADMIN}).start()
    with httpx.Client(base_url=proc.url, headers=bearer(ADMIN), timeout=60) as http:
        index_through_moc(http)
    assert ADMIN not in proc.log()
