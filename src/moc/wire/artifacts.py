"""Artifacts, adapters and signing keys as ``/v1/artifacts``, ``/v1/adapters``
and ``/v1/signing-keys`` answer them."""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed

# moc.artifacts.manifest.Kind, as sent.
ArtifactKind = Literal["model", "adapter", "quantized", "index", "dataset"]
KeyType = Literal["ed25519", "ecdsa-p256", "ecdsa-p384"]


@closed
class Producer(TypedDict):
    """The learning job that made an artifact, and what it read."""

    job: str
    """the learning job's id"""
    job_digest: str
    """sha256: of the job's request (kind, sources, params)"""
    dataset: str | None
    """the dataset's id, for a job that read one"""
    dataset_digest: str | None
    """sha256: of the dataset's content"""
    model: str | None
    """the model it read (quantize)"""


@closed
class Artifact(TypedDict):
    """One version of an artifact in the registry."""

    name: str
    """its name; versions of one name count up from 1"""
    version: int
    """this version of the name, from 1"""
    kind: ArtifactKind
    """what it holds: a model, an adapter (LoRA), a quantized model, an index or a dataset"""
    digest: str
    """sha256: and the SHA-256 of its manifest; name@digest names this version exactly"""
    base: str | None
    """the model an adapter or a quantized model belongs to"""
    architecture: str | None
    """the base model's architecture (an adapter's)"""
    producer: Producer | None
    """the learning job that made it (null: added by hand)"""
    signed_by: str | None
    """the id of the key whose signature it carries (the SHA-256 of its public key PEM)"""
    size_bytes: int
    """its files together"""
    metrics: dict[str, float]
    """the job's figures: final_loss, steps; agreement; chunks, documents"""
    created_at: str
    """UTC, ISO 8601 with milliseconds"""


@closed
class ArtifactFile(TypedDict):
    path: str
    """relative POSIX path inside the artifact"""
    sha256: str
    size_bytes: int


@closed
class ArtifactDetail(Artifact):
    """One artifact with its files."""

    files: list[ArtifactFile]


@closed
class ArtifactList(TypedDict):
    """Every artifact version, by name then version."""

    artifacts: list[Artifact]


@closed
class ArtifactsRemoved(TypedDict):
    """The versions a delete removed."""

    removed: list[Artifact]


@closed
class ArtifactVerified(TypedDict):
    """An artifact that passed verification: every file and the signature."""

    verified: Literal[True]
    artifact: Artifact
    signed_by: str | None
    """the trusted key that signed it (null: unsigned, which the trust policy allows)"""


@closed
class Adapter(TypedDict):
    """An adapter in the catalog: the latest version of each adapter artifact."""

    name: str
    base: str | None
    """the base model it applies to"""
    digest: str
    version: int
    signed_by: str | None
    producer: Producer | None
    metrics: dict[str, float]
    size_bytes: int


@closed
class AdapterList(TypedDict):
    adapters: list[Adapter]


@closed
class SigningKey(TypedDict):
    """One of moc's signing keys: never its private half."""

    name: str
    type: KeyType
    id: str
    """the SHA-256 of its public key PEM, as signatures name it"""
    public_pem: str
    """its public key (SubjectPublicKeyInfo PEM), for another host's artifacts.trusted_keys"""
    created_at: str
    signs: bool
    """the key moc signs what it registers with (artifacts.signing_key)"""


@closed
class SigningKeyList(TypedDict):
    keys: list[SigningKey]
