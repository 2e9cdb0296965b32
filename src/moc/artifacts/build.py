"""The registry built from the configuration, for one daemon."""

from __future__ import annotations

from collections.abc import Callable

from moc.artifacts.blobs import Blobs
from moc.artifacts.digests import DigestMemory
from moc.artifacts.keys import SigningKeys, load_public_key
from moc.artifacts.registry import Registry
from moc.artifacts.signing import key_id
from moc.artifacts.store import ArtifactStore
from moc.artifacts.trust import TrustedKey, TrustPolicy
from moc.clock import Clock
from moc.config import ArtifactsConfig, Config
from moc.errors import ArtifactInvalid, ConfigError
from moc.store.sqlite import Database


def trusted_keys(config: ArtifactsConfig) -> list[TrustedKey]:
    """The configured public keys; ConfigError naming the one that cannot be read."""
    found = []
    for i, entry in enumerate(config.trusted_keys):
        where = f"artifacts.trusted_keys[{i}]"
        try:
            key = load_public_key(entry.path.expanduser().read_bytes())
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read {entry.path}: {exc.strerror}") from exc
        except ArtifactInvalid as exc:
            raise ConfigError(f"{where}: {entry.path}: {exc.message}") from exc
        expires = entry.expires_at.timestamp() if entry.expires_at is not None else None
        name = entry.name or entry.path.name
        found.append(TrustedKey(name=name, key=key, id=key_id(key), expires_at=expires))
    return found


def build_registry(
    config: Config,
    db: Database,
    clock: Clock,
    model_names: Callable[[], set[str]],
) -> Registry:
    root = config.data_dir.expanduser()
    settings = config.artifacts
    policy = TrustPolicy(trusted_keys(settings), settings.revoked_keys, settings.require_signature)
    return Registry(
        ArtifactStore(db),
        Blobs(root / "artifacts"),
        SigningKeys(root / "keys"),
        policy,
        DigestMemory(enabled=settings.remember_verified),
        clock,
        settings.signing_key,
        model_names,
    )
