"""The key ring: API keys made, listed, revoked and rotated, and the check of
a presented key.

A key reads ``moc_<id>_<secret>``: the id finds the record and the secret's
SHA-256 is compared with the stored one in constant time. Secrets are random
256-bit strings, so a plain SHA-256 is as strong as a slow hash would be and
costs a microsecond per request. The secret is shown once, in the answer that
made it, and kept nowhere.

``MOC_ADMIN_KEY`` (any string of at least 16 characters the operator chose)
is the admin key that a fresh daemon is administered with; it lives only in
memory, under the id ``env-admin``.

Owner: the event-loop thread. Each change writes the store, then the ring's
dict, with no await between.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace

from moc.auth.model import ApiKey
from moc.auth.principal import Limits, Principal
from moc.auth.roles import Role
from moc.auth.store import AuthStore
from moc.clock import Clock
from moc.errors import ApiKeyNotFound, ConfigError, InvalidRequest, Unauthenticated

PREFIX = "moc_"
ENV_ADMIN_ID = "env-admin"
MIN_ENV_KEY = 16
MAX_KEYS = 10_000
_KEY_RE = re.compile(r"^moc_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _same(a: bytes, b: bytes | None) -> bool:
    return b is not None and hmac.compare_digest(a, b)


class KeyRing:
    def __init__(self, store: AuthStore, clock: Clock, env_admin_key: str | None) -> None:
        self._store = store
        self._clock = clock
        self._keys: dict[str, ApiKey] = {}
        self._env_hash: bytes | None = None
        self._env_principal = Principal(ENV_ADMIN_ID, Role.ADMIN, "MOC_ADMIN_KEY")
        self.last_used: dict[str, float] = {}
        self.on_change: Callable[[ApiKey], None] = lambda _: None  # after each change stored
        if env_admin_key is not None:
            if len(env_admin_key) < MIN_ENV_KEY:
                raise ConfigError(
                    f"MOC_ADMIN_KEY is {len(env_admin_key)} characters; at least {MIN_ENV_KEY} "
                    "are needed (try: openssl rand -hex 32)"
                )
            self._env_hash = _digest(env_admin_key)

    def open(self) -> None:
        self._keys = {key.id: key for key in self._store.all_keys()}

    @property
    def has_env_admin(self) -> bool:
        return self._env_hash is not None

    # --- checking a presented key ----------------------------------------------------
    def principal(self, presented: str) -> Principal:
        """The caller ``presented`` names; Unauthenticated if it names none."""
        now = self._clock.now()
        found = _KEY_RE.match(presented)
        if found is None:
            if self._env_hash is not None and _same(_digest(presented), self._env_hash):
                return self._env_principal
            raise Unauthenticated("the API key is malformed or unknown")
        key = self._keys.get(found.group(1))
        digest = _digest(found.group(2))
        if key is None:
            raise Unauthenticated("the API key is malformed or unknown")
        current = _same(digest, key.secret_hash)
        if not current and not (
            _same(digest, key.old_hash) and key.old_until is not None and now < key.old_until
        ):
            raise Unauthenticated(f"the API key {key.id} does not match its secret")
        if key.revoked_at is not None:
            raise Unauthenticated(f"the API key {key.id} was revoked")
        if key.expires_at is not None and now >= key.expires_at:
            raise Unauthenticated(f"the API key {key.id} has expired")
        self.last_used[key.id] = now
        return key.principal()

    # --- administering keys ----------------------------------------------------------
    def create(
        self,
        name: str,
        role: Role,
        models: tuple[str, ...] | None,
        limits: Limits,
        expires_at: float | None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time it is seen)."""
        now = self._clock.now()
        if sum(1 for k in self._keys.values() if k.revoked_at is None) >= MAX_KEYS:
            raise InvalidRequest("keys", "too many live keys; revoke some", limit=MAX_KEYS)
        key_id = secrets.token_hex(6)
        while key_id in self._keys:
            key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id, name, role, models, limits, _digest(secret), now, expires_at)
        self._store.put_key(key)
        self._keys[key.id] = key
        self.on_change(key)
        return key, f"{PREFIX}{key.id}_{secret}"

    def adopt(self, keys: Sequence[ApiKey]) -> None:
        """Take the keys as the cluster has them (made, rotated or revoked on
        another node). A key revoked here stays revoked, whatever the other
        copy says: a revocation is never undone."""
        for key in keys:
            old = self._keys.get(key.id)
            if old == key:
                continue
            if old is not None and old.revoked_at is not None and key.revoked_at is None:
                self.on_change(old)  # the cluster's copy is older: send this one again
                continue
            self._store.put_key(key)
            self._keys[key.id] = key

    def get(self, key_id: str) -> ApiKey:
        key = self._keys.get(key_id)
        if key is None:
            raise ApiKeyNotFound(f"no API key {key_id!r}", key_id=key_id)
        return key

    def all(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> ApiKey:
        """Refused from now on; revoking a revoked key changes nothing."""
        key = self.get(key_id)
        if key.revoked_at is not None:
            return key
        revoked = replace(key, revoked_at=self._clock.now(), old_hash=None, old_until=None)
        self._store.put_key(revoked)
        self._keys[key_id] = revoked
        self.on_change(revoked)
        return revoked

    def rotate(self, key_id: str, grace_s: float) -> tuple[ApiKey, str]:
        """A new secret for the key; the old one works ``grace_s`` longer."""
        key = self.get(key_id)
        if not key.live(self._clock.now()):
            raise InvalidRequest(
                "key_id", "a revoked or expired key cannot be rotated", value=key_id
            )
        secret = secrets.token_urlsafe(32)
        rotated = replace(
            key,
            secret_hash=_digest(secret),
            old_hash=key.secret_hash if grace_s > 0 else None,
            old_until=self._clock.now() + grace_s if grace_s > 0 else None,
        )
        self._store.put_key(rotated)
        self._keys[key_id] = rotated
        self.on_change(rotated)
        return rotated, f"{PREFIX}{key.id}_{secret}"
