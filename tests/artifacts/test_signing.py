import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from moc.artifacts.signing import (
    BUNDLE_MEDIA_TYPE,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    Signed,
    SigningKey,
    compare,
    key_id,
    key_type,
    order,
    read,
    sign,
    verify,
)
from moc.errors import ArtifactInvalid, ArtifactUntrusted

RESOURCES = {
    "weights.bin": hashlib.sha256(b"weights").hexdigest(),
    "config.json": hashlib.sha256(b"{}").hexdigest(),
    "sub/tokenizer.txt": hashlib.sha256(b"tok").hexdigest(),
}

MAKERS: dict[str, Callable[[], SigningKey]] = {
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
}


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return ed25519.Ed25519PrivateKey.generate()


def bundle_of(key: SigningKey) -> dict[str, Any]:
    return json.loads(sign(key, "model", RESOURCES, ["model.sig"]))


def statement_of(bundle: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def with_statement(bundle: dict[str, Any], statement: dict[str, Any]) -> bytes:
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps(bundle).encode()


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_signature_verifies_with_its_key_for_each_key_type(kind: str) -> None:
    private = MAKERS[kind]()
    public = private.public_key()
    assert key_type(public) == kind

    signed = verify(read(sign(private, "model", RESOURCES, ["z", "model.sig", "z"])), [public])

    assert signed == Signed(key_id(public), "model", RESOURCES, ("model.sig", "z"))


def test_the_bundle_has_model_signings_shape(key: SigningKey) -> None:
    bundle = bundle_of(key)
    statement = statement_of(bundle)

    assert bundle["mediaType"] == BUNDLE_MEDIA_TYPE
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": key_id(key.public_key())},
        "tlogEntries": [],
    }
    assert bundle["dsseEnvelope"]["payloadType"] == PAYLOAD_TYPE
    assert bundle["dsseEnvelope"]["signatures"][0]["keyid"] == ""
    assert statement["predicateType"] == PREDICATE_TYPE
    assert statement["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "ignore_paths": ["model.sig"],
        "allow_symlinks": False,
    }
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == ["config.json", "sub/tokenizer.txt", "weights.bin"]
    root = hashlib.sha256(b"".join(bytes.fromhex(RESOURCES[n]) for n in names)).hexdigest()
    assert statement["subject"] == [{"name": "model", "digest": {"sha256": root}}]


def test_ed25519_signatures_are_reproducible(key: SigningKey) -> None:
    assert sign(key, "m", RESOURCES, ["b", "a"]) == sign(key, "m", dict(RESOURCES), ["a", "b"])


