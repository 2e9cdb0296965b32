"""Signatures over an artifact's files, in the OpenSSF model-signing format.

moc writes and reads the signature that ``model_signing sign key`` and
``model_signing verify key`` (model-signing 1.1) do, so either tool checks the
other's work: a Sigstore bundle (v0.3 JSON) holding a DSSE envelope whose
payload is an in-toto statement::

    bundle   {mediaType, verificationMaterial: {publicKey: {hint}, tlogEntries: []},
              dsseEnvelope: {payload: b64(statement), payloadType, signatures: [{sig, keyid}]}}
    statement {_type, subject: [{name, digest: {sha256: ROOT}}],
               predicateType: https://model_signing/signature/v1.0,
               predicate: {serialization: {method: files, hash_type: sha256,
                                           ignore_paths, allow_symlinks: false},
                           resources: [{name, algorithm: sha256, digest}, ...]}}

ROOT is the sha256 of the resources' raw digests concatenated in the listed
order, which is model-signing's: by path components (:func:`order`). The
signature covers the DSSE pre-authentication encoding (PAE) of the payload
bytes, so the payload is verified as sent and never re-serialized. The hint is
the sha256 of the signer's SubjectPublicKeyInfo PEM; it picks the trusted key
without trying each one.

ECDSA P-256 and P-384 signatures are DER, over the curve's own hash, as
model-signing makes them. Ed25519, moc's default key type, fits the same
bundle (the signature is Ed25519's over the PAE bytes); model-signing 1.1
cannot check those, which only matters to someone who wants it to.

This module is pure: bytes and dicts in, bytes and values out. Hashing the
files and deciding whom to trust belong to its callers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from moc.errors import ArtifactInvalid, ArtifactUntrusted

Digests = Mapping[str, str]
"""Relative POSIX path of each file → its sha256, as lowercase hex."""

SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"

_CURVES: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "secp256r1": ("ecdsa-p256", hashes.SHA256),
    "secp384r1": ("ecdsa-p384", hashes.SHA384),
}
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Signed:
    """What a signature says: who signed which files (relative path → sha256 hex)."""

    key_id: str
    subject: str
    resources: dict[str, str]
    ignore_paths: tuple[str, ...]


@dataclass(frozen=True)
class Envelope:
    """A bundle whose shape was checked but whose signature was not yet: until
    :func:`verify` says otherwise, ``signed.key_id`` is only the hint it claims."""

    hint: str | None
    signed: Signed
    payload: bytes
    signature: bytes


def key_id(public_key: PublicKeyTypes) -> str:
    """The key's id: the sha256 hex of its SubjectPublicKeyInfo PEM (model-signing's hint)."""
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def key_type(public_key: PublicKeyTypes) -> str:
    """``ed25519``, ``ecdsa-p256`` or ``ecdsa-p384``; any other key is refused."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in _CURVES:
        return _CURVES[public_key.curve.name][0]
    raise _unsupported(public_key)


def order(names: Iterable[str]) -> list[str]:
    """model-signing's resource order: by path components, so ``a/b`` sorts before ``a b``."""
    return sorted(names, key=lambda name: name.split("/"))


def sign(
    private_key: SigningKey,
    subject_name: str,
    resources: Digests,
    ignore_paths: Sequence[str] = (),
) -> bytes:
    """The bundle (JSON bytes) that signs ``resources`` under ``subject_name``."""
    public_key = private_key.public_key()
    key_type(public_key)  # refuses a curve that no verifier here would accept
    names = order(resources)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": subject_name, "digest": {"sha256": _root([resources[n] for n in names])}}
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "ignore_paths": sorted(set(ignore_paths)),
                "allow_symlinks": False,
            },
            "resources": [
                {"name": n, "algorithm": "sha256", "digest": resources[n]} for n in names
            ],
        },
    }
    payload = json.dumps(statement, indent=2).encode()
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(_pae(payload))
    else:
        signature = private_key.sign(_pae(payload), _ecdsa(private_key.public_key()))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_id(public_key)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, indent=2).encode()


def read(bundle: bytes) -> Envelope:
    """Parse a bundle and check its shape; the signature itself is :func:`verify`'s job."""
    top = _object(_json(bundle, "bundle"), "bundle")
    if top.get("mediaType") != BUNDLE_MEDIA_TYPE:
        _invalid(f"mediaType {top.get('mediaType')!r} is not {BUNDLE_MEDIA_TYPE}")
    material = _object(top.get("verificationMaterial"), "verificationMaterial")
    hint = _object(material.get("publicKey", {}), "verificationMaterial.publicKey").get("hint")
    if hint is not None and not isinstance(hint, str):
        _invalid("verificationMaterial.publicKey.hint is not a string")
    envelope = _object(top.get("dsseEnvelope"), "dsseEnvelope")
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        _invalid(f"payloadType {envelope.get('payloadType')!r} is not {PAYLOAD_TYPE}")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        _invalid("dsseEnvelope.signatures does not hold exactly one signature")
    signature = _base64(_object(signatures[0], "signature").get("sig"), "signatures[0].sig")
    payload = _base64(envelope.get("payload"), "dsseEnvelope.payload")
    signed = _statement(_object(_json(payload, "payload"), "payload"))
    return Envelope(hint or None, replace(signed, key_id=hint or ""), payload, signature)


