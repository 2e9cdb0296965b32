"""moc's signing keys: one private key file per name in a folder only moc reads.

Each key is ``NAME.key`` (PKCS#8 PEM, unencrypted, mode 0600) with ``NAME.pub``
beside it (SubjectPublicKeyInfo PEM), the file to hand to whoever should
trust the key, ``model_signing verify key --public_key NAME.pub`` included.
What moc reports of a key is read from ``NAME.key``; ``.pub`` is only a copy
for others.

A key is never overwritten: a signature made with the old key would stop
verifying against the new one with nothing to say why.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from moc.artifacts.signing import PublicKey, SigningKey, key_id, key_type
from moc.errors import (
    ArtifactInvalid,
    InvalidRequest,
    SigningKeyExists,
    SigningKeyNotFound,
)

log = logging.getLogger(__name__)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
GENERATED_TYPES = ("ed25519", "ecdsa-p256")


@dataclass(frozen=True)
class KeyInfo:
    """A signing key as others may see it: never the private half."""

    name: str
    type: str
    id: str
    public_pem: str
    created_at: float


class SigningKeys:
    """The signing keys in ``folder`` (``data_dir / "keys"``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def generate(self, name: str, type: str = "ed25519") -> KeyInfo:
        """Make a new key of that type (``ed25519`` or ``ecdsa-p256``) under ``name``."""
        _check_name(name)
        key: SigningKey
        if type == "ed25519":
            key = ed25519.Ed25519PrivateKey.generate()
        elif type == "ecdsa-p256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise InvalidRequest(
                "type",
                f"must be one of {', '.join(GENERATED_TYPES)}",
                value=type,
                limit=GENERATED_TYPES,
            )
        return self._store(name, key)

    def add_private(self, name: str, pem: bytes) -> KeyInfo:
        """Keep an existing unencrypted PEM private key (PKCS#8 or OpenSSL's EC form)."""
        _check_name(name)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except TypeError:
            raise InvalidRequest(
                "pem", "an encrypted private key; decrypt it first (openssl pkey -in K -out P)"
            ) from None
        except ValueError as exc:
            raise InvalidRequest("pem", f"not a PEM private key ({exc})") from None
        try:
            usable = _signing_key(key)
        except ArtifactInvalid as exc:
            raise InvalidRequest("pem", str(exc)) from None
        return self._store(name, usable)

    def list(self) -> builtins.list[KeyInfo]:
        """Every key, sorted by name."""
        return [self.get(name) for name in self._names()]

    def get(self, name: str) -> KeyInfo:
        """The key of that name."""
        key = self.private_key(name)
        path = self._path(name, ".key")
        return KeyInfo(
            name=name,
            type=key_type(key.public_key()),
            id=key_id(key.public_key()),
            public_pem=_public_pem(key.public_key()).decode(),
            created_at=path.stat().st_mtime,
        )

    def private_key(self, name: str) -> SigningKey:
        """The private key of that name, to sign with."""
        _check_name(name)
        path = self._path(name, ".key")
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            known = ", ".join(self._names()) or "none"
            raise SigningKeyNotFound(
                f"no signing key named {name!r} (known: {known})", name=name
            ) from None
        if mode & 0o077:
            # Anyone who can read the file can sign artifacts that moc, and
            # everyone who trusts this key, will load; close it before use
            # rather than refuse, since moc owns this folder and the fix is sure.
            log.warning("signing key %s: removing group/other permissions from %s", name, path)
            path.chmod(stat.S_IMODE(mode) & 0o700)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (TypeError, ValueError) as exc:
            raise ArtifactInvalid(
                f"signing key {name!r}: {path} is not an unencrypted PEM private key ({exc})",
                name=name,
            ) from None
        return _signing_key(key)

    def ensure(self, name: str = "default") -> KeyInfo:
        """The key of that name, made (ed25519) if there is none yet."""
        try:
            return self.get(name)
        except SigningKeyNotFound:
            pass
        try:
            return self.generate(name)
        except SigningKeyExists:
            # another caller made it between our look and our write
            return self.get(name)

    def _store(self, name: str, key: SigningKey) -> KeyInfo:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder_mode = stat.S_IMODE(self.folder.stat().st_mode)
        if folder_mode & 0o077:
            log.warning("signing keys: removing group/other permissions from %s", self.folder)
            self.folder.chmod(folder_mode & 0o700)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            _write(self._path(name, ".key"), private_pem, exclusive=True)
        except FileExistsError:
            raise SigningKeyExists(
                f"a signing key named {name!r} exists already", name=name
            ) from None
        _write(self._path(name, ".pub"), _public_pem(key.public_key()), exclusive=False)
        return self.get(name)

    def _names(self) -> builtins.list[str]:
        return sorted(p.stem for p in self.folder.glob("*.key") if _NAME.fullmatch(p.stem))

    def _path(self, name: str, suffix: str) -> Path:
        return self.folder / f"{name}{suffix}"


def load_public_key(pem: bytes) -> PublicKey:
    """A trusted public key from its SubjectPublicKeyInfo PEM (what ``NAME.pub`` holds)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ArtifactInvalid(f"public key: not a PEM SubjectPublicKeyInfo ({exc})") from None
    key_type(key)  # refuses, naming it, a type moc cannot verify with
    return cast(PublicKey, key)


def _signing_key(key: PrivateKeyTypes) -> SigningKey:
    key_type(key.public_key())  # refuses, naming it, a type moc does not sign with
    return cast(SigningKey, key)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidRequest("name", f"does not match {NAME_PATTERN}", value=name)


def _public_pem(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write ``data`` whole (readers never see half a key), mode 0600.

    With ``exclusive`` an existing file is kept and FileExistsError raised:
    the temporary file is hard-linked into place, which fails rather than
    replaces, where ``os.replace`` would overwrite a key made meanwhile.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