def test_a_changed_payload_does_not_verify(key: SigningKey) -> None:
    bundle = bundle_of(key)
    statement = statement_of(bundle)
    statement["subject"][0]["name"] = "modex"

    envelope = read(with_statement(bundle, statement))

    with pytest.raises(ArtifactUntrusted, match=r"signature by key [0-9a-f]{12}…: the signature"):
        verify(envelope, [key.public_key()])


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_flipped_signature_byte_does_not_verify(kind: str) -> None:
    private = MAKERS[kind]()
    bundle = bundle_of(private)
    signature = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    signature[len(signature) // 2] ^= 1
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(signature).decode()

    with pytest.raises(ArtifactUntrusted, match=key_id(private.public_key())[:12]):
        verify(read(json.dumps(bundle).encode()), [private.public_key()])


def test_another_key_is_not_trusted(key: SigningKey) -> None:
    other = ed25519.Ed25519PrivateKey.generate().public_key()

    with pytest.raises(ArtifactUntrusted, match="no trusted key has that id") as caught:
        verify(read(sign(key, "m", RESOURCES)), [other])

    assert caught.value.details["key_id"] == key_id(key.public_key())


def test_without_a_hint_each_trusted_key_is_tried(key: SigningKey) -> None:
    bundle = bundle_of(key)
    del bundle["verificationMaterial"]["publicKey"]
    envelope = read(json.dumps(bundle).encode())
    others = [MAKERS[kind]().public_key() for kind in sorted(MAKERS)]

    assert envelope.hint is None
    assert verify(envelope, [*others, key.public_key()]).key_id == key_id(key.public_key())
    with pytest.raises(ArtifactUntrusted, match="without a key id: the signature does not verify"):
        verify(envelope, others)


def test_keys_of_other_types_are_refused() -> None:
    p521 = ec.generate_private_key(ec.SECP521R1())

    with pytest.raises(ArtifactInvalid, match="key type ECDSA secp521r1"):
        key_type(p521.public_key())
    with pytest.raises(ArtifactInvalid, match="secp521r1"):
        sign(p521, "m", RESOURCES)


def resource(name: str, digest: str = "0" * 64) -> dict[str, str]:
    return {"name": name, "algorithm": "sha256", "digest": digest}


def set_resources(*resources: dict[str, str]) -> Callable[[dict[str, Any]], None]:
    def change(statement: dict[str, Any]) -> None:
        statement["predicate"]["resources"] = list(resources)

    return change


STATEMENT_FLAWS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "leaves": (set_resources(resource("a/../b")), "resource 'a/../b': a path that leaves"),
    "absolute": (set_resources(resource("/etc/passwd")), "resource '/etc/passwd': an absolute"),
    "empty part": (set_resources(resource("a//b")), "resource 'a//b': an empty"),
    "backslash": (set_resources(resource("a\\b")), "not a POSIX path"),
    "twice": (set_resources(resource("a"), resource("a")), "resource 'a': named twice"),
    "short digest": (set_resources(resource("a", "0" * 63)), "resource 'a': digest '0{63}' is not"),
    "algorithm": (
        set_resources({**resource("a"), "algorithm": "sha512"}),
        "algorithm 'sha512' is not sha256",
    ),
    "root": (
        lambda s: s["predicate"]["resources"].reverse(),
        "subject digest does not match the resources",
    ),
    "method": (
        lambda s: s["predicate"]["serialization"].update(method="shards"),
        "serialization 'shards'",
    ),
    "predicate type": (lambda s: s.update(predicateType="x"), "predicateType 'x' is not"),
    "subjects": (lambda s: s["subject"].append(s["subject"][0]), "exactly one subject"),
}


@pytest.mark.parametrize("flaw", sorted(STATEMENT_FLAWS))
def test_a_malformed_statement_is_refused_naming_the_problem(key: SigningKey, flaw: str) -> None:
    change, problem = STATEMENT_FLAWS[flaw]
    bundle = bundle_of(key)
    statement = statement_of(bundle)
    change(statement)

    with pytest.raises(ArtifactInvalid, match=f"^signature: .*{problem}"):
        read(with_statement(bundle, statement))


def two_signatures(bundle: dict[str, Any]) -> None:
    bundle["dsseEnvelope"]["signatures"] *= 2


BUNDLE_FLAWS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "media type": (
        lambda b: b.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.2"),
        "mediaType 'application/vnd.dev.sigstore.bundle",
    ),
    "payload type": (
        lambda b: b["dsseEnvelope"].update(payloadType="text/plain"),
        "payloadType 'text/plain'",
    ),
    "signatures": (two_signatures, "exactly one signature"),
    "base64": (lambda b: b["dsseEnvelope"].update(payload="not base64!"), "payload is not base64"),
    "envelope": (lambda b: b.pop("dsseEnvelope"), "dsseEnvelope is not a JSON object"),
}


@pytest.mark.parametrize("flaw", sorted(BUNDLE_FLAWS))
def test_a_malformed_bundle_is_refused_naming_the_problem(key: SigningKey, flaw: str) -> None:
    change, problem = BUNDLE_FLAWS[flaw]
    bundle = bundle_of(key)
    change(bundle)

    with pytest.raises(ArtifactInvalid, match=f"^signature: .*{problem}"):
        read(json.dumps(bundle).encode())


def test_bytes_that_are_not_json_are_refused() -> None:
    with pytest.raises(ArtifactInvalid, match="bundle is not JSON"):
        read(b"\x00garbage")


def test_compare_names_each_difference() -> None:
    actual = {**RESOURCES, "sub/tokenizer.txt": "1" * 64, "extra.bin": "2" * 64}
    del actual["config.json"]

    assert compare(RESOURCES, RESOURCES) == []
    assert compare(RESOURCES, actual) == [
        "changed: sub/tokenizer.txt",
        "missing: config.json",
        "extra: extra.bin",
    ]


def test_order_is_by_path_components() -> None:
    names = ["é", "a0", "a.txt", "a-c/x/y", "a b", "a/b", "B"]

    assert order(names) == ["B", "a/b", "a b", "a-c/x/y", "a.txt", "a0", "é"]
