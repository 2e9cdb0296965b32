"""Artifacts in and out as tar files: a folder added by a client, a bundle
imported from another host, a bundle exported for one.

Each unpacks into a scratch folder of its own under the registry's ``tmp/``
(on the same filesystem as the blobs), removed when it is done whatever the
outcome: nothing of a refused upload stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from moc.artifacts import bundle
from moc.artifacts.manifest import Kind
from moc.artifacts.registry import Registry
from moc.artifacts.store import Artifact


@contextlib.contextmanager
def scratch(root: Path) -> Iterator[Path]:
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def add_tar(
    registry: Registry,
    source: Path,
    name: str,
    kind: Kind,
    base: str | None = None,
    metrics: Mapping[str, float] | None = None,
    vet: Callable[[dict[str, Path], bool], None] | None = None,
) -> Artifact:
    """The files in the tar at ``source`` as the next version of ``name``;
    a ``model.sig`` among them is their signature, verified against the
    trust policy (else moc signs them). ``vet(files, signed)`` may refuse the
    files, or add to them, in a worker thread, before anything is stored."""
    with scratch(registry.scratch_root) as into:
        files, signature = await asyncio.to_thread(bundle.read_files, source, into)
        if vet is not None:
            await asyncio.to_thread(vet, files, signature is not None)
        return await registry.register(
            name, kind, files, base=base, metrics=metrics, signature=signature
        )


async def import_tar(registry: Registry, source: Path) -> Artifact:
    """The bundle at ``source``, verified whole before anything is stored."""
    with scratch(registry.scratch_root) as into:
        manifest, signature = await asyncio.to_thread(bundle.read, source, into)
        return await registry.adopt(manifest, signature, into)


async def export_tar(registry: Registry, artifact: Artifact) -> Path:
    """``artifact`` as a bundle in a new file under the scratch folder (the
    caller removes it once sent), its files verified first: a bundle never
    carries bytes the manifest does not vouch for."""
    await registry.verify(artifact)
    files = registry.files_of(artifact)

    def write() -> Path:
        registry.scratch_root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=".tar", dir=registry.scratch_root)
        try:
            with os.fdopen(fd, "wb") as f:
                bundle.write(f, artifact.manifest, artifact.signature, files)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    return await asyncio.to_thread(write)
