"""What the SDK sends and receives, shared by the sync and async clients."""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from moc import errors

DEFAULT_URL = "http://127.0.0.1:8008"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


API_KEY_ENV = "MOC_API_KEY"


def base_url(url: str | None) -> str:
    return (url or os.environ.get("MOC_URL") or DEFAULT_URL).rstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The ``Authorization`` header every request carries: ``api_key``, else
    ``MOC_API_KEY``; none when neither is set (or ``api_key`` is ``""``).

    A key a header cannot carry raises ValueError here, naming neither the key
    nor any part of it, rather than an error from the HTTP library that would.
    """
    key = (os.environ.get(API_KEY_ENV, "") if api_key is None else api_key).strip()
    if not key:
        return {}
    if not all("!" <= c <= "~" for c in key):
        raise ValueError(
            f"the API key ({len(key)} characters) has a space, control or non-ASCII "
            "character: a key is printable ASCII (moc_<id>_<secret>, or MOC_ADMIN_KEY's value)"
        )
    return {"authorization": f"Bearer {key}"}


def default_holder() -> str:
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return f"{program}:{os.getpid()}"


@dataclass(frozen=True)
class LeaseInfo:
    """A lease as the SDK hands it out: :class:`moc.wire.Lease` with attributes.

    Its fields are the wire shape's, in order and with the same types
    (tests/sdk/test_lease_info.py keeps them so); a field moc adds later is
    dropped here rather than failing an older SDK.
    """

    id: str
    device: str
    bytes: int
    holder: str
    pid: int | None
    priority: int
    preemptible: bool
    fencing_token: int
    ttl_s: float
    created_at: str
    expires_at: str
    expires_in_s: float
    used_bytes: int | None = None
    over_limit: bool = False
    yield_s: float | None = None
    yield_by: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeaseInfo:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def own_pid(url: str, pid: int | None) -> int | None:
    """A held lease names this process by default, so that moc can measure its
    use, when moc runs on this host (a pid means nothing to another host)."""
    if pid is None and urlsplit(url).hostname in LOOPBACK:
        return os.getpid()
    return pid


def acquire_body(
    *,
    bytes: int | None,
    mb: float | None,
    device: str | None,
    ttl_s: float | None,
    priority: int | None,
    holder: str | None,
    pid: int | None,
    wait_s: float | None,
    preemptible: bool,
    yield_s: float | None = None,
) -> dict[str, Any]:
    """The acquire request, without the fields left to moc's defaults."""
    body: dict[str, Any] = {
        "bytes": bytes,
        "mb": mb,
        "device": device,
        "ttl_s": ttl_s,
        "priority": priority,
        "holder": holder if holder is not None else default_holder(),
        "pid": pid,
        "wait_s": wait_s,
        "yield_s": yield_s,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if preemptible:
        body["preemptible"] = True
    return body


def job_body(
    model: str,
    prompt: str | None,
    messages: list[dict[str, Any]] | None,
    priority: str,
    metadata: dict[str, Any] | None,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ``POST /v1/jobs`` body, without the fields not given."""
    body: dict[str, Any] = {"model": model, "priority": priority}
    for key, value in (
        ("prompt", prompt),
        ("messages", messages),
        ("metadata", metadata),
        ("options", options),
    ):
        if value is not None:
            body[key] = value
    return body


UPLOAD_CHUNK = 1024 * 1024


def dataset_params(name: str, format: str | None, replace: bool) -> dict[str, str]:
    """The ``POST /v1/datasets`` query, without what is left to moc's defaults."""
    params = {"name": name}
    if format is not None:
        params["format"] = format
    if replace:
        params["replace"] = "true"
    return params


def check(response: httpx.Response) -> Any:
    """The JSON body of a success, or the moc error the envelope describes."""
    if response.status_code < 400:
        return response.json()
    try:
        err = response.json()["error"]
        raise errors.from_code(err["code"], err["message"], err.get("details"))
    except (ValueError, KeyError, TypeError):
        raise errors.MocError(
            f"moc answered {response.status_code}: {response.text[:200]}"
        ) from None


def sse_data(line: str) -> dict[str, Any] | None:
    """The JSON of a server-sent event's ``data:`` line; None for any other line."""
    if not line.startswith("data:"):
        return None
    try:
        value = json.loads(line[5:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def unreachable(url: str, exc: httpx.HTTPError) -> errors.Unavailable:
    return errors.Unavailable(f"cannot reach moc at {url}: {exc}")


# Errors after which renewing a lease is pointless: it is gone for good.
LOST = (errors.LeaseNotFound, errors.LeaseRevoked, errors.FencingTokenMismatch)


def renew_interval(ttl_s: float, every_s: float | None, yield_s: float | None = None) -> float:
    """How often a held lease renews: a third of its TTL, and for a yieldable
    one often enough that a yield request (in the renew answer) is seen with
    most of ``yield_s`` left."""
    if every_s is not None:
        return every_s
    every = ttl_s / 3
    if yield_s is not None:
        every = min(every, yield_s / 4)
    return max(0.2, every)


def goal_body(**fields: Any) -> dict[str, Any]:
    """A goal's create or update body: the fields given (None: not given)."""
    return {k: v for k, v in fields.items() if v is not None}


def key_path(key_id: str, tail: str = "") -> str:
    """``/v1/keys/{id}{tail}``, the id quoted (an id with "/" stays one segment)."""
    return f"/v1/keys/{quote(key_id, safe='')}{tail}"


def key_body(
    name: str,
    role: str,
    models: list[str] | None,
    limits: Mapping[str, object] | None,
    expires_at: str | datetime | None,
) -> dict[str, Any]:
    """The ``POST /v1/keys`` body, without the fields not given."""
    body: dict[str, Any] = {"name": name, "role": role}
    if models is not None:
        body["models"] = list(models)
    if limits is not None:
        body["limits"] = dict(limits)
    if expires_at is not None:
        body["expires_at"] = iso_time(expires_at)
    return body


def iso_time(when: str | datetime) -> str:
    """A time as moc reads it: ISO 8601 (a naive datetime is taken as UTC)."""
    return when if isinstance(when, str) else when.isoformat()


def audit_params(
    since: str | datetime | None,
    until: str | datetime | None,
    key_id: str | None,
    action: str | None,
    limit: int,
) -> dict[str, str | int]:
    """The ``GET /v1/audit`` query, without the filters not given."""
    params: dict[str, str | int] = {"limit": limit}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            params[name] = iso_time(value)
    for name, text in (("key_id", key_id), ("action", action)):
        if text is not None:
            params[name] = text
    return params


def goal_path(name: str) -> str:
    # Quoted: a name with "?", "#" or a space reaches moc as the name asked
    # for (an unknown goal), not cut short into a query or a fragment.
    return f"/v1/goals/{quote(name, safe='')}"


def artifact_path(ref: str, tail: str = "") -> str:
    """``/v1/artifacts/{ref}{tail}``, the ref quoted (``@`` and ``:`` stay)."""
    return f"/v1/artifacts/{quote(ref, safe='@:')}{tail}"


def version_params(version: int | None, **more: str | None) -> dict[str, str]:
    params = {k: v for k, v in more.items() if v is not None}
    if version is not None:
        params["version"] = str(version)
    return params


def pack(path: str | os.PathLike[str]) -> Path:
    """A folder's files (or one file) as a tar in a temporary file, which the
    caller removes: the body of ``POST /v1/artifacts``. A link or anything
    but a file raises ValueError naming it (moc would refuse it anyway)."""
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    fd, name = tempfile.mkstemp(suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w") as tar:
            if source.is_file():
                tar.add(source, arcname=source.name, recursive=False)
                return Path(name)
            for item in sorted(source.rglob("*")):
                rel = item.relative_to(source).as_posix()
                if item.is_symlink() or not (item.is_file() or item.is_dir()):
                    raise ValueError(f"{item}: not a regular file (artifacts hold files only)")
                if item.is_file() and rel.split("/")[0] not in GIT_PATHS:
                    tar.add(item, arcname=rel, recursive=False)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


# Left out of a folder's upload, as the model-signing tool leaves them out of
# what it signs.
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
