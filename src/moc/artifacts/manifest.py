"""An artifact's manifest: what it is, where it came from, and the SHA-256 of
every file, as one JSON document whose own SHA-256 is the artifact's digest.

The manifest is stored beside the files as ``manifest.json`` and signed with
them (the signature's statement lists ``manifest.json`` among its files), so
a signature covers the metadata (kind, base model, metrics) as well as the
bytes. Written canonically (sorted keys, no spaces), so that the same
manifest always has the same digest.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from moc.errors import ArtifactInvalid

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "model.sig"  # the model-signing tool's default name
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_FILES = 100_000

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, 64 hex digits")]


class Kind(StrEnum):
    MODEL = "model"
    ADAPTER = "adapter"
    QUANTIZED = "quantized"
    INDEX = "index"
    DATASET = "dataset"


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file inside an artifact, or None."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return "not a relative POSIX path"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "a path that leaves the artifact or has an empty part"
    if path in (MANIFEST_NAME, SIGNATURE_NAME):
        return f"{path} is the artifact's own file"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Strict):
    path: str = Field(description="relative POSIX path inside the artifact")
    sha256: Sha256
    size: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        problem = path_problem(path)
        if problem is not None:
            raise ValueError(problem)
        return path


class Producer(_Strict):
    """The learning job that made the artifact, and what it read."""

    job: str
    job_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="of its request")
    dataset: str | None = None
    dataset_digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")
    model: str | None = Field(None, description="the model it read (quantize)")


class Manifest(_Strict):
    schema_: Literal["moc.artifact/v1"] = Field("moc.artifact/v1", alias="schema")
    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1, le=1_000_000_000)
    kind: Kind
    base: str | None = Field(None, description="the base model an adapter belongs to")
    architecture: str | None = Field(None, description="the base's architecture (adapters)")
    producer: Producer | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    files: tuple[FileEntry, ...] = Field(min_length=1, max_length=MAX_FILES)
    created_at: float

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("files")
    @classmethod
    def _distinct(cls, files: tuple[FileEntry, ...]) -> tuple[FileEntry, ...]:
        seen: set[str] = set()
        for f in files:
            if f.path in seen:
                raise ValueError(f"{f.path} is listed twice")
            seen.add(f.path)
        return tuple(sorted(files, key=lambda f: f.path.split("/")))

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def canonical(self) -> bytes:
        return orjson.dumps(
            self.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS
        )

    def digests(self) -> dict[str, str]:
        """Every file's SHA-256 by path, the manifest's own among them: what a
        signature's statement lists."""
        found = {f.path: f.sha256 for f in self.files}
        found[MANIFEST_NAME] = sha256_hex(self.canonical())
        return found


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(manifest: Manifest) -> str:
    """The artifact's digest: ``sha256:`` and the SHA-256 of its manifest."""
    return "sha256:" + sha256_hex(manifest.canonical())


def parse(data: bytes, where: str = MANIFEST_NAME) -> Manifest:
    """A manifest from its JSON; ArtifactInvalid names the field that is wrong."""
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(the document)"
        raise ArtifactInvalid(
            f"{where}: {field}: {first['msg']}", field=field, errors=exc.error_count()
        ) from None


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name`` or ``name@sha256:<hex>`` → (name, the digest's hex or None)."""
    name, at, digest = ref.partition("@")
    if not at:
        return name, None
    hex_ = digest.removeprefix("sha256:")
    if not digest.startswith("sha256:") or not _HEX64.match(hex_):
        raise ArtifactInvalid(
            f"artifact {ref!r}: a digest is 'sha256:' and 64 hex digits", field="artifact"
        )
    return name, hex_
