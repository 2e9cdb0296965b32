"""The artifact registry: register, find, verify and remove artifacts.

Owner of the registry's state: the ``artifacts`` rows, the blobs and views
in ``<data_dir>/artifacts``, and moc's signing keys. Its methods do blocking
I/O (hashing, copying) and are called from worker threads, one write at a time
(``_writing`` serialises them); reads may run beside a write, since a row is
written only after every blob it names is in place, and a blob is removed
only after the last row naming it is gone.

Register: the files are copied into blobs while they are hashed, the
manifest is written, signed with moc's key (``artifacts.signing_key``), and
the row is inserted last, so a crash leaves at worst unreferenced blobs,
which the next start removes. Verify: the artifact's view (hard links to its
blobs) is checked file by file against the manifest, and the signature
against the trust policy, before anything reads it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from moc.artifacts import signing
from moc.artifacts.blobs import Blobs
from moc.artifacts.digests import DigestMemory, check_folder
from moc.artifacts.keys import KeyInfo, SigningKeys, load_public_key
from moc.artifacts.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    FileEntry,
    Kind,
    Manifest,
    Producer,
    digest_of,
    path_problem,
    split_ref,
)
from moc.artifacts.store import Artifact, ArtifactStore
from moc.artifacts.trust import TrustedKey, TrustPolicy
from moc.clock import Clock
from moc.errors import (
    ArtifactExists,
    ArtifactInUse,
    ArtifactInvalid,
    ArtifactNotFound,
    ArtifactTampered,
)
from moc.telemetry.logs import event

log = logging.getLogger(__name__)


class Registry:
    def __init__(
        self,
        store: ArtifactStore,
        blobs: Blobs,
        keys: SigningKeys,
        policy: TrustPolicy,
        memory: DigestMemory,
        clock: Clock,
        signing_key: str | None,
        taken_names: Callable[[], set[str]],
        in_use: Callable[[Artifact], list[str]] = lambda _: [],
    ) -> None:
        self._store = store
        self._blobs = blobs
        self.keys = keys
        self._policy = policy
        self.memory = memory
        self._clock = clock
        self._signing_key = signing_key
        self._taken_names = taken_names  # model names: an artifact may not take one
        self._in_use = in_use
        self._writing = threading.Lock()

    def open(self) -> None:
        """Folders and moc's signing key in place; blobs no row names removed."""
        self._blobs.open()
        if self._signing_key is not None:
            self.keys.ensure(self._signing_key)
        in_use = self._store.blobs_in_use()
        swept = 0
        for blob in self._blobs.root.joinpath("blobs", "sha256").iterdir():
            if blob.name not in in_use:
                blob.unlink(missing_ok=True)
                swept += 1
        if swept:
            event(log, logging.INFO, "artifact files no artifact names removed", count=swept)

    @property
    def policy(self) -> TrustPolicy:
        """The configured policy, with moc's own keys trusted."""
        return self._policy.with_keys([_trusted(k) for k in self.keys.list()])

    # --- reading -------------------------------------------------------------------
    def all(self) -> list[Artifact]:
        return self._store.all()

    def get(self, ref: str, version: int | None = None) -> Artifact:
        """By ``name`` (its latest version, or ``version``) or ``name@sha256:…``."""
        name, digest_hex = split_ref(ref)
        if digest_hex is not None:
            found = self._store.by_digest(digest_hex)
            if found is None or found.name != name:
                raise ArtifactNotFound(f"no artifact {ref}", artifact=ref)
            return found
        versions = self._store.versions(name)
        if version is not None:
            versions = [a for a in versions if a.version == version]
        if not versions:
            which = name if version is None else f"{name} version {version}"
            raise ArtifactNotFound(f"no artifact {which} (see moc artifact list)", artifact=name)
        return versions[-1]

    # --- registering ---------------------------------------------------------------
    def register(
        self,
        name: str,
        kind: Kind,
        files: Mapping[str, Path],
        *,
        base: str | None = None,
        architecture: str | None = None,
        producer: Producer | None = None,
        metrics: Mapping[str, float] | None = None,
        signature: bytes | None = None,
    ) -> Artifact:
        """Store ``files`` (path inside the artifact → file to copy) as the next
        version of ``name``. With ``signature`` (a model-signing bundle over
        the files, made elsewhere) it must verify against the trust policy;
        without one, moc signs with its own key."""
        for rel in files:
            if (problem := path_problem(rel)) is not None:
                raise ArtifactInvalid(f"{rel}: {problem}", field="files")
        if not files:
            raise ArtifactInvalid("an artifact has at least one file", field="files")
        with self._writing:
            self._check_name(name)
            entries = []
            for rel, source in sorted(files.items()):
                try:
                    sha256, size = self._blobs.put_file(source)
                except OSError as exc:
                    raise ArtifactInvalid(
                        f"{rel}: cannot read {source}: {exc.strerror or exc}", field="files"
                    ) from exc
                entries.append(FileEntry(path=rel, sha256=sha256, size=size))
            manifest = Manifest(
                name=name,
                version=self._store.next_version(name),
                kind=kind,
                base=base,
                architecture=architecture,
                producer=producer,
                metrics=dict(metrics or {}),
                files=tuple(entries),
                created_at=self._clock.now(),
            )
            return self._insert(manifest, signature)

    def _insert(self, manifest: Manifest, signature: bytes | None) -> Artifact:
        digests = manifest.digests()
        if signature is not None:
            signed_by = self.policy.check(signature, _signed_part(signature, digests), self._now())
        elif self._signing_key is not None:
            key = self.keys.private_key(self._signing_key)
            signature = signing.sign(key, manifest.name, digests, ignore_paths=[SIGNATURE_NAME])
            signed_by = self.keys.get(self._signing_key).id
        else:
            signed_by = None
        artifact = Artifact(digest_of(manifest), manifest, signature, signed_by)
        self._store.insert(artifact)
        event(log, logging.INFO, "artifact registered", artifact=artifact.ref,
              version=manifest.version, kind=manifest.kind.value, signed_by=signed_by)  # fmt: skip
        return artifact

    def _check_name(self, name: str) -> None:
        if name in self._taken_names():
            raise ArtifactExists(
                f"artifact name {name!r} is a model's name; requests for it would be ambiguous",
                field="name",
            )

    # --- verifying -----------------------------------------------------------------
    def verify(self, artifact: Artifact) -> Path:
        """The artifact's folder, every file checked against its manifest and
        the signature against the trust policy; ArtifactTampered naming the
        file, ArtifactUntrusted naming the key, or ArtifactUnsigned."""
        m = artifact.manifest
        for f in m.files:
            if not self._blobs.has(f.sha256):
                raise ArtifactTampered(f"{f.path}: missing from the store", file=f.path)
        folder = self._blobs.view(artifact.hex, {f.path: f.sha256 for f in m.files})
        check_folder(folder, {f.path: f.sha256 for f in m.files}, self.memory)
        digests = m.digests()
        self.policy.check(
            artifact.signature, _signed_part(artifact.signature, digests), self._now()
        )
        return folder

    # --- removing ------------------------------------------------------------------
    def remove(self, artifact: Artifact) -> None:
        users = self._in_use(artifact)
        if users:
            raise ArtifactInUse(
                f"artifact {artifact.ref} is what {', '.join(users)} load(s) from",
                models=users,
            )
        with self._writing:
            self._store.delete(artifact.digest)
            self._blobs.drop_view(artifact.hex)
            still = self._store.blobs_in_use()
            for f in artifact.manifest.files:
                if f.sha256 not in still:
                    self._blobs.remove(f.sha256)
        event(log, logging.INFO, "artifact removed", artifact=artifact.ref)

    # --- bundles -------------------------------------------------------------------
    def adopt(self, manifest: Manifest, signature: bytes | None, folder: Path) -> Artifact:
        """An imported artifact: ``folder`` holds exactly its files (checked by
        the caller), verified here against the manifest and the trust policy
        before anything is written to the registry."""
        expected = {f.path: f.sha256 for f in manifest.files}
        check_folder(folder, expected, DigestMemory(enabled=False))
        digest = digest_of(manifest)
        signed_by = self.policy.check(
            signature, _signed_part(signature, manifest.digests()), self._now()
        )
        with self._writing:
            existing = self._store.by_digest(digest.removeprefix("sha256:"))
            if existing is not None:
                return existing  # the same artifact: importing it twice changes nothing
            if any(a.version == manifest.version for a in self._store.versions(manifest.name)):
                raise ArtifactExists(
                    f"artifact {manifest.name} version {manifest.version} exists with other "
                    "content; remove it first",
                    field="version",
                )
            self._check_name(manifest.name)
            for f in manifest.files:
                self._blobs.put_file(folder / f.path)
            artifact = Artifact(digest, manifest, signature, signed_by)
            self._store.insert(artifact)
        event(log, logging.INFO, "artifact imported", artifact=artifact.ref, signed_by=signed_by)
        return artifact

    def files_of(self, artifact: Artifact) -> dict[str, Path]:
        """Its stored files by path (for an export)."""
        return {f.path: self._blobs.path(f.sha256) for f in artifact.manifest.files}

    def _now(self) -> float:
        return self._clock.now()


def _signed_part(signature: bytes | None, digests: dict[str, str]) -> dict[str, str]:
    """What a signature must cover: the files and the manifest for one moc
    made; the files alone for one made over the folder by another tool (the
    model-signing CLI), which knows nothing of moc's manifest."""
    if signature is None:
        return digests
    try:
        listed = signing.read(signature).signed.resources
    except ArtifactInvalid:
        return digests
    if MANIFEST_NAME in listed:
        return digests
    return {k: v for k, v in digests.items() if k != MANIFEST_NAME}


def _trusted(key: KeyInfo) -> TrustedKey:
    return TrustedKey(name=key.name, key=load_public_key(key.public_pem.encode()), id=key.id)