def verify(envelope: Envelope, public_keys: Iterable[PublicKeyTypes]) -> Signed:
    """What ``envelope`` says, once a key among ``public_keys`` verifies its signature."""
    candidates = list(public_keys)
    if envelope.hint is not None:
        who = f"signature by key {envelope.hint[:12]}…"
        candidates = [k for k in candidates if key_id(k) == envelope.hint]
        if not candidates:
            raise ArtifactUntrusted(f"{who}: no trusted key has that id", key_id=envelope.hint)
    else:
        who = "signature without a key id"
    for public_key in candidates:
        if _verifies(public_key, envelope.signature, _pae(envelope.payload)):
            return replace(envelope.signed, key_id=key_id(public_key))
    raise ArtifactUntrusted(f"{who}: the signature does not verify", key_id=envelope.hint)


def compare(expected: Digests, actual: Digests) -> list[str]:
    """How ``actual`` differs from ``expected``: ``changed: x``, ``missing: y``, ``extra: z``."""
    changed = [f"changed: {n}" for n in order(expected) if n in actual and actual[n] != expected[n]]
    missing = [f"missing: {n}" for n in order(expected) if n not in actual]
    extra = [f"extra: {n}" for n in order(actual) if n not in expected]
    return changed + missing + extra


def _pae(payload: bytes) -> bytes:
    kind = PAYLOAD_TYPE.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _root(digests: Iterable[str]) -> str:
    return hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()


def _verifies(public_key: PublicKeyTypes, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in _CURVES:
            public_key.verify(signature, message, _ecdsa(public_key))
        else:
            raise _unsupported(public_key)
    except InvalidSignature:
        return False
    return True


def _ecdsa(public_key: ec.EllipticCurvePublicKey) -> ec.ECDSA:
    # model-signing pairs each curve with the hash of its size; so must we
    return ec.ECDSA(_CURVES[public_key.curve.name][1]())


def _unsupported(public_key: PublicKeyTypes) -> ArtifactInvalid:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        shown = f"ECDSA {public_key.curve.name}"
    else:
        shown = type(public_key).__name__
    return ArtifactInvalid(
        f"key type {shown}: moc signs with ed25519, ecdsa-p256 or ecdsa-p384 keys",
        key_type=shown,
    )


def _statement(statement: dict[str, Any]) -> Signed:
    if statement.get("_type") != STATEMENT_TYPE:
        _invalid(f"statement _type {statement.get('_type')!r} is not {STATEMENT_TYPE}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        _invalid(f"predicateType {statement.get('predicateType')!r} is not {PREDICATE_TYPE}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        _invalid("statement does not have exactly one subject")
    subject = _object(subjects[0], "subject")
    root = _object(subject.get("digest"), "subject.digest").get("sha256")
    if not isinstance(subject.get("name"), str) or not _is_hex64(root):
        _invalid("subject needs a name and a sha256 digest of 64 hex digits")
    predicate = _object(statement.get("predicate"), "predicate")
    method = _object(predicate.get("serialization"), "predicate.serialization")
    if method.get("method") != "files" or method.get("hash_type") != "sha256":
        _invalid(
            f"serialization {method.get('method')!r} with {method.get('hash_type')!r}: "
            "only method 'files' with hash_type 'sha256' is known"
        )
    ignore_paths = method.get("ignore_paths", [])
    if not isinstance(ignore_paths, list) or not all(isinstance(p, str) for p in ignore_paths):
        _invalid("serialization.ignore_paths is not a list of strings")
    listed = predicate.get("resources")
    if not isinstance(listed, list):
        _invalid("predicate.resources is not a list")
    resources: dict[str, str] = {}
    for entry in listed:
        name, digest = _resource(_object(entry, "resource"))
        if name in resources:
            _invalid(f"resource {name!r}: named twice")
        resources[name] = digest
    if _root(resources.values()) != root.lower():
        _invalid("subject digest does not match the resources' digests")
    return Signed("", subject["name"], resources, tuple(ignore_paths))


def _resource(entry: dict[str, Any]) -> tuple[str, str]:
    name, digest = entry.get("name"), entry.get("digest")
    if not isinstance(name, str):
        _invalid(f"resource without a name: {entry!r}")
    if name.startswith("/"):
        _invalid(f"resource {name!r}: an absolute path")
    if "\\" in name or "\0" in name:
        _invalid(f"resource {name!r}: not a POSIX path")
    parts = name.split("/")
    if ".." in parts:
        _invalid(f"resource {name!r}: a path that leaves the artifact")
    if "" in parts or "." in parts:
        _invalid(f"resource {name!r}: an empty or '.' path part")
    if entry.get("algorithm") != "sha256":
        _invalid(f"resource {name!r}: algorithm {entry.get('algorithm')!r} is not sha256")
    if not _is_hex64(digest):
        _invalid(f"resource {name!r}: digest {digest!r} is not 64 hex digits")
    return name, digest.lower()


def _is_hex64(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        _invalid(f"{what} is not JSON ({exc})")


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _invalid(f"{what} is not a JSON object")
    return value


def _base64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (TypeError, ValueError):
        _invalid(f"{what} is not base64")


def _invalid(problem: str) -> NoReturn:
    raise ArtifactInvalid(f"signature: {problem}")
