"""The artifact registry on a real SQLite file and real files: registering,
signing, verifying before use, export and import between two registries, and
every bad bundle refused with nothing half-imported."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from moc.artifacts import bundle
from moc.artifacts.blobs import Blobs
from moc.artifacts.digests import DigestMemory
from moc.artifacts.keys import SigningKeys, load_public_key
from moc.artifacts.manifest import Kind
from moc.artifacts.registry import Registry
from moc.artifacts.signing import key_id, sign
from moc.artifacts.store import ArtifactStore
from moc.artifacts.trust import TrustedKey, TrustPolicy
from moc.clock import SystemClock
from moc.errors import (
    ArtifactExists,
    ArtifactInvalid,
    ArtifactNotFound,
    ArtifactTampered,
    ArtifactUnsigned,
    ArtifactUntrusted,
)
from moc.store.sqlite import Database

MODELS = {"tiny-chat"}


async def make(
    root: Path,
    *,
    signing_key: str | None = "default",
    trusted: list[TrustedKey] | None = None,
    revoked: tuple[str, ...] = (),
    require_signature: bool = False,
) -> AsyncIterator[Registry]:
    root.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a test's own folder
    db = Database(root / "moc.db")
    registry = Registry(
        ArtifactStore(db),
        Blobs(root / "artifacts"),
        SigningKeys(root / "keys"),
        TrustPolicy(trusted or [], revoked, require_signature),
        DigestMemory(),
        SystemClock(),
        signing_key,
        lambda: MODELS,
    )
    await registry.open()
    try:
        yield registry
    finally:
        db.close()


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    async for made in make(tmp_path / "a"):
        yield made


def files(folder: Path, contents: dict[str, bytes]) -> dict[str, Path]:
    found = {}
    for rel, data in contents.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        found[rel] = path
    return found


ADAPTER = {"adapter_model.safetensors": b"\x01" * 4096, "adapter_config.json": b'{"r": 8}'}


def own_key(registry: Registry) -> TrustedKey:
    info = registry.keys.get("default")
    return TrustedKey(info.name, load_public_key(info.public_pem.encode()), info.id)


async def test_a_registered_artifact_is_signed_stored_once_and_verifies(
    registry: Registry, tmp_path: Path
) -> None:
    source = files(tmp_path / "out", ADAPTER)
    first = await registry.register(
        "helper", Kind.ADAPTER, source, base="tiny-base", metrics={"final_loss": 0.1}
    )
    second = await registry.register("helper", Kind.ADAPTER, source, base="tiny-base")
    assert (first.version, second.version) == (1, 2)
    assert first.signed_by == registry.keys.get("default").id
    assert registry.get("helper") == second
    assert registry.get("helper", version=1) == first
    assert registry.get(first.ref) == first
    blobs = list((tmp_path / "a" / "artifacts" / "blobs" / "sha256").iterdir())
    assert len(blobs) == 2  # two files, stored once for both versions
    folder = await registry.verify(first)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == ADAPTER
    with pytest.raises(ArtifactNotFound):
        registry.get("helper", version=3)


async def test_a_changed_missing_or_added_file_is_tampering_naming_the_file(
    registry: Registry, tmp_path: Path
) -> None:
    artifact = await registry.register("helper", Kind.ADAPTER, files(tmp_path / "out", ADAPTER))
    folder = await registry.verify(artifact)
    weights = folder / "adapter_model.safetensors"
    os.chmod(weights, 0o644)
    data = bytearray(weights.read_bytes())
    data[100] ^= 1
    weights.write_bytes(bytes(data))  # through the view: the blob is the same file
    with pytest.raises(ArtifactTampered, match=r"adapter_model.safetensors: changed"):
        await registry.verify(artifact)
    weights.write_bytes(ADAPTER["adapter_model.safetensors"])
    await registry.verify(artifact)
    (folder / "extra.bin").write_bytes(b"x")
    with pytest.raises(ArtifactTampered, match=r"extra.bin: a file the manifest does not list"):
        await registry.verify(artifact)
    (folder / "extra.bin").unlink()
    (folder / "adapter_config.json").unlink()
    with pytest.raises(ArtifactTampered, match=r"adapter_config.json: missing"):
        await registry.verify(artifact)


async def test_a_verified_file_is_not_hashed_again_until_it_changes(
    registry: Registry, tmp_path: Path
) -> None:
    artifact = await registry.register("helper", Kind.ADAPTER, files(tmp_path / "out", ADAPTER))
    await registry.verify(artifact)
    hashed = registry.memory.hashed_bytes
    await registry.verify(artifact)
    assert registry.memory.hashed_bytes == hashed  # remembered by inode, size and times
    weights = await registry.verify(artifact) / "adapter_model.safetensors"
    st = weights.stat()
    os.chmod(weights, 0o644)
    data = bytearray(weights.read_bytes())
    data[0] ^= 1
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back: ctime still moved
    with pytest.raises(ArtifactTampered):
        await registry.verify(artifact)
    assert registry.memory.hashed_bytes > hashed


async def test_an_artifact_may_not_take_a_model_name(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(ArtifactExists, match="tiny-chat"):
        await registry.register("tiny-chat", Kind.MODEL, files(tmp_path / "out", ADAPTER))
    assert registry.all() == []


async def test_unsafe_paths_are_refused(registry: Registry, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for rel in ("../up", "/abs", "a//b", "manifest.json"):
        with pytest.raises(ArtifactInvalid, match=re.escape(rel)):
            await registry.register("x", Kind.MODEL, {rel: source})
    assert registry.all() == []


async def test_require_signature_refuses_an_unsigned_artifact(tmp_path: Path) -> None:
    async for registry in make(tmp_path / "a", signing_key=None, require_signature=True):
        artifact = await registry.register("plain", Kind.MODEL, files(tmp_path / "out", ADAPTER))
        assert artifact.signature is None
        with pytest.raises(ArtifactUnsigned):
            await registry.verify(artifact)


def export(registry: Registry, ref: str) -> bytes:
    artifact = registry.get(ref)
    out = io.BytesIO()
    bundle.write(out, artifact.manifest, artifact.signature, registry.files_of(artifact))
    return out.getvalue()


async def import_(registry: Registry, data: bytes, work: Path) -> object:
    source = work / "bundle.tar"
    source.write_bytes(data)
    into = work / f"unpacked-{time.monotonic_ns()}"
    into.mkdir()
    manifest, signature = bundle.read(source, into)
    return await registry.adopt(manifest, signature, into)


async def test_export_then_import_on_a_host_that_trusts_the_signer(tmp_path: Path) -> None:
    async for a in make(tmp_path / "a"):
        made = await a.register(
            "helper", Kind.ADAPTER, files(tmp_path / "out", ADAPTER), base="tiny-base"
        )
        data = export(a, "helper")
        async for b in make(tmp_path / "b", trusted=[own_key(a)]):
            imported = await import_(b, data, tmp_path)
            assert imported == made
            assert await b.verify(made) is not None
            assert await import_(b, data, tmp_path) == made  # twice: the same artifact
        async for c in make(tmp_path / "c"):  # trusts only its own key
            with pytest.raises(ArtifactUntrusted, match=made.signed_by[:12]):
                await import_(c, data, tmp_path)
            assert c.all() == []
        async for d in make(tmp_path / "d", trusted=[own_key(a)], revoked=(made.signed_by[:16],)):
            with pytest.raises(ArtifactUntrusted, match="revoked"):
                await import_(d, data, tmp_path)
        expired = TrustedKey("old", own_key(a).key, own_key(a).id, expires_at=time.time() - 1)
        async for e in make(tmp_path / "e", trusted=[expired]):
            with pytest.raises(ArtifactUntrusted, match="expired"):
                await import_(e, data, tmp_path)


def tar_of(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def members_of(data: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    found = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            found.append((m, f.read() if f else None))
    return found


def entry(
    name: str, data: bytes | None = b"x", kind: bytes = tarfile.REGTYPE
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info, data


async def test_bad_bundles_are_refused_naming_the_problem_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    async for a in make(tmp_path / "a"):
        await a.register("helper", Kind.ADAPTER, files(tmp_path / "out", ADAPTER))
        good = members_of(export(a, "helper"))
        other = await a.register(
            "other", Kind.ADAPTER, files(tmp_path / "out2", {"w.bin": b"other"})
        )
        other_sig = other.signature
        async for b in make(tmp_path / "b", trusted=[own_key(a)]):
            flipped = [(i, d if i.name != "adapter_config.json" else b'{"r": 9}') for i, d in good]
            cases = {
                "../escape: a path that leaves": [*good, entry("../escape")],
                "link inside the bundle": [*good, entry("link", None, tarfile.SYMTYPE)],
                "extra.bin: a file the manifest does not list": [*good, entry("extra.bin")],
                "adapter_config.json: listed in the manifest but not in the bundle": [
                    m for m in good if m[0].name != "adapter_config.json"
                ],
                f"{good[-1][0].name}: in the bundle twice": [*good, good[-1]],
                "the bundle has no manifest.json": [
                    m for m in good if m[0].name != "manifest.json"
                ],
            }
            for problem, members in cases.items():
                with pytest.raises(ArtifactInvalid, match=re.escape(problem.split(":")[0])):
                    await import_(b, tar_of(members), tmp_path)
            with pytest.raises(ArtifactTampered, match=re.escape("adapter_config.json: changed")):
                await import_(b, tar_of(flipped), tmp_path)
            resigned = [(i, other_sig if i.name == "model.sig" else d) for i, d in good]
            with pytest.raises(ArtifactUntrusted, match="over other files"):
                await import_(b, tar_of(resigned), tmp_path)
            unknown_field = [
                (i, d.replace(b'"kind"', b'"extra":1,"kind"') if i.name == "manifest.json" else d)
                for i, d in good
            ]
            with pytest.raises(ArtifactInvalid, match="extra"):
                await import_(b, tar_of(unknown_field), tmp_path)
            short_digest = [
                (
                    i,
                    d.replace(b'"sha256":"', b'"sha256":"0', 1)[:-1]
                    if i.name == "manifest.json"
                    else d,
                )
                for i, d in good
            ]
            with pytest.raises(ArtifactInvalid):
                await import_(b, tar_of(short_digest), tmp_path)
            with pytest.raises(ArtifactInvalid, match="not a tar file"):
                await import_(b, b"not a tar", tmp_path)
            assert b.all() == []
            assert list((tmp_path / "b" / "artifacts" / "blobs" / "sha256").iterdir()) == []


async def test_removing_keeps_files_another_artifact_shares(
    registry: Registry, tmp_path: Path
) -> None:
    shared = files(tmp_path / "out", ADAPTER)
    first = await registry.register("one", Kind.ADAPTER, shared)
    second = await registry.register(
        "two", Kind.ADAPTER, {**shared, "more.bin": tmp_path / "out" / "adapter_config.json"}
    )
    await registry.remove(first)
    with pytest.raises(ArtifactNotFound):
        registry.get("one")
    await registry.verify(second)
    await registry.remove(second)
    assert list((tmp_path / "a" / "artifacts" / "blobs" / "sha256").iterdir()) == []
    assert key_id(own_key(registry).key) == registry.keys.get("default").id


async def test_a_compressed_bundle_or_clashing_names_are_refused(tmp_path: Path) -> None:
    async for a in make(tmp_path / "a"):
        await a.register("helper", Kind.ADAPTER, files(tmp_path / "out", ADAPTER))
        good = members_of(export(a, "helper"))
        squeezed = io.BytesIO()
        with tarfile.open(fileobj=squeezed, mode="w:gz") as tar:
            for info, data in good:
                tar.addfile(info, io.BytesIO(data or b""))
        with pytest.raises(ArtifactInvalid, match="plain, uncompressed"):
            await import_(a, squeezed.getvalue(), tmp_path)
        clash = [entry("x"), entry("x/y")]
        source = tmp_path / "clash.tar"
        source.write_bytes(tar_of(clash))
        into = tmp_path / "clash"
        into.mkdir()
        with pytest.raises(ArtifactInvalid, match="a file and a folder of the same name"):
            bundle.read_files(source, into)


async def test_a_bundle_signed_over_its_files_alone_is_refused(tmp_path: Path) -> None:
    """A trusted key's signature over the files (as the model-signing tool signs
    a folder) does not vouch for a manifest that names them: imported with it,
    anyone could rename, renumber or re-kind those files."""
    async for a in make(tmp_path / "a"):
        made = await a.register("helper", Kind.ADAPTER, files(tmp_path / "out", ADAPTER))
        key = a.keys.private_key("default")
        files_only = {f.path: f.sha256 for f in made.manifest.files}
        signature = sign(key, "helper", files_only, ignore_paths=["model.sig"])
        forged = [
            (i, signature if i.name == "model.sig" else d)
            for i, d in members_of(export(a, "helper"))
        ]
        async for b in make(tmp_path / "b", trusted=[own_key(a)]):
            with pytest.raises(ArtifactUntrusted, match="over other files"):
                await import_(b, tar_of(forged), tmp_path)
            assert b.all() == []


async def test_a_refused_signed_upload_leaves_no_file_behind(tmp_path: Path) -> None:
    async for a in make(tmp_path / "a"):
        stranger = SigningKeys(tmp_path / "stranger").generate("s")
        key = SigningKeys(tmp_path / "stranger").private_key(stranger.name)
        source = files(tmp_path / "out", ADAPTER)
        digests = {rel: hashlib.sha256(p.read_bytes()).hexdigest() for rel, p in source.items()}
        with pytest.raises(ArtifactUntrusted):
            await a.register("x", Kind.ADAPTER, source, signature=sign(key, "x", digests))
        assert list((tmp_path / "a" / "artifacts" / "blobs" / "sha256").iterdir()) == []


def test_a_configured_key_keeps_its_expiry_beside_moc_own() -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    configured = TrustedKey("team", key, key_id(key), expires_at=1.0)
    policy = TrustPolicy([configured], (), False).with_keys([TrustedKey("own", key, key_id(key))])
    assert [k.expires_at for k in policy.trusted()] == [1.0]
