"""moc's signatures against the OpenSSF model-signing package's, both ways.

The point of moc's format is that ``model_signing verify key`` accepts what
moc signs and moc accepts what ``model_signing sign key`` signs; only the real
package can show that.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import model_signing
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from moc.artifacts.keys import load_public_key
from moc.artifacts.signing import compare, key_id, order, read, sign, verify

CURVES = {"ecdsa-p256": ec.SECP256R1, "ecdsa-p384": ec.SECP384R1}
ORDER_NAMES = ["B", "a/b", "a b", "a-c/x/y", "a.txt", "a0", "é"]


def digests(folder: Path, ignore: set[str]) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).as_posix() not in ignore
    }


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"layers": 2}')
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (folder / "sub" / "tokenizer.txt").write_text("hello world\n")
    return folder


def write_key_files(folder: Path, curve: ec.EllipticCurve) -> tuple[Path, Path]:
    """An EC key pair as PEM files, as ``openssl ec`` writes them: (private, public)."""
    key = ec.generate_private_key(curve)
    private, public = folder / "key.pem", folder / "pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture(params=sorted(CURVES))
def key_files(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    return write_key_files(tmp_path, CURVES[request.param]())


def test_moc_accepts_what_model_signing_signs(model: Path, key_files: tuple[Path, Path]) -> None:
    private, public = key_files
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
        model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"], ignore_git_paths=True)
    ).sign(model, model / "model.sig")
    trusted = load_public_key(public.read_bytes())

    signed = verify(read((model / "model.sig").read_bytes()), [trusted])

    assert signed.key_id == key_id(trusted)
    assert signed.subject == "tiny-model"
    assert "model.sig" in signed.ignore_paths
    assert signed.resources == digests(model, {"model.sig"})
    assert list(signed.resources) == order(signed.resources)


def model_signing_cli(model: Path, public: Path) -> subprocess.CompletedProcess[str]:
    command = ["verify", "key", str(model), "--signature", str(model / "model.sig")]
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *command, "--public_key", str(public)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_model_signing_accepts_what_moc_signs(model: Path, key_files: tuple[Path, Path]) -> None:
    private, public = key_files
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    (model / "model.sig").write_bytes(
        sign(key, model.name, digests(model, set()), ["model.sig", ".git"])
    )
    verifier = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public)

    verifier.verify(model, model / "model.sig")
    passed = model_signing_cli(model, public)
    assert passed.returncode == 0, passed.stderr

    weights = bytearray((model / "weights.bin").read_bytes())
    weights[100] ^= 1
    (model / "weights.bin").write_bytes(weights)
    signed = verify(
        read((model / "model.sig").read_bytes()), [load_public_key(public.read_bytes())]
    )

    assert compare(signed.resources, digests(model, {"model.sig"})) == ["changed: weights.bin"]
    with pytest.raises(ValueError, match=r"Hash mismatch for 'weights\.bin'"):
        verifier.verify(model, model / "model.sig")
    refused = model_signing_cli(model, public)
    assert refused.returncode == 1, refused.stdout


def test_resources_are_in_model_signings_order(tmp_path: Path) -> None:
    for name in ORDER_NAMES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)

    manifest = model_signing.hashing.hash(tmp_path)
    theirs = [descriptor.identifier for descriptor in manifest.resource_descriptors()]

    assert theirs == ORDER_NAMES
    assert order(reversed(ORDER_NAMES)) == theirs
