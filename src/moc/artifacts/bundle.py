"""An artifact as one tar file, to carry between hosts without trusting the
transport.

    manifest.json    the manifest, as registered
    model.sig        its signature, if it has one
    <path>           each file under its path in the manifest

Unpacked, the folder verifies with the model-signing tool as it is
(``model_signing verify key DIR --signature DIR/model.sig``). Reading one
trusts nothing in it: only regular files and folders, each name a relative
path inside the bundle, no name twice, the files exactly those the manifest
lists, each size as the manifest says; anything else is ArtifactInvalid
naming the member, before a byte reaches the registry.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from moc.artifacts.manifest import (
    MANIFEST_NAME,
    MAX_FILES,
    SIGNATURE_NAME,
    Manifest,
    parse,
    path_problem,
)
from moc.errors import ArtifactInvalid, StoreUnavailable

MAX_MANIFEST = 16 << 20
MAX_MEMBERS = MAX_FILES + 64  # the files, the manifest and signature, some folders
MAX_SIGNATURE = 1 << 20


def write(
    out: IO[bytes], manifest: Manifest, signature: bytes | None, files: Mapping[str, Path]
) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST_NAME, manifest.canonical())
        if signature is not None:
            _add_bytes(tar, SIGNATURE_NAME, signature)
        for f in manifest.files:
            info = tar.gettarinfo(str(files[f.path]), arcname=f.path)
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
            with files[f.path].open("rb") as src:
                tar.addfile(info, src)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def read(source: Path, into: Path) -> tuple[Manifest, bytes | None]:
    """Unpack the bundle at ``source`` into the empty folder ``into``: its
    manifest and signature, the files under ``into``."""
    with _open(source) as tar:
        own, files = _sorted(_members(tar))
        if MANIFEST_NAME not in own:
            raise ArtifactInvalid(f"the bundle has no {MANIFEST_NAME}", field="bundle")
        manifest = parse(_small(tar, own[MANIFEST_NAME], MAX_MANIFEST), f"bundle {MANIFEST_NAME}")
        signature = (
            _small(tar, own[SIGNATURE_NAME], MAX_SIGNATURE) if SIGNATURE_NAME in own else None
        )
        listed = {f.path: f for f in manifest.files}
        extra = sorted(set(files) - set(listed))
        if extra:
            raise ArtifactInvalid(f"{extra[0]}: a file the manifest does not list", field="bundle")
        missing = sorted(set(listed) - set(files))
        if missing:
            raise ArtifactInvalid(
                f"{missing[0]}: listed in the manifest but not in the bundle", field="bundle"
            )
        for name, member in files.items():
            if member.size != listed[name].size:
                raise ArtifactInvalid(
                    f"{name}: {member.size} bytes, the manifest says {listed[name].size}",
                    field="bundle",
                )
            _extract(tar, member, into / name)
    return manifest, signature


def read_files(source: Path, into: Path) -> tuple[dict[str, Path], bytes | None]:
    """Unpack a plain tar of files (what ``moc artifact add`` sends: a folder or
    one file, and the folder's ``model.sig`` if it has one) into the empty
    folder ``into``: the files by path, and the signature."""
    with _open(source) as tar:
        own, members = _sorted(_members(tar))
        if MANIFEST_NAME in own:
            raise ArtifactInvalid(
                f"{MANIFEST_NAME}: this is an exported bundle; import it instead", field="bundle"
            )
        if not members:
            raise ArtifactInvalid("the upload holds no file", field="bundle")
        signature = (
            _small(tar, own[SIGNATURE_NAME], MAX_SIGNATURE) if SIGNATURE_NAME in own else None
        )
        found = {}
        for name, member in members.items():
            found[name] = _extract(tar, member, into / name)
    return found, signature


def _open(source: Path) -> tarfile.TarFile:
    # A plain tar only: a compressed one could unpack to far more than the
    # upload limit allowed in (a 300-byte bzip2 file to 300 MB).
    try:
        return tarfile.open(source, mode="r:")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactInvalid(
            f"not a tar file (plain, uncompressed): {exc}", field="bundle"
        ) from None


def _members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Its members, reading headers no further than MAX_MEMBERS."""
    found = []
    try:
        while (member := tar.next()) is not None:
            found.append(member)
            if len(found) > MAX_MEMBERS:
                raise ArtifactInvalid(
                    f"more than {MAX_MEMBERS} entries in the tar file", field="bundle",
                    limit=MAX_MEMBERS,
                )  # fmt: skip
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactInvalid(f"a broken tar file: {exc}", field="bundle") from None
    return found


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> Path:
    """One file into the scratch folder; a tar whose data is cut short or
    whose names clash with each other is ArtifactInvalid, a disk that cannot
    take it StoreUnavailable."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = target.open("xb")
    except (FileExistsError, NotADirectoryError):
        raise ArtifactInvalid(
            f"{member.name}: a file and a folder of the same name", field="bundle"
        ) from None
    except OSError as exc:
        raise StoreUnavailable(f"cannot unpack {member.name}: {exc}") from exc
    with out:
        try:
            src = tar.extractfile(member)
            assert src is not None  # a regular file, checked in _sorted
            with src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        except (tarfile.TarError, EOFError) as exc:
            raise ArtifactInvalid(f"{member.name}: cut short ({exc})", field="bundle") from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot unpack {member.name}: {exc}") from exc
    return target


def _sorted(
    members: list[tarfile.TarInfo],
) -> tuple[dict[str, tarfile.TarInfo], dict[str, tarfile.TarInfo]]:
    """(manifest and signature, the other files) by name; folders are allowed
    and skipped, anything else refused."""
    own: dict[str, tarfile.TarInfo] = {}
    files: dict[str, tarfile.TarInfo] = {}
    for m in members:
        name = m.name.removeprefix("./")
        if m.isdir():
            if path_problem(name.rstrip("/")) is not None and name not in ("", "."):
                raise ArtifactInvalid(f"{m.name}: a folder that leaves the bundle", field="bundle")
            continue
        if m.issym() or m.islnk():
            raise ArtifactInvalid(f"{m.name}: a link inside the bundle", field="bundle")
        if not m.isfile() or m.issparse():
            raise ArtifactInvalid(f"{m.name}: not a regular file", field="bundle")
        if name in (MANIFEST_NAME, SIGNATURE_NAME):
            where = own
        elif (problem := path_problem(name)) is not None:
            raise ArtifactInvalid(f"{m.name}: {problem}", field="bundle")
        else:
            where = files
        if name in where:
            raise ArtifactInvalid(f"{m.name}: in the bundle twice", field="bundle")
        where[name] = m
    return own, files


def _small(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise ArtifactInvalid(
            f"{member.name}: {member.size} bytes, more than {limit}", field="bundle", limit=limit
        )
    src = tar.extractfile(member)
    assert src is not None
    with src:
        return src.read()
