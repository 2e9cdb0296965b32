"""Artifact routes: /v1/artifacts…, /v1/adapters, /v1/signing-keys…

Files travel as tar streams both ways: ``POST /v1/artifacts?name=&kind=``
takes a tar of the files (``moc artifact add`` makes it from a folder or a
file), ``POST /v1/artifacts/import`` an exported bundle, and
``GET /v1/artifacts/{name}/export`` answers one. moc never reads a path a
client names: what it stores is what was sent, and checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import typing
from collections.abc import Iterator
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from moc import wire
from moc.artifacts import transfer
from moc.artifacts.adapters import prepare
from moc.artifacts.keys import GENERATED_TYPES
from moc.artifacts.manifest import NAME_PATTERN, Kind, Producer
from moc.artifacts.registry import Registry
from moc.artifacts.store import Artifact
from moc.errors import InvalidRequest, StoreUnavailable
from moc.gateway.http.body import parse
from moc.gateway.http.query import choice, declared_length, whole
from moc.gateway.http.respond import json, services
from moc.gateway.http.wire import SigningKeyCreateBody
from moc.gateway.views import iso

TAR = "application/x-tar"
_NAME = re.compile(NAME_PATTERN)
WRITE_BATCH = 4 << 20  # an upload reaches the disk from a worker thread this much at a time
MAX_VERSION = 1_000_000_000


def artifact_view(a: Artifact) -> wire.Artifact:
    m = a.manifest
    return {
        "name": m.name,
        "version": m.version,
        "kind": m.kind.value,
        "digest": a.digest,
        "base": m.base,
        "architecture": m.architecture,
        "producer": _producer(m.producer),
        "signed_by": a.signed_by,
        "size_bytes": m.size_bytes,
        "metrics": dict(m.metrics),
        "created_at": iso(m.created_at),
    }


def _producer(p: Producer | None) -> wire.Producer | None:
    if p is None:
        return None
    return {
        "job": p.job,
        "job_digest": p.job_digest,
        "dataset": p.dataset,
        "dataset_digest": p.dataset_digest,
        "model": p.model,
    }


def artifact_detail(a: Artifact) -> wire.ArtifactDetail:
    files: list[wire.ArtifactFile] = [
        {"path": f.path, "sha256": f.sha256, "size_bytes": f.size} for f in a.manifest.files
    ]
    return {**artifact_view(a), "files": files}


def _registry(request: Request) -> Registry:
    return services(request).artifacts


def _version(request: Request) -> int | None:
    return whole(request, "version", MAX_VERSION)


@contextlib.contextmanager
def _spooled(registry: Registry) -> Iterator[Path]:
    """A file in the registry's scratch folder for one upload, removed after."""
    with transfer.scratch(registry.scratch_root) as folder:
        yield folder / "upload.tar"


def _too_large(limit: int, value: int | None = None) -> InvalidRequest:
    return InvalidRequest(
        "body",
        f"is larger than the {limit}-byte limit for an upload (artifacts.max_upload_bytes)",
        value=value,
        limit=limit,
    )


async def _receive(request: Request, path: Path) -> None:
    """The body into ``path``, refused past ``artifacts.max_upload_bytes``
    (by its declared length before a byte is read, else as it arrives)."""
    limit = services(request).config.artifacts.max_upload_bytes
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit, declared)
    batch: list[bytes] = []
    pending = total = 0
    try:
        with path.open("wb") as out:
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise _too_large(limit)
                batch.append(chunk)
                pending += len(chunk)
                if pending >= WRITE_BATCH:
                    await asyncio.to_thread(out.write, b"".join(batch))
                    batch, pending = [], 0
            await asyncio.to_thread(out.write, b"".join(batch))
    except OSError as exc:
        raise StoreUnavailable(f"cannot receive the upload into {path.parent}: {exc}") from exc


async def add(request: Request) -> Response:
    q = request.query_params
    if "name" not in q:
        raise InvalidRequest("name", "is required (a query parameter: ?name=…)")
    name = q["name"]
    if not _NAME.fullmatch(name):
        raise InvalidRequest("name", f"must match {NAME_PATTERN}", value=name, limit=NAME_PATTERN)
    kind = choice(request, "kind", Kind, required=True)
    assert kind is not None
    registry = _registry(request)
    base = q.get("base")
    vet = None
    if kind is Kind.ADAPTER and base is not None:
        spec = services(request).models.catalog.spec(base)  # 404 naming the known models
        vet = functools.partial(prepare, base=spec)
    with _spooled(registry) as upload:
        await _receive(request, upload)
        artifact = await transfer.add_tar(registry, upload, name, kind, base=base, vet=vet)
    return json(artifact_view(artifact), 201, {"location": f"/v1/artifacts/{name}"})


async def import_bundle(request: Request) -> Response:
    registry = _registry(request)
    with _spooled(registry) as upload:
        await _receive(request, upload)
        artifact = await transfer.import_tar(registry, upload)
    return json(artifact_view(artifact), 201, {"location": f"/v1/artifacts/{artifact.name}"})


