"""Adding, finding and removing datasets.

An upload is streamed to a temporary file and checked as it arrives (in a
worker thread, a batch of chunks at a time, so a large file does not stall
the event loop); only a file with no error is kept. The rest runs on the event
loop's thread with no ``await`` between reading the table and acting on it:
the decision (new, unchanged, refused, replacing), the rename into place, the
row, and the removal of a content file no row refers to any more. So two
uploads of one name, or an upload and a delete of the same content, cannot
interleave between the check and the write.

Re-uploading a name: the same content (and format) answers the stored dataset
unchanged; other content is refused with ``dataset_exists`` unless
``replace`` is given, and then the name gets a new dataset (a new id) in one
transaction. A dataset used by an unfinished learning job (``in_use``) can be
neither replaced nor removed: a job keeps reading the file it started with.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass

from moc.clock import Clock
from moc.errors import DatasetExists, DatasetInUse, DatasetNotFound, InvalidRequest
from moc.learning.datasets.files import ContentFiles, Upload
from moc.learning.datasets.model import Dataset, Format
from moc.learning.datasets.store import DatasetStore
from moc.learning.datasets.validate import ID, LineChecker, Summary, check_name
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

# Dataset id -> the ids of the unfinished learning jobs that use it.
InUse = Callable[[str], list[str]]
# Chunks are gathered to this size before a worker thread writes and checks them.
BATCH_BYTES = 1024 * 1024


def nobody(dataset_id: str) -> list[str]:
    """``in_use`` until the learning jobs say otherwise: no job uses any dataset."""
    return []


@dataclass(frozen=True)
class Added:
    dataset: Dataset
    created: bool  # False: the name already held this content; nothing changed


def _too_large(limit: int, value: int | None = None) -> InvalidRequest:
    return InvalidRequest(
        "body",
        f"is larger than the {limit}-byte limit for a dataset (learning.max_dataset_bytes)",
        value=value,
        limit=limit,
    )


def _write(upload: Upload, checker: LineChecker, data: bytes) -> None:
    upload.write(data)
    checker.feed(data)


def _finish(upload: Upload, checker: LineChecker) -> Summary:
    summary = checker.finish()
    upload.close()
    return summary


class DatasetService:
    """The datasets: their table (:class:`DatasetStore`) and content files
    (:class:`ContentFiles`), both owned by this service and changed only on the
    event loop's thread.

    ``in_use`` is set by whoever runs learning jobs (after both are built):
    given a dataset id, the ids of the unfinished jobs that use it.
    """

    def __init__(
        self,
        store: DatasetStore,
        files: ContentFiles,
        clock: Clock,
        max_bytes: int,
        in_use: InUse = nobody,
    ) -> None:
        self._store = store
        self._files = files
        self._clock = clock
        self.max_bytes = max_bytes
        self.in_use = in_use
        self._names: tuple[str, ...] | None = None  # every name and id; None: read again

    def recover(self) -> tuple[int, int]:
        """At startup, before any upload: remove what a killed moc left behind.
        Answers (unfinished uploads, content files no dataset refers to)."""
        parts, orphans = self._files.sweep(self._store.contents())
        if parts or orphans:
            event(log, logging.INFO, "datasets swept", uploads=parts, orphan_files=orphans)
        return parts, orphans

    def get(self, name_or_id: str) -> Dataset:
        """A dataset by name, or else by id; raises DatasetNotFound."""
        found = self._store.by_name(name_or_id)
        if found is None and ID.fullmatch(name_or_id):
            found = self._store.by_id(name_or_id)
        if found is None:
            raise DatasetNotFound(f"no dataset {name_or_id!r}", dataset=name_or_id)
        return found

    def list(self) -> list[Dataset]:
        return self._store.all()

    def names(self) -> tuple[str, ...]:
        """Every dataset's name and id (what a cluster node publishes with each
        heartbeat), read from the store only after a change."""
        if self._names is None:
            self._names = tuple(n for d in self._store.all() for n in (d.name, d.id))
        return self._names

    def _refuse_in_use(self, ds: Dataset, doing: str) -> None:
        jobs = self.in_use(ds.id)
        if jobs:
            raise DatasetInUse(
                f"dataset {ds.name!r} is used by unfinished learning jobs "
                f"{', '.join(jobs)}; it cannot be {doing} until they finish",
                dataset=ds.name,
                id=ds.id,
                jobs=jobs,
            )

    async def add(
        self,
        name: str,
        body: AsyncIterable[bytes],
        *,
        format: Format | None = None,
        replace: bool = False,
        declared_bytes: int | None = None,
    ) -> Added:
        """Receive ``body`` as dataset ``name``. Raises InvalidRequest (name,
        size), DatasetInvalid (any line), DatasetExists, DatasetInUse."""
        check_name(name)
        if declared_bytes is not None and declared_bytes > self.max_bytes:
            raise _too_large(self.max_bytes, declared_bytes)
        before = self._store.by_name(name)
        if before is not None and replace:
            self._refuse_in_use(before, "replaced")  # early: spares the upload
        upload = self._files.upload()
        try:
            summary = await self._receive(upload, LineChecker(format), body)
            return self._keep(name, upload, summary, replace)
        finally:
            upload.discard()  # a no-op once the file was placed

    async def _receive(
        self, upload: Upload, checker: LineChecker, body: AsyncIterable[bytes]
    ) -> Summary:
        batch: list[bytes] = []
        size = batched = 0
        async for chunk in body:
            size += len(chunk)
            if size > self.max_bytes:
                raise _too_large(self.max_bytes)
            batch.append(chunk)
            batched += len(chunk)
            if batched >= BATCH_BYTES:
                await asyncio.to_thread(_write, upload, checker, b"".join(batch))
                batch, batched = [], 0
        if batch:
            await asyncio.to_thread(_write, upload, checker, b"".join(batch))
        return await asyncio.to_thread(_finish, upload, checker)

    def _keep(self, name: str, upload: Upload, summary: Summary, replace: bool) -> Added:
        """Decide and write, with no await: see the module docstring."""
        existing = self._store.by_name(name)
        if existing is not None:
            if existing.sha256 == upload.sha256 and existing.format is summary.format:
                return Added(existing, created=False)
            if not replace:
                raise DatasetExists(
                    f"dataset {name!r} exists with other content ({existing.digest}); "
                    "upload with replace=true to replace it",
                    dataset=name,
                    id=existing.id,
                    digest=existing.digest,
                )
            self._refuse_in_use(existing, "replaced")
        sha256 = upload.sha256
        path = self._files.place(upload)
        ds = Dataset(
            id=f"ds_{secrets.token_hex(12)}",
            name=name,
            format=summary.format,
            path=path,
            rows=summary.rows,
            bytes=upload.size,
            tokens=summary.tokens,
            digest=f"sha256:{sha256}",
            created_at=self._clock.now(),
        )
        try:
            self._store.insert(ds, replacing=None if existing is None else existing.id)
        except BaseException:
            self._drop_unused(sha256)
            raise
        self._names = None
        if existing is not None:
            self._drop_unused(existing.sha256)
        event(
            log,
            logging.INFO,
            "dataset added",
            dataset=name,
            id=ds.id,
            format=ds.format.value,
            rows=ds.rows,
            bytes=ds.bytes,
            replaced=None if existing is None else existing.id,
        )
        return Added(ds, created=True)

    def remove(self, name_or_id: str) -> Dataset:
        """Delete a dataset; its content file goes once no dataset refers to it.
        Raises DatasetNotFound, DatasetInUse."""
        ds = self.get(name_or_id)
        self._refuse_in_use(ds, "removed")
        self._store.delete(ds.id)
        self._names = None
        self._drop_unused(ds.sha256)
        event(log, logging.INFO, "dataset removed", dataset=ds.name, id=ds.id)
        return ds

    def _drop_unused(self, sha256: str) -> None:
        if self._store.references(sha256) == 0:
            self._files.remove(sha256)
