"""The request bodies the document describes are the ones moc takes: each
component has its model's fields, and at every limit the document and the
running app agree on what is refused (400) and what is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from pydantic import BaseModel

from moc.config import Config
from moc.daemon import build_services
from moc.devices.host import HostProbe
from moc.gateway.http.app import build_app
from moc.gateway.http.openapi import document
from moc.gateway.http.wire import (
    GoalCreateBody,
    GoalUpdateBody,
    LeaseAcquireBody,
    LeaseReleaseBody,
    LeaseRenewBody,
)
from moc.jobs.model import MAX_METADATA, JobSubmission
from moc.leases.validate import MAX_BYTES, MAX_HOLDER, MAX_PID, MIB, MIN_MB
from moc.store.sqlite import Database

LEASES = {"max_ttl_s": 120, "max_wait_s": 0.5}
CONFIG = Config(leases=LEASES)  # type: ignore[arg-type]
MODELS: dict[str, type[BaseModel]] = {
    "LeaseAcquire": LeaseAcquireBody,
    "LeaseRenew": LeaseRenewBody,
    "LeaseRelease": LeaseReleaseBody,
    "JobSubmission": JobSubmission,
    "GoalCreate": GoalCreateBody,
    "GoalUpdate": GoalUpdateBody,
}


def _component(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document(CONFIG)["components"]["schemas"][name]
    return schema


@pytest.mark.parametrize("name", MODELS)
def test_each_request_component_has_its_models_fields(name: str) -> None:
    schema = _component(name)
    assert list(schema["properties"]) == list(MODELS[name].model_fields)
    assert schema["additionalProperties"] is False


ACQUIRE: list[dict[str, Any]] = [
    {},
    {"bytes": 1},
    {"bytes": 0},
    {"bytes": MAX_BYTES},
    {"bytes": MAX_BYTES + 1},
    {"bytes": 2.0},
    {"bytes": 2.5},
    {"bytes": "1"},
    {"bytes": True},
    {"bytes": 1, "mb": 1},
    {"bytes": None, "mb": 1},
    {"bytes": None, "mb": None},
    {"mb": MIN_MB},
    {"mb": MIN_MB / 2},
    {"mb": MAX_BYTES // MIB},
    {"mb": MAX_BYTES // MIB + 1},
    {"bytes": 1, "device": ""},
    {"bytes": 1, "device": None},
    {"bytes": 1, "ttl_s": 1},
    {"bytes": 1, "ttl_s": 0.5},
    {"bytes": 1, "ttl_s": 120},
    {"bytes": 1, "ttl_s": 120.5},
    {"bytes": 1, "priority": 0},
    {"bytes": 1, "priority": -1},
    {"bytes": 1, "priority": 100},
    {"bytes": 1, "priority": 101},
    {"bytes": 1, "holder": "h" * MAX_HOLDER},
    {"bytes": 1, "holder": "h" * (MAX_HOLDER + 1)},
    {"bytes": 1, "pid": 0},
    {"bytes": 1, "pid": MAX_PID},
    {"bytes": 1, "pid": MAX_PID + 1},
    {"bytes": 1, "wait_s": 0.5},
    {"bytes": 1, "wait_s": 0.6},
    {"bytes": 1, "wait_s": -1},
    {"bytes": 1, "preemptible": True},
    {"bytes": 1, "preemptible": None},
    {"bytes": 1, "size": 1},
]
RENEW: list[dict[str, Any]] = [
    {},
    {"ttl_s": None, "fencing_token": None},
    {"ttl_s": 1},
    {"ttl_s": 0.9},
    {"ttl_s": 121},
    {"fencing_token": 0},
    {"fencing_token": -1},
    {"fencing_token": 1.5},
    {"ttl": 1},
]
RELEASE: list[dict[str, Any]] = [
    {},
    {"fencing_token": 3},
    {"fencing_token": -1},
    {"fencing_token": "3"},
    {"x": 1},
]
JOBS: list[dict[str, Any]] = [
    {"model": "m", "prompt": "hi"},
    {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    {"model": "m", "prompt": "hi", "messages": None},
    {"model": "m", "prompt": None, "messages": [{}]},
    {"model": "m", "prompt": "hi", "messages": [{}]},
    {"model": "m"},
    {"model": "m", "prompt": None},
    {"model": "m", "messages": []},
    {"model": "", "prompt": "hi"},
    {"model": "m" * 128, "prompt": "hi"},
    {"model": "m" * 129, "prompt": "hi"},
    {"prompt": "hi"},
    {"model": "m", "prompt": "hi", "priority": "low"},
    {"model": "m", "prompt": "hi", "priority": "urgent"},
    {"model": "m", "prompt": "hi", "options": {"max_tokens": 4}},
    {"model": "m", "prompt": "hi", "options": {"stream": True}},
    {"model": "m", "prompt": "hi", "metadata": None},
    {"model": "m", "prompt": "hi", "metadata": {"k": "v" * (MAX_METADATA + 1)}},
    {"model": "m", "prompt": "hi", "extra": 1},
]
GOAL_CREATE: list[dict[str, Any]] = [
    {"name": "a", "weight": 1},
    {"name": "a", "weight": 1},  # taken: 409, not a bad body
    {"name": "b", "weight": 1000, "description": "d" * 1000, "status": "paused"},
    {"name": "c", "weight": 5e-324, "description": None, "status": None},
    {"name": "D-1.x_y", "weight": 2.5},
    {"name": "n" * 64, "weight": 1},
    {"name": "n" * 65, "weight": 1},
    {"name": "", "weight": 1},
    {"name": "-a", "weight": 1},
    {"name": "a/b", "weight": 1},
    {"name": "a\n", "weight": 1},
    {"name": "a", "weight": 0},
    {"name": "a", "weight": -1},
    {"name": "a", "weight": 1000.001},
    {"name": "a", "weight": "1"},
    {"name": "a", "weight": True},
    {"name": "a", "weight": None},
    {"name": "a"},
    {"weight": 1},
    {"name": "a", "weight": 1, "description": "d" * 1001},
    {"name": "a", "weight": 1, "status": "running"},
    {"name": "a", "weight": 1, "owner": "me"},
]
GOAL_UPDATE: list[dict[str, Any]] = [
    {},
    {"weight": None, "description": None, "status": None},
    {"weight": 1000},
    {"weight": 0},
    {"weight": 1001},
    {"description": "d" * 1001},
    {"status": "done"},
    {"status": "finished"},
    {"name": "renamed"},
]
# Where the document and the body's check differ, and why.
REFUSED_UNSTATED = [  # a limit JSON Schema cannot state; the metadata's description says it
    {"model": "m", "prompt": "hi", "metadata": {"k": "v" * (MAX_METADATA + 1)}},
]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = Config(  # type: ignore[arg-type]
        data_dir=tmp_path, leases=LEASES, runtimes={"demo_models": False}
    )
    db = Database(tmp_path / "moc.db")
    services = build_services(config, db, [HostProbe([("host", 1 << 30)])])
    transport = httpx.ASGITransport(app=build_app(services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://moc") as client:
            yield client
    finally:
        await services.lifecycle.close()
        db.close()


async def _agree(
    client: httpx.AsyncClient, method: str, path: str, name: str, bodies: list[dict[str, Any]]
) -> None:
    validator = jsonschema_rs.Draft202012Validator(_component(name))
    for body in bodies:
        response = await client.request(method, path, json=body)
        documented = validator.is_valid(body)
        if body in REFUSED_UNSTATED:
            documented = False
        assert (response.status_code != 400) == documented, (body, response.text)


async def test_the_lease_bodies_refuse_what_moc_refuses(app: httpx.AsyncClient) -> None:
    await _agree(app, "POST", "/v1/leases", "LeaseAcquire", ACQUIRE)
    await _agree(app, "POST", "/v1/leases/nope/renew", "LeaseRenew", RENEW)
    await _agree(app, "DELETE", "/v1/leases/nope", "LeaseRelease", RELEASE)


async def test_the_job_submission_refuses_what_moc_refuses(app: httpx.AsyncClient) -> None:
    await _agree(app, "POST", "/v1/jobs", "JobSubmission", JOBS)


async def test_the_goal_bodies_refuse_what_moc_refuses(app: httpx.AsyncClient) -> None:
    await _agree(app, "POST", "/v1/goals", "GoalCreate", GOAL_CREATE)
    await _agree(app, "PATCH", "/v1/goals/nope", "GoalUpdate", GOAL_UPDATE)
