"""The learning side's paths in moc's OpenAPI document: datasets, goals,
learning jobs and indexes."""

from __future__ import annotations

from typing import Any

from moc.config import Config
from moc.gateway.http.openapi_ops import (
    answer,
    content,
    failures,
    op,
    path_param,
    query_param,
    stream,
)
from moc.gateway.http.openapi_schemas import ref
from moc.learning.datasets.model import Format
from moc.learning.datasets.validate import NAME_PATTERN
from moc.learning.jobs.model import INDEX_NAME_PATTERN
from moc.learning.jobs.model import Kind as LearningKind
from moc.learning.jobs.model import Status as LearningStatus


def dataset_paths(config: Config) -> dict[str, Any]:
    dataset = ref("Dataset")
    limit = config.learning.max_dataset_bytes
    name = {
        "name": "name",
        "in": "query",
        "required": True,
        "description": "the dataset's name (not of the form of an id: ds_ and 24 hex digits)",
        "schema": {"type": "string", "pattern": NAME_PATTERN},
    }
    fmt = query_param("format", {"enum": [f.value for f in Format]})
    fmt["description"] = "what each line holds; default: told by the first line that says"
    replace = query_param("replace", {"type": "boolean", "default": False})
    replace["description"] = "replace a dataset of this name that has other content"
    upload = op(
        "Upload a dataset (a JSONL file, checked line by line; nothing is kept if a line is wrong)",
        answer("stored", dataset, Location=True),
        failures(400, 409, 422, 503),
        params=[name, fmt, replace],
        body={"type": "string", "format": "binary"},
        status=201,
    )
    upload["requestBody"]["description"] = (
        f"the JSONL file, at most {limit} bytes (learning.max_dataset_bytes), "
        "sent as is in any content type"
    )
    upload["requestBody"]["content"] = content(
        {"type": "string", "format": "binary"}, "application/octet-stream"
    )
    upload["responses"]["200"] = answer(
        "the name holds this content already: the dataset, unchanged", dataset, Location=True
    )
    key = [path_param("name")]
    return {
        "/v1/datasets": {
            "post": upload,
            "get": op("Datasets, by name", answer("every dataset", ref("DatasetList")), {}),
        },
        "/v1/datasets/{name}": {
            "get": op(
                "One dataset, by name or id",
                answer("the dataset", dataset),
                failures(404),
                params=key,
            ),
            "delete": op(
                "Remove a dataset (refused while a learning job uses it)",
                answer("removed", ref("DatasetRemoved")),
                failures(404, 409, 503),
                params=key,
            ),
        },
    }


def goal_paths() -> dict[str, Any]:
    goal = ref("Goal")
    name = [path_param("name")]
    return {
        "/v1/goals": {
            "post": op(
                "Create a goal",
                answer("created", goal, Location=True),
                failures(400, 409, 503),
                body=ref("GoalCreate"),
                status=201,
            ),
            "get": op("Every goal, oldest first", answer("goals", ref("GoalList")), {}),
        },
        "/v1/goals/{name}": {
            "get": op("One goal", answer("the goal", goal), failures(404), params=name),
            "patch": op(
                "Change a goal's weight, description or status",
                answer("the goal as changed", goal),
                failures(400, 404, 409, 503),
                params=name,
                body=ref("GoalUpdate"),
                body_required=False,
            ),
            "delete": op(
                "Delete a goal",
                answer("deleted", ref("GoalDeleted")),
                failures(404, 503),
                params=name,
            ),
        },
    }


def index_name_param() -> dict[str, Any]:
    name = path_param("name")
    name["schema"] = {"type": "string", "pattern": INDEX_NAME_PATTERN}
    return name


def learning_paths() -> dict[str, Any]:
    job = ref("LearningJob")
    job_id = [path_param("job_id")]
    limit = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    cancel = op(
        "Cancel a learning job (a finished one is returned unchanged)",
        answer("the job", job),
        failures(404, 503),
        params=job_id,
    )
    return {
        "/v1/learning/jobs": {
            "post": op(
                "Submit a learning job: sft, quantize or index",
                answer("accepted", job, Location=True),
                failures(400, 404, 409, 422, 503),
                body=ref("LearningJobRequest"),
                status=202,
            ),
            "get": op(
                "Learning jobs, newest first",
                answer("jobs", ref("LearningJobList")),
                failures(400),
                params=[
                    query_param("status", {"enum": [s.value for s in LearningStatus]}),
                    query_param("kind", {"enum": [k.value for k in LearningKind]}),
                    query_param("limit", limit),
                ],
            ),
        },
        "/v1/learning/jobs/{job_id}": {
            "get": op("One learning job", answer("the job", job), failures(404), params=job_id),
            "delete": cancel,
        },
        "/v1/learning/jobs/{job_id}/cancel": {"post": cancel},
        "/v1/learning/jobs/{job_id}/events": {
            "get": op(
                "A learning job's progress and changes of status as server-sent events",
                stream("status, progress and checkpoint events, until the job finishes"),
                failures(404),
                params=job_id,
            )
        },
        "/v1/indexes": {"get": op("The indexes, by name", answer("indexes", ref("IndexList")), {})},
        "/v1/indexes/{name}/query": {
            "post": op(
                "The chunks of an index closest to a query",
                answer("the top k chunks, best first", ref("IndexResults")),
                failures(400, 404, 503),
                params=[index_name_param()],
                body=ref("IndexQuery"),
            )
        },
    }
