"""The artifact registry: register, find, verify and remove artifacts.

Owner of the registry's state: the ``artifacts`` rows (read and written on
the event loop, like every SQLite table of moc), the blobs and views in
``<data_dir>/artifacts`` and moc's signing keys (written from worker threads:
hashing and copying gigabytes must not stall the loop). Writes are one at a
time (``_writing``, held across the thread hops between reading the next
version and inserting the row); reads may run beside a write, since a row is
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

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

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
from moc.artifacts.signing import SigningKey
from moc.artifacts.store import Artifact, ArtifactStore
from moc.artifacts.trust import TrustedKey, TrustPolicy
from moc.clock import Clock
from moc.errors import (
    ArtifactExists,
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
    ) -> None:
        self._store = store
        self._blobs = blobs
        self.keys = keys
        self._configured = policy
        self.policy = policy  # with moc's own keys, once open() has read them
        self.memory = memory
        self._clock = clock
        self.signing_key = signing_key
        self._taken_names = taken_names  # model names: an artifact may not take one
        self._writing = asyncio.Lock()
        # Every row, read once at open() and kept with each write: requests that
        # name an adapter and queries of an index look artifacts up, and would
        # otherwise read and parse every manifest each time.
        self._rows: dict[str, Artifact] = {}
        self._signer: SigningKey | None = None  # moc's signing key, read at open()

    async def open(self) -> None:
        """Folders and moc's signing key in place; blobs and views no row names
        removed (left by a crash, or by a removal while a runtime read them)."""
        self._rows = {a.hex: a for a in self._store.all()}
        views = set(self._rows)
        swept = await asyncio.to_thread(self._open_files, self._blobs_in_use(), views)
        if swept:
            event(log, logging.INFO, "artifact files no artifact names removed", count=swept)
        await self.keys_changed()

    def _open_files(self, in_use: set[str], views: set[str]) -> int:
        self._blobs.open()
        if self.signing_key is not None:
            self.keys.ensure(self.signing_key)
            self._signer = self.keys.private_key(self.signing_key)
        return self._blobs.sweep(keep=in_use, views=views)

    async def keys_changed(self) -> None:
        """Trust moc's own keys as they are now on disk (after one is made)."""
        own = await asyncio.to_thread(self.keys.list)
        self.policy = self._configured.with_keys([_trusted(k) for k in own])

    # --- reading -------------------------------------------------------------------
    def all(self) -> list[Artifact]:
        """By name, then version."""
        return sorted(self._rows.values(), key=lambda a: (a.name, a.version))

    def get(self, ref: str, version: int | None = None) -> Artifact:
        """By ``name`` (its latest version, or ``version``) or ``name@sha256:…``."""
        name, digest_hex = split_ref(ref)
        if digest_hex is not None:
            found = self._rows.get(digest_hex)
            if found is None or found.name != name:
                raise ArtifactNotFound(f"no artifact {ref}", artifact=ref)
            return found
        versions = self.versions(name)
        if version is not None:
            versions = [a for a in versions if a.version == version]
        if not versions:
            which = name if version is None else f"{name} version {version}"
            raise ArtifactNotFound(f"no artifact {which} (see moc artifact list)", artifact=name)
        return versions[-1]

    def versions(self, name: str) -> list[Artifact]:
        return sorted((a for a in self._rows.values() if a.name == name), key=lambda a: a.version)

    def _blobs_in_use(self) -> set[str]:
        return {f.sha256 for a in self._rows.values() for f in a.manifest.files}

    # --- registering ---------------------------------------------------------------
    async def register(
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
        if not files:
            raise ArtifactInvalid("an artifact has at least one file", field="files")
        for rel in files:
            if (problem := path_problem(rel)) is not None:
                raise ArtifactInvalid(f"{rel}: {problem}", field="files")
        self._check_name(name)
        async with self._writing:
            entries = await asyncio.to_thread(self._store_files, files)
            try:
                manifest = _manifest(
                    name=name,
                    version=max((a.version for a in self.versions(name)), default=0) + 1,
                    kind=kind,
                    base=base,
                    architecture=architecture,
                    producer=producer,
                    metrics=dict(metrics or {}),
                    files=entries,
                    created_at=self._clock.now(),
                )
                return self._insert(manifest, signature)
            except BaseException:
                # refused (a signature that does not verify): its files go too
                await self._drop_unused([e.sha256 for e in entries])
                raise

    def _store_files(self, files: Mapping[str, Path]) -> tuple[FileEntry, ...]:
        entries = []
        for rel, source in sorted(files.items()):
            try:
                sha256, size = self._blobs.put_file(source)
            except OSError as exc:
                raise ArtifactInvalid(
                    f"{rel}: cannot read {source}: {exc.strerror or exc}", field="files"
                ) from exc
            entries.append(FileEntry(path=rel, sha256=sha256, size=size))
        return tuple(entries)

    def _insert(self, manifest: Manifest, signature: bytes | None) -> Artifact:
        digests = manifest.digests()
        if signature is not None:
            signed_by = self.policy.check(signature, _signed_part(signature, digests), self._now())
        elif self._signer is not None:
            key = self._signer
            signature = signing.sign(key, manifest.name, digests, ignore_paths=[SIGNATURE_NAME])
            signed_by = signing.key_id(key.public_key())
        else:
            signed_by = None
        artifact = Artifact(digest_of(manifest), manifest, signature, signed_by)
        self._store.insert(artifact)
        self._rows[artifact.hex] = artifact
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
    async def verify(self, artifact: Artifact) -> Path:
        """The artifact's folder, every file checked against its manifest (off
        the event loop) and the signature against the trust policy;
        ArtifactTampered naming the file, ArtifactUntrusted naming the key, or
        ArtifactUnsigned."""
        folder = await asyncio.to_thread(self._check_files, artifact)
        digests = artifact.manifest.digests()
        self.policy.check(
            artifact.signature, _signed_part(artifact.signature, digests), self._now()
        )
        return folder

    def _check_files(self, artifact: Artifact) -> Path:
        files = {f.path: f.sha256 for f in artifact.manifest.files}
        for rel, sha256 in files.items():
            if not self._blobs.has(sha256):
                raise ArtifactTampered(f"{rel}: missing from the store", file=rel)
        folder = self._blobs.view(artifact.hex, files)
        check_folder(folder, files, self.memory)
        return folder

    # --- removing ------------------------------------------------------------------
    async def remove(self, artifact: Artifact) -> None:
        """The row, and the blobs no other artifact lists. Its view stays until
        the next start: a runtime started from it (a model or adapter loaded
        now) keeps reading those bytes, and a restart of that runtime finds the
        artifact gone and is refused."""
        async with self._writing:
            self._store.delete(artifact.digest)
            self._rows.pop(artifact.hex, None)
            await self._drop_unused([f.sha256 for f in artifact.manifest.files])
        event(log, logging.INFO, "artifact removed", artifact=artifact.ref)

    async def _drop_unused(self, blobs: list[str]) -> None:
        still = self._blobs_in_use()
        await asyncio.to_thread(self._blobs.drop, [b for b in blobs if b not in still])

    # --- bundles -------------------------------------------------------------------
    async def adopt(self, manifest: Manifest, signature: bytes | None, folder: Path) -> Artifact:
        """An imported artifact: ``folder`` holds exactly its files (checked by
        the caller), verified here against the manifest and the trust policy
        before anything is written to the registry."""
        expected = {f.path: f.sha256 for f in manifest.files}
        await asyncio.to_thread(check_folder, folder, expected, DigestMemory(enabled=False))
        digest = digest_of(manifest)
        # A bundle's signature must cover its manifest: one over the files alone
        # (as the model-signing tool signs a folder) would let anyone who holds
        # the bundle give those files another name, version, kind or base.
        signed_by = self.policy.check(signature, manifest.digests(), self._now())
        async with self._writing:
            existing = self._rows.get(digest.removeprefix("sha256:"))
            if existing is not None:
                return existing  # the same artifact: importing it twice changes nothing
            if any(a.version == manifest.version for a in self.versions(manifest.name)):
                raise ArtifactExists(
                    f"artifact {manifest.name} version {manifest.version} exists with other "
                    "content; remove it first",
                    field="version",
                )
            self._check_name(manifest.name)
            await asyncio.to_thread(
                self._store_files, {f.path: folder / f.path for f in manifest.files}
            )
            artifact = Artifact(digest, manifest, signature, signed_by)
            self._store.insert(artifact)
            self._rows[artifact.hex] = artifact
        event(log, logging.INFO, "artifact imported", artifact=artifact.ref, signed_by=signed_by)
        return artifact

    @property
    def scratch_root(self) -> Path:
        """Where uploads are received and unpacked: beside the blobs, so that
        a file moves into the store by a rename."""
        return self._blobs.tmp

    def files_of(self, artifact: Artifact) -> dict[str, Path]:
        """Its stored files by path (for an export)."""
        return {f.path: self._blobs.path(f.sha256) for f in artifact.manifest.files}

    def _now(self) -> float:
        return self._clock.now()


def _manifest(**fields: Any) -> Manifest:
    try:
        return Manifest(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ArtifactInvalid(f"{field}: {first['msg']}", field=field) from None


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
