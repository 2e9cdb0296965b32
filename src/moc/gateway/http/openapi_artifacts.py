"""The artifact registry's paths in moc's OpenAPI document: artifacts,
adapters and signing keys."""

from __future__ import annotations

from typing import Any

from moc.artifacts.keys import NAME_PATTERN as KEY_NAME
from moc.artifacts.manifest import NAME_PATTERN, Kind
from moc.gateway.http.artifacts import MAX_VERSION, TAR
from moc.gateway.http.openapi_ops import answer, content, failures, op, path_param, query_param
from moc.gateway.http.openapi_schemas import ref

_TAR_BODY = {"type": "string", "format": "binary"}


def _version() -> dict[str, Any]:
    version = query_param("version", {"type": "integer", "minimum": 1, "maximum": MAX_VERSION})
    version["description"] = "one version of the name (default: the latest)"
    return version


def _upload(
    summary: str, description: str, params: list[dict[str, Any]], *statuses: int
) -> dict[str, Any]:
    upload = op(
        summary,
        answer("stored", ref("Artifact"), Location=True),
        failures(*statuses),
        params=params,
        body=_TAR_BODY,
        status=201,
    )
    upload["requestBody"]["description"] = description
    upload["requestBody"]["content"] = content(_TAR_BODY, TAR)
    return upload


def artifact_paths() -> dict[str, Any]:
    name = query_param("name", {"type": "string", "pattern": NAME_PATTERN})
    name["required"] = True
    kind = query_param("kind", {"enum": [k.value for k in Kind]})
    one = [path_param("name"), _version()]
    key_name = path_param("name")
    key_name["schema"] = {"type": "string", "pattern": KEY_NAME}
    export = op(
        "An artifact as a bundle (tar: manifest.json, model.sig, its files), verified first",
        {"description": "the bundle", "content": content(_TAR_BODY, TAR)},
        failures(400, 404, 422, 503),
        params=one,
    )
    return {
        "/v1/artifacts": {
            "post": _upload(
                "Add files as the next version of an artifact (signed by moc, or by the "
                "model.sig among them)",
                "a tar of the files: a folder's contents, or one file; a model.sig at its "
                "top is their signature (the OpenSSF model-signing format)",
                [name, {**kind, "required": True}, query_param("base", {"type": "string"})],
                400,
                404,
                409,
                422,
                503,
            ),
            "get": op(
                "Every artifact version, by name then version",
                answer("artifacts", ref("ArtifactList")),
                failures(400),
                params=[kind],
            ),
        },
        "/v1/artifacts/import": {
            "post": _upload(
                "Import a bundle another moc exported, verified before anything is stored",
                "the bundle, as GET /v1/artifacts/{name}/export answers it",
                [],
                400,
                409,
                422,
                503,
            )
        },
        "/v1/artifacts/{name}": {
            "get": op(
                "One artifact version with its files (name, or name@sha256:…)",
                answer("the artifact", ref("ArtifactDetail")),
                failures(400, 404, 422),
                params=one,
            ),
            "delete": op(
                "Remove one version (?version= or name@sha256:…), or every version of a name",
                answer("removed", ref("ArtifactsRemoved")),
                failures(400, 404, 422, 503),
                params=one,
            ),
        },
        "/v1/artifacts/{name}/verify": {
            "post": op(
                "Check every file and the signature against the trust policy",
                answer("it verifies", ref("ArtifactVerified")),
                failures(400, 404, 422, 503),
                params=one,
            )
        },
        "/v1/artifacts/{name}/export": {"get": export},
        "/v1/adapters": {
            "get": op(
                "The adapter catalog: each adapter's latest version",
                answer("adapters", ref("AdapterList")),
                {},
            )
        },
        "/v1/signing-keys": {
            "get": op("moc's signing keys", answer("keys", ref("SigningKeyList")), {}),
            "post": op(
                "Make a signing key (its private half never leaves the data directory)",
                answer("made", ref("SigningKey"), Location=True),
                failures(400, 409, 503),
                body=ref("SigningKeyCreate"),
                status=201,
            ),
        },
        "/v1/signing-keys/{name}": {
            "get": op(
                "One signing key, with its public half",
                answer("the key", ref("SigningKey")),
                failures(400, 404),
                params=[key_name],
            )
        },
    }
