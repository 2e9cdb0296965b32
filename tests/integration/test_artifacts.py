"""The artifact registry against real ``moc serve`` processes: the CLI and the
SDK add, list, show, verify, export, import and remove artifacts; a folder
signed with the OpenSSF ``model-signing`` package is accepted by a moc that
trusts the key and refused by one that does not; a byte changed in the store
is found; every bad input is a 4xx naming what is wrong."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import httpx
import model_signing
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import moc
from moc.artifacts.signing import key_id
from moc.errors import ArtifactInvalid, ArtifactTampered, ArtifactUntrusted, ModelNotFound
from tests.artifacts.test_model_signing_interop import write_key_files
from tests.conftest import MocProcess, runtimes_using
from tests.integration.support import Factory, chat, held, start
from tests.integration.test_cli import run as cli

FILES = {"weights.bin": os.urandom(3000), "config.json": b'{"r": 8}', "sub/tok.txt": b"abc"}


def folder(where: Path, files: dict[str, bytes] = FILES) -> Path:
    for rel, data in files.items():
        (where / rel).parent.mkdir(parents=True, exist_ok=True)
        (where / rel).write_bytes(data)
    return where


def serve(factory: Factory, name: str, **artifacts: Any) -> MocProcess:
    """A moc of its own, on a host device of its own (two mocs never share one)."""
    config = {
        "devices": {"nvml": "off", "host": [{"id": name, "size": "1GiB"}]},
        "runtimes": {"demo_models": False},
        "artifacts": artifacts,
    }
    return factory(config, name=name).start()


def test_the_cli_adds_shows_verifies_exports_and_another_moc_imports(
    moc_factory: Factory, tmp_path: Path
) -> None:
    first = serve(moc_factory, "first")
    keys = cli(first, "signing-keys", "list")
    assert keys.returncode == 0, keys.stderr
    assert keys.stdout.splitlines()[1].split()[:3] == ["default", "*", "ed25519"]

    added = cli(first, "artifact", "add", "helper", str(folder(tmp_path / "src")), "--kind",
                "adapter", "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr
    artifact = json.loads(added.stdout)
    own_key = httpx.get(f"{first.url}/v1/signing-keys/default").json()
    assert (artifact["version"], artifact["signed_by"]) == (1, own_key["id"])
    assert artifact["size_bytes"] == sum(len(d) for d in FILES.values())

    listed = cli(first, "artifact", "list")
    assert listed.stdout.splitlines()[1].split()[:3] == ["helper", "1", "adapter"]
    shown = cli(first, "artifact", "show", "helper")
    assert "file       sub/tok.txt" in shown.stdout
    assert cli(first, "artifact", "verify", f"helper@{artifact['digest']}").returncode == 0
    catalog = httpx.get(f"{first.url}/v1/adapters").json()["adapters"]
    assert [(a["name"], a["base"], a["digest"]) for a in catalog] == [
        ("helper", None, artifact["digest"])
    ]
    bundle = tmp_path / "helper.tar"
    assert cli(first, "artifact", "export", "helper", str(bundle)).returncode == 0

    pub = tmp_path / "first.pub"
    exported_key = cli(first, "signing-keys", "export", "default")
    pub.write_text(exported_key.stdout)
    trusting = serve(moc_factory, "trusting", trusted_keys=[str(pub)], require_signature=True)
    imported = cli(trusting, "artifact", "import", str(bundle), "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["digest"] == artifact["digest"]

    stranger = serve(moc_factory, "stranger")
    refused = cli(stranger, "artifact", "import", str(bundle))
    assert refused.returncode == 1
    assert "[artifact_untrusted]" in refused.stderr
    assert own_key["id"][:12] in refused.stderr
    assert httpx.get(f"{stranger.url}/v1/artifacts").json()["artifacts"] == []

    removed = cli(first, "artifact", "rm", "helper")
    assert removed.stdout.strip() == "helper version 1: removed"
    assert httpx.get(f"{first.url}/v1/artifacts/helper").status_code == 404


def test_a_folder_signed_with_model_signing_is_trusted_only_with_its_key(
    moc_factory: Factory, tmp_path: Path
) -> None:
    private, public = write_key_files(tmp_path, ec.SECP256R1())
    model = folder(tmp_path / "model")
    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
        hashing
    ).sign(model, model / "model.sig")

    trusting = serve(moc_factory, "trusting", trusted_keys=[str(public)])
    with moc.Client(trusting.url) as client:
        added = client.add_artifact("signed", model, kind="model")
        public_key = serialization.load_pem_public_key(public.read_bytes())
        assert added["signed_by"] == key_id(public_key)  # the signer's, not moc's own
        assert client.verify_artifact("signed")["signed_by"] == added["signed_by"]

    stranger = serve(moc_factory, "stranger")
    with moc.Client(stranger.url) as client, pytest.raises(ArtifactUntrusted):
        client.add_artifact("signed", model, kind="model")
    (model / "weights.bin").write_bytes(b"changed after signing")
    with moc.Client(trusting.url) as client, pytest.raises(ArtifactUntrusted, match="other files"):
        client.add_artifact("signed", model, kind="model")


def test_a_byte_changed_in_the_store_is_found_naming_the_file(
    moc_factory: Factory, tmp_path: Path
) -> None:
    server = serve(moc_factory, "data")
    with moc.Client(server.url) as client:
        added = client.add_artifact("helper", folder(tmp_path / "src"), kind="adapter")
        weights = next(f for f in client.artifact("helper")["files"] if f["path"] == "weights.bin")
        blob = server.data_dir / "artifacts" / "blobs" / "sha256" / weights["sha256"]
        blob.chmod(0o644)
        data = bytearray(blob.read_bytes())
        data[7] ^= 0x01
        blob.write_bytes(bytes(data))
        with pytest.raises(ArtifactTampered, match=r"weights\.bin: changed"):
            client.verify_artifact("helper")
        answer = httpx.get(f"{server.url}/v1/artifacts/helper/export")
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "artifact_tampered"
        assert client.artifact(f"helper@{added['digest']}")["version"] == 1


def tar_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize(
    ("params", "body", "status", "code", "says"),
    [
        ({"kind": "model"}, tar_bytes({"a": b"x"}), 400, "invalid_request", "name"),
        ({"name": "x y", "kind": "model"}, tar_bytes({"a": b"x"}), 400, "invalid_request", "name"),
        ({"name": "x"}, tar_bytes({"a": b"x"}), 400, "invalid_request", "kind"),
        ({"name": "x", "kind": "weights"}, tar_bytes({"a": b"x"}), 400, "invalid_request", "kind"),
        ({"name": "x", "kind": "model"}, b"not a tar", 422, "artifact_invalid", "not a tar file"),
        (
            {"name": "x", "kind": "model"},
            tar_bytes({"../a": b"x"}),
            422,
            "artifact_invalid",
            "../a",
        ),
        ({"name": "x", "kind": "model"}, tar_bytes({}), 422, "artifact_invalid", "no file"),
        (
            {"name": "x", "kind": "model"},
            tar_bytes({"a": b"x", "model.sig": b"{}"}),
            422,
            "artifact_untrusted",
            "cannot be read",
        ),
    ],
)
def test_bad_uploads_are_refused_naming_what_is_wrong(
    server: MocProcess, params: dict[str, str], body: bytes, status: int, code: str, says: str
) -> None:
    answer = httpx.post(f"{server.url}/v1/artifacts", params=params, content=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert says in error["message"]
    assert httpx.get(f"{server.url}/v1/artifacts").json()["artifacts"] == []
    assert list((server.data_dir / "artifacts" / "tmp").iterdir()) == []


def test_bad_references_and_keys(server: MocProcess) -> None:
    url = server.url
    assert httpx.get(f"{url}/v1/artifacts/nothing").json()["error"]["code"] == "artifact_not_found"
    bad_digest = httpx.get(f"{url}/v1/artifacts/x@sha256:abc").json()["error"]
    assert (bad_digest["code"], bad_digest["param"]) == ("artifact_invalid", "artifact")
    version = httpx.get(f"{url}/v1/artifacts/x", params={"version": "0"}).json()["error"]
    assert (version["code"], version["param"]) == ("invalid_request", "version")
    made = httpx.post(f"{url}/v1/signing-keys", json={"name": "team", "type": "ecdsa-p256"})
    assert made.status_code == 201, made.text
    assert made.json()["type"] == "ecdsa-p256"
    again = httpx.post(f"{url}/v1/signing-keys", json={"name": "team"})
    assert again.json()["error"]["code"] == "signing_key_exists"
    wrong = httpx.post(f"{url}/v1/signing-keys", json={"name": "t", "type": "rsa"}).json()["error"]
    assert (wrong["code"], wrong["param"]) == ("invalid_request", "type")
    assert httpx.get(f"{url}/v1/signing-keys/none").json()["error"]["code"] == (
        "signing_key_not_found"
    )
    key_file = server.data_dir / "keys" / "team.key"
    assert key_file.stat().st_mode & 0o077 == 0


def test_a_model_declared_by_artifact_is_verified_before_every_load(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """A model loads from a registry artifact: refused (404) until the artifact
    exists, served once it does, and refused with artifact_tampered naming the
    file once a byte of it changes, with nothing reserved and no runtime
    started; a pinned digest of another version is refused too."""
    models = [
        {"name": "tiny", "artifact": "tiny-q", "ctx": 512, "memory": "30MiB"},
        {"name": "pinned", "artifact": "tiny-q@sha256:" + "0" * 64, "ctx": 512},
    ]
    server = start(moc_factory, models)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        missing = http.post("/v1/models/tiny/load")
        assert missing.json()["error"]["code"] == "artifact_not_found", missing.text
        with moc.Client(server.url) as client:
            added = client.add_artifact("tiny-q", tiny_models["a"], kind="quantized")
        assert http.post("/v1/chat/completions", json=chat("tiny")).status_code == 200
        assert http.get("/v1/models/tiny").json()["state"] == "ready"
        assert http.post("/v1/models/tiny/unload").json()["unloaded"] is True

        (entry,) = httpx.get(f"{server.url}/v1/artifacts/tiny-q").json()["files"]
        blob = server.data_dir / "artifacts" / "blobs" / "sha256" / entry["sha256"]
        blob.chmod(0o644)
        data = bytearray(blob.read_bytes())
        data[-1] ^= 0x01
        blob.write_bytes(bytes(data))
        for attempt in (
            http.post("/v1/models/tiny/load"),
            http.post("/v1/chat/completions", json=chat("tiny")),
        ):
            assert attempt.status_code == 422, attempt.text
            error = attempt.json()["error"]
            assert error["code"] == "artifact_tampered"
            assert "a.gguf: changed" in error["message"]
            assert held(http) == 0
            assert runtimes_using(server.data_dir / "artifacts") == []
        assert "a.gguf: changed" in http.get("/v1/models/tiny").json()["last_error"]
        pinned = http.post("/v1/models/pinned/load").json()["error"]
        assert pinned["code"] == "artifact_not_found"
        assert added["digest"] not in pinned["message"]


def test_an_adapter_for_another_architecture_or_an_unknown_base_is_refused(
    server: MocProcess, tmp_path: Path
) -> None:
    import gguf

    folder = tmp_path / "qwen-lora"
    folder.mkdir()
    writer = gguf.GGUFWriter(str(folder / "adapter.gguf"), "qwen2")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((8, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with moc.Client(server.url) as client:
        with pytest.raises(
            ArtifactInvalid, match="LoRA for the qwen2 architecture; base model tiny-chat is llama"
        ):
            client.add_artifact("qwen-lora", folder, kind="adapter", base="tiny-chat")
        with pytest.raises(ModelNotFound):
            client.add_artifact("qwen-lora", folder, kind="adapter", base="no-such-model")
        assert client.artifacts() == []


def test_an_upload_over_the_limit_is_refused_and_nothing_is_kept(
    moc_factory: Factory, tmp_path: Path
) -> None:
    server = serve(moc_factory, "small", max_upload_bytes="1KiB")
    body = tar_bytes({"weights.bin": b"x" * 4096})
    for headers in ({}, {"transfer-encoding": "chunked"}):
        chunks = iter([body]) if headers else None
        answer = httpx.post(
            f"{server.url}/v1/artifacts",
            params={"name": "big", "kind": "model"},
            content=chunks if chunks is not None else body,
            headers=headers,
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_request", "body")
        assert "artifacts.max_upload_bytes" in error["message"]
    assert httpx.get(f"{server.url}/v1/artifacts").json()["artifacts"] == []
    assert list((server.data_dir / "artifacts" / "tmp").iterdir()) == []
