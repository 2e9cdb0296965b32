"""Whose signatures moc accepts: the trust policy, decided without I/O.

Trusted are moc's own signing keys (made in its data dir) and the public keys
listed in ``artifacts.trusted_keys``; a key listed in ``artifacts.revoked_keys``
is refused whatever else says, and a trusted key past its ``expires_at`` is
refused from then on. With ``artifacts.require_signature`` an artifact that
carries no signature is refused too; without it, an unsigned artifact is
checked by its digests alone.

A signature moc makes covers the artifact's files and its manifest, and is
accepted only over exactly those: a valid signature over another manifest
(another version, other metrics) is refused, since the manifest is what says
what the files are. A signature another tool made over a folder covers its
files alone; the registry accepts one only when a folder is added (moc then
names and numbers the version itself), never in an imported bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from moc.artifacts import signing
from moc.errors import ArtifactInvalid, ArtifactUnsigned, ArtifactUntrusted


@dataclass(frozen=True)
class TrustedKey:
    name: str
    key: PublicKeyTypes
    id: str
    expires_at: float | None = None  # Unix time; None: never


def short(key_id: str) -> str:
    return key_id[:12] + "…"


class TrustPolicy:
    def __init__(
        self, keys: Sequence[TrustedKey], revoked: Sequence[str], require_signature: bool
    ) -> None:
        self._keys = {k.id: k for k in keys}
        self._revoked = tuple(revoked)
        self.require_signature = require_signature

    def trusted(self) -> list[TrustedKey]:
        return list(self._keys.values())

    def with_keys(self, more: Sequence[TrustedKey]) -> TrustPolicy:
        """The policy trusting ``more`` too; a key configured here keeps its
        settings (an expiry) where ``more`` names it again."""
        return TrustPolicy([*more, *self._keys.values()], self._revoked, self.require_signature)

    def revoked(self, key_id: str) -> bool:
        return any(key_id.startswith(r) for r in self._revoked)

    def check(self, signature: bytes | None, digests: dict[str, str], now: float) -> str | None:
        """The id of the trusted key that signed exactly ``digests`` (path →
        SHA-256, the manifest's own among them), None for an unsigned artifact
        that the policy lets through; otherwise ArtifactUnsigned or
        ArtifactUntrusted naming the key."""
        if signature is None:
            if self.require_signature:
                raise ArtifactUnsigned(
                    "the artifact is not signed and artifacts.require_signature is on"
                )
            return None
        try:
            envelope = signing.read(signature)
        except ArtifactInvalid as exc:
            raise ArtifactUntrusted(f"its signature cannot be read: {exc.message}") from None
        hint = envelope.hint
        if hint and self.revoked(hint):
            raise ArtifactUntrusted(f"signed by key {short(hint)}, which is revoked", key=hint)
        signed = signing.verify(envelope, [k.key for k in self._keys.values()])
        key = self._keys[signed.key_id]
        if self.revoked(key.id):
            raise ArtifactUntrusted(f"signed by key {short(key.id)}, which is revoked", key=key.id)
        if key.expires_at is not None and now >= key.expires_at:
            when = datetime.fromtimestamp(key.expires_at, UTC).isoformat()
            raise ArtifactUntrusted(
                f"signed by key {short(key.id)} ({key.name}), which expired at {when}", key=key.id
            )
        problems = signing.compare(signed.resources, digests)
        if problems:
            raise ArtifactUntrusted(
                f"the signature by key {short(key.id)} ({key.name}) is over other files: "
                + "; ".join(problems[:3]),
                key=key.id,
            )
        return key.id
