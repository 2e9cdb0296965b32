import logging
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from moc.artifacts.keys import SigningKeys, load_public_key
from moc.artifacts.signing import key_id, read, sign, verify
from moc.errors import ArtifactInvalid, InvalidRequest, SigningKeyExists, SigningKeyNotFound


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keys(tmp_path: Path) -> SigningKeys:
    return SigningKeys(tmp_path / "data" / "keys")


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_a_generated_key_is_kept_in_private_files(keys: SigningKeys, kind: str) -> None:
    info = keys.generate("release-1", type=kind)

    private = keys.private_key("release-1")
    public = load_public_key((keys.folder / "release-1.pub").read_bytes())
    assert info.type == kind
    assert info.id == key_id(private.public_key()) == key_id(public)
    assert info.public_pem == (keys.folder / "release-1.pub").read_text()
    assert (keys.folder / "release-1.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert mode(keys.folder) == 0o700
    assert mode(keys.folder / "release-1.key") == 0o600
    assert sorted(p.name for p in keys.folder.iterdir()) == ["release-1.key", "release-1.pub"]
    assert verify(read(sign(private, "m", {})), [public]).key_id == info.id


def test_keys_are_listed_by_name_and_found_by_name(keys: SigningKeys) -> None:
    assert keys.list() == []
    b = keys.generate("b")
    a = keys.generate("a", type="ecdsa-p256")

    assert keys.list() == [a, b]
    assert keys.get("b") == b
    with pytest.raises(SigningKeyNotFound, match=r"'c' \(known: a, b\)"):
        keys.get("c")


def test_a_name_in_use_is_refused_and_the_first_key_kept(keys: SigningKeys) -> None:
    first = keys.generate("k")

    with pytest.raises(SigningKeyExists, match="'k'"):
        keys.generate("k", type="ecdsa-p256")

    assert keys.get("k") == first
    assert [p.name for p in keys.folder.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "name", ["", "-lead", "a/b", "../up", ".hidden", "x" * 65, "sp ace", "trailing\n"]
)
def test_a_bad_name_is_refused_naming_the_field(keys: SigningKeys, name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        keys.generate(name)

    assert caught.value.field == "name"
    assert caught.value.details["value"] == name
    assert "[A-Za-z0-9]" in str(caught.value)


def test_an_unknown_type_is_refused(keys: SigningKeys) -> None:
    with pytest.raises(InvalidRequest, match="type: must be one of ed25519, ecdsa-p256"):
        keys.generate("k", type="rsa")


def test_loose_permissions_are_tightened_when_the_key_is_read(
    keys: SigningKeys, caplog: pytest.LogCaptureFixture
) -> None:
    keys.generate("k")
    path = keys.folder / "k.key"
    path.chmod(0o644)

    with caplog.at_level(logging.WARNING, logger="moc.artifacts.keys"):
        keys.private_key("k")

    assert mode(path) == 0o600
    assert "removing group/other permissions" in caplog.text


def test_an_openssl_ec_key_can_be_added(keys: SigningKeys) -> None:
    # `openssl ecparam -genkey -name prime256v1` writes SEC1 ("EC PRIVATE KEY")
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")

    info = keys.add_private("imported", pem)

    assert info.type == "ecdsa-p384"
    assert info.id == key_id(key.public_key())
    assert mode(keys.folder / "imported.key") == 0o600


def test_keys_that_cannot_be_used_are_not_added(keys: SigningKeys) -> None:
    p521 = ec.generate_private_key(ec.SECP521R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encrypted = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )

    with pytest.raises(InvalidRequest, match="pem: key type ECDSA secp521r1"):
        keys.add_private("k", p521)
    with pytest.raises(InvalidRequest, match="pem: an encrypted private key"):
        keys.add_private("k", encrypted)
    with pytest.raises(InvalidRequest, match="pem: not a PEM private key"):
        keys.add_private("k", b"hello")
    assert keys.list() == []


def test_ensure_makes_the_default_key_once(keys: SigningKeys) -> None:
    made = keys.ensure()

    assert made.name == "default"
    assert made.type == "ed25519"
    assert keys.ensure() == made
    assert keys.list() == [made]


def test_a_public_key_is_loaded_only_if_moc_can_verify_with_it() -> None:
    p521 = ec.generate_private_key(ec.SECP521R1()).public_key()
    pem = p521.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    with pytest.raises(ArtifactInvalid, match="key type ECDSA secp521r1"):
        load_public_key(pem)
    with pytest.raises(ArtifactInvalid, match="public key: not a PEM SubjectPublicKeyInfo"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