async def list_artifacts(request: Request) -> Response:
    kind = choice(request, "kind", Kind)
    found = [a for a in _registry(request).all() if kind is None or a.manifest.kind is kind]
    answer: wire.ArtifactList = {"artifacts": [artifact_view(a) for a in found]}
    return json(answer)


async def get_artifact(request: Request) -> Response:
    artifact = _registry(request).get(request.path_params["name"], _version(request))
    return json(artifact_detail(artifact))


async def delete_artifact(request: Request) -> Response:
    """One version (``?version=`` or ``name@sha256:…``), or every version of a name."""
    registry = _registry(request)
    ref = request.path_params["name"]
    version = _version(request)
    one = version is not None or "@" in ref
    doomed = [registry.get(ref, version)] if one else registry.versions(ref)
    if not doomed:
        registry.get(ref)  # raises artifact_not_found
    for artifact in doomed:
        await registry.remove(artifact)
    answer: wire.ArtifactsRemoved = {"removed": [artifact_view(a) for a in doomed]}
    return json(answer)


async def verify_artifact(request: Request) -> Response:
    registry = _registry(request)
    artifact = registry.get(request.path_params["name"], _version(request))
    await registry.verify(artifact)
    answer: wire.ArtifactVerified = {
        "verified": True,
        "artifact": artifact_view(artifact),
        "signed_by": artifact.signed_by,
    }
    return json(answer)


async def export_artifact(request: Request) -> Response:
    registry = _registry(request)
    artifact = registry.get(request.path_params["name"], _version(request))
    out = await transfer.export_tar(registry, artifact)
    filename = f"{artifact.name}-{artifact.version}.tar"
    return FileResponse(
        out,
        media_type=TAR,
        filename=filename,
        headers={"x-moc-artifact": artifact.ref},
        background=BackgroundTask(out.unlink, missing_ok=True),
    )


async def list_adapters(request: Request) -> Response:
    latest: dict[str, Artifact] = {}
    for a in _registry(request).all():
        if a.manifest.kind is Kind.ADAPTER:
            latest[a.name] = a  # all() is by name, then version: the last one wins
    adapters: list[wire.Adapter] = []
    for a in latest.values():
        view = artifact_view(a)
        adapters.append(
            {
                "name": a.name,
                "base": a.manifest.base,
                "digest": a.digest,
                "version": a.version,
                "signed_by": a.signed_by,
                "producer": view["producer"],
                "metrics": view["metrics"],
                "size_bytes": view["size_bytes"],
            }
        )
    answer: wire.AdapterList = {"adapters": adapters}
    return json(answer)


# --- signing keys ------------------------------------------------------------------------
def key_view(registry: Registry, name: str) -> wire.SigningKey:
    key = registry.keys.get(name)
    return {
        "name": key.name,
        "type": _key_type(key.type),
        "id": key.id,
        "public_pem": key.public_pem,
        "created_at": iso(key.created_at),
        "signs": key.name == registry.signing_key,
    }


def _key_type(text: str) -> wire.KeyType:
    for known in typing.get_args(wire.KeyType):
        if text == known:
            return known  # type: ignore[no-any-return]
    raise AssertionError(f"a key of a type the registry does not make: {text}")


async def list_keys(request: Request) -> Response:
    registry = _registry(request)
    answer: wire.SigningKeyList = {
        "keys": [key_view(registry, k.name) for k in registry.keys.list()]
    }
    return json(answer)


async def get_key(request: Request) -> Response:
    return json(key_view(_registry(request), request.path_params["name"]))


async def create_key(request: Request) -> Response:
    body = await parse(request, SigningKeyCreateBody)
    kind = body.type or GENERATED_TYPES[0]
    if kind not in GENERATED_TYPES:
        allowed = "|".join(GENERATED_TYPES)
        raise InvalidRequest("type", f"must be one of {allowed}", value=kind, limit=allowed)
    registry = _registry(request)
    registry.keys.generate(body.name, kind)
    await registry.keys_changed()  # its signatures are trusted from now on
    return json(key_view(registry, body.name), 201, {"location": f"/v1/signing-keys/{body.name}"})


routes = [
    Route("/v1/artifacts", add, methods=["POST"]),
    Route("/v1/artifacts", list_artifacts, methods=["GET"]),
    Route("/v1/artifacts/import", import_bundle, methods=["POST"]),
    Route("/v1/artifacts/{name}", get_artifact, methods=["GET"]),
    Route("/v1/artifacts/{name}", delete_artifact, methods=["DELETE"]),
    Route("/v1/artifacts/{name}/verify", verify_artifact, methods=["POST"]),
    Route("/v1/artifacts/{name}/export", export_artifact, methods=["GET"]),
    Route("/v1/adapters", list_adapters, methods=["GET"]),
    Route("/v1/signing-keys", list_keys, methods=["GET"]),
    Route("/v1/signing-keys", create_key, methods=["POST"]),
    Route("/v1/signing-keys/{name}", get_key, methods=["GET"]),
]
