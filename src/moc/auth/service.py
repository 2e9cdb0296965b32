"""Authentication as one service: who a request's credentials name, with the
key ring, JWT, the rate limits, the device quota and the audit log beside it.

Built by the daemon whether auth is on or off: off, every caller is
:data:`~moc.auth.principal.ANONYMOUS` and only the audit log is written.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable

from moc.auth.audit import AuditLog
from moc.auth.jwt import JwtVerifier
from moc.auth.keys import KeyRing
from moc.auth.limits import FailedAttempts, RateLimits
from moc.auth.principal import Limits, Principal
from moc.auth.quota import DeviceQuota
from moc.auth.roles import Role
from moc.auth.store import AuthStore
from moc.clock import Clock
from moc.config import AuthConfig
from moc.errors import ApiKeyNotFound, RateLimited, Unauthenticated
from moc.leases.model import Lease

MAX_CREDENTIAL = 8192  # characters; a longer Authorization value is refused unread
INTERNAL_ID = "moc"  # moc's own calls to itself (learning children, index queries)


class Auth:
    def __init__(
        self,
        config: AuthConfig,
        store: AuthStore,
        clock: Clock,
        *,
        env_admin_key: str | None,
        live_leases_of: Callable[[str], Iterable[Lease]],
        jwt: JwtVerifier | None = None,
    ) -> None:
        self.config = config
        self.enabled = config.enabled
        self._clock = clock
        self.keys = KeyRing(store, clock, env_admin_key)
        self.jwt = jwt
        self.limits = RateLimits()
        self.failures = FailedAttempts(config.failed_per_minute)
        self.audit = AuditLog(store, clock, config.audit_keep_days)
        self.quota = DeviceQuota(store, self.limits_of, live_leases_of)
        # The key moc's own children use to call its gateway: made at each
        # start, never stored, handed to them in their environment.
        self.internal_key = f"moc_internal_{secrets.token_urlsafe(32)}"
        self._internal_hash = hashlib.sha256(self.internal_key.encode()).digest()
        # Its calls are embeddings (index jobs and queries): a user's rights suffice.
        self._internal = Principal(INTERNAL_ID, Role.USER, "moc itself")

    def open(self) -> None:
        self.keys.open()
        self.audit.prune()

    async def authenticate(self, authorization: str | None, address: str) -> Principal:
        """The caller named by an ``Authorization`` header's value.

        Unauthenticated when there is none or it names nobody; RateLimited in
        its place when ``address`` sent too many bad ones this minute."""
        try:
            return await self._principal(authorization)
        except Unauthenticated as exc:
            wait = self.failures.note(address, self._clock.now())
            if wait is not None:
                raise RateLimited(
                    f"too many bad credentials from {address}; the limit "
                    f"(auth.failed_per_minute) is {self.config.failed_per_minute}",
                    retry_after_s=wait,
                    limit=self.config.failed_per_minute,
                ) from exc
            raise

    async def _principal(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated(
                "credentials are needed: send 'Authorization: Bearer <API key or token>'"
            )
        if len(authorization) > MAX_CREDENTIAL:
            raise Unauthenticated(f"the Authorization header is longer than {MAX_CREDENTIAL}")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated("the Authorization header must read 'Bearer <key or token>'")
        if credential.startswith("eyJ") and credential.count(".") == 2:
            if self.jwt is None:
                raise Unauthenticated("a JWT was sent but auth.jwt is not configured")
            return await self.jwt.verify(credential)
        if credential.startswith("moc_internal_") and hmac.compare_digest(
            hashlib.sha256(credential.encode()).digest(), self._internal_hash
        ):
            return self._internal
        return self.keys.principal(credential)

    def limits_of(self, owner: str) -> Limits | None:
        """The limits of the key (or JWT subject) that owns something."""
        if owner.startswith("jwt:"):
            return None if self.config.jwt is None else Limits.of(self.config.jwt.limits)
        try:
            return self.keys.get(owner).limits
        except ApiKeyNotFound:
            return None

    def admit_lease(self, owner: str, nbytes: int, ttl_s: float, renewing: str = "") -> None:
        """The device quota's check before a lease is granted or renewed."""
        self.quota.check(owner, nbytes, ttl_s, self._clock.now(), renewing)

    def lease_ended(self, lease: Lease) -> None:
        self.quota.ended(lease, self._clock.now())
