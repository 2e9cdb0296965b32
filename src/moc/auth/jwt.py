"""Verifying JWTs issued by an external identity provider.

The rules, each there to refuse what a forged or stale token would rely on:

* The key moc picks decides the algorithm, never the token's header alone:
  HS256 only with ``auth.jwt.secret``; RS256 and ES256 only with a key of the
  JWKS, an RSA key verifying RS256 only, an EC P-256 key ES256 only, and a key
  with an explicit ``alg`` only that one. So ``alg: none``, HS256 with no
  secret set, and HS256 "signed" with a JWKS public key (algorithm confusion)
  are refused. A token names its key by ``kid``; one without may use the
  JWKS's only key of its algorithm, if there is exactly one.
* ``exp`` is required (and a finite number); ``nbf`` and ``iat`` are checked
  when present, ``iss`` and ``aud`` when configured, times with ``leeway_s``.
* The principal is ``jwt:<subject>``; its role the highest known role the role
  claim names (a dotted path; a list may name several, unknown names ignored;
  none at all → ``default_role`` if set); its models the globs of the models
  claim (absent → every model); its limits the configured ones.
* Keys: a ``jwks_file`` is read at startup (a bad one stops it) and re-read
  when its mtime changes, checked every ``jwks_refresh_s``; a ``jwks_url`` is
  fetched on first use and kept ``jwks_refresh_s``. An unknown ``kid`` looks
  again at once, but at most once per 10 s, so random kids cannot hammer the
  provider; a failed fetch keeps the keys already known.
* Verified tokens are cached (bounded, oldest out) until ``exp`` plus leeway,
  so a repeat costs a dict lookup; failures are not cached.
* Messages say what was wrong, never the token or its signature.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

from moc.auth.principal import Limits, Principal
from moc.auth.roles import Role
from moc.config import JwtConfig
from moc.errors import ConfigError, Unauthenticated

log = logging.getLogger(__name__)

CACHE_SIZE = 4096  # verified tokens kept
LOOK_AGAIN_S = 10.0  # an unknown kid re-reads the JWKS at most this often
FETCH_TIMEOUT_S = 5.0
ALGORITHMS = ("HS256", "RS256", "ES256")
_KTY_ALGORITHM = {"RSA": "RS256", "EC": "ES256"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_ROLE_NAMES = ", ".join(role.label for role in sorted(Role, reverse=True))

Fetch = Callable[[str], Awaitable[bytes]]


async def fetch_url(url: str) -> bytes:
    """The body of ``url``; a status other than 2xx raises."""
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.content


def parse_jwks(body: bytes | str) -> list[jwt.PyJWK]:
    """The keys of a JWKS document that moc verifies with; ValueError when it is
    not a JWKS or holds none of them, so a typo does not silently refuse all."""
    try:
        document = json.loads(body)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('not a JWKS: no "keys" list')
    keys = [key for entry in entries if (key := _signing_key(entry)) is not None]
    if not keys:
        raise ValueError(f"none of its {len(entries)} keys is an RS256 or ES256 signing key")
    return keys


def _signing_key(entry: Any) -> jwt.PyJWK | None:
    """``entry`` bound to the one algorithm its type allows, or None for a key moc
    does not verify with (other type or curve, ``use: enc``, another ``alg``)."""
    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
        return None
    algorithm = _KTY_ALGORITHM.get(entry.get("kty", ""))
    if algorithm is None or (algorithm == "ES256" and entry.get("crv") != "P-256"):
        return None
    if entry.get("alg", algorithm) != algorithm:
        return None
    public = {name: value for name, value in entry.items() if name not in _PRIVATE_MEMBERS}
    try:
        return jwt.PyJWK(public, algorithm=algorithm)
    except jwt.PyJWTError as e:
        log.warning("JWKS key %s skipped: %s", _shown(entry.get("kid")), e)
        return None


def _read_jwks_file(path: Path) -> tuple[list[jwt.PyJWK], tuple[int, int]]:
    """The file's keys and the stamp (mtime, size) that tells when it changed."""
    try:
        stat = path.stat()
        keys = parse_jwks(path.read_bytes())
    except OSError as e:
        raise ConfigError(f"auth.jwt.jwks_file {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise ConfigError(f"auth.jwt.jwks_file {path}: {e}") from None
    return keys, (stat.st_mtime_ns, stat.st_size)


def _shown(value: object) -> str:
    """A value from a token, short enough to put in a message or a log."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _claim(claims: dict[str, Any], path: str) -> Any:
    """The claim ``path`` names: a top-level name (namespaced claims such as
    ``https://example.com/roles`` hold dots), else a dotted path; None if absent."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _time(claims: dict[str, Any], name: str) -> float | None:
    """A time claim as seconds; JSON allows NaN and 1e999, which no check can
    compare, so anything but a finite number is refused."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            if math.isfinite(seconds := float(value)):
                return seconds
        except OverflowError:
            pass
    raise Unauthenticated(f"token's {name} claim is not a number of seconds")


def _header(token: str) -> dict[str, Any]:
    """The token's unverified header; only its alg and kid are read from it."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise Unauthenticated("malformed token: a JWT is three base64url parts joined by dots")
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("malformed token: its header is not base64url JSON") from None


def _find(keys: list[jwt.PyJWK], algorithm: str, kid: str | None) -> jwt.PyJWK | None:
    """The key ``kid`` names or, with no kid, the only key for ``algorithm``;
    None when there is none (looking again may find it)."""
    if kid is not None:
        return next((key for key in keys if key.key_id == kid), None)
    fitting = [key for key in keys if key.algorithm_name == algorithm]
    if len(fitting) > 1:
        raise Unauthenticated(f"token has no kid and the JWKS has {len(fitting)} {algorithm} keys")
    return fitting[0] if fitting else None


class JwtVerifier:
    """Turns a bearer token into the principal it authenticates."""

    def __init__(
        self,
        config: JwtConfig,
        *,
        now: Callable[[], float] = time.time,
        fetch: Fetch = fetch_url,
    ) -> None:
        self._config = config
        self._now = now
        self._fetch = fetch
        self._limits = Limits.of(config.limits)
        self._keys: list[jwt.PyJWK] = []
        self._stamp: tuple[int, int] | None = None  # the jwks_file's, when read
        self._loaded_at = -math.inf  # keys last brought up to date
        self._tried_at = -math.inf  # any look at the source, ok or not
        self._looked_again_at = -math.inf  # the last look for an unknown kid
        self._fetch_failed = False
        self._lock = asyncio.Lock()
        self._cache: dict[str, tuple[Principal, float]] = {}
        if config.jwks_file is not None:
            self._keys, self._stamp = _read_jwks_file(config.jwks_file)
            self._loaded_at = self._tried_at = now()

    async def verify(self, token: str) -> Principal:
        """The principal ``token`` authenticates; Unauthenticated saying why not."""
        now = self._now()
        cached = self._cache.get(token)
        if cached is not None:
            principal, exp = cached
            if now - self._config.leeway_s <= exp:
                return principal
            del self._cache[token]
        header = _header(token)
        claims = self._decode(token, await self._key_for(header))
        exp = self._check_times(claims, now)
        principal = self._principal(claims)
        if len(self._cache) >= CACHE_SIZE:
            del self._cache[next(iter(self._cache))]
        self._cache[token] = (principal, exp)
        return principal

    async def _key_for(self, header: dict[str, Any]) -> str | jwt.PyJWK:
        """The secret or JWKS key to check the token with; its algorithm must be
        the header's, so the header alone never picks how it is checked."""
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            allowed = ", ".join(ALGORITHMS)
            raise Unauthenticated(f"token algorithm {_shown(algorithm)} is not allowed ({allowed})")
        if algorithm == "HS256":
            if self._config.secret is None:
                raise Unauthenticated("HS256 tokens are refused: no auth.jwt.secret is configured")
            return self._config.secret.get_secret_value()
        if self._config.jwks_file is None and self._config.jwks_url is None:
            raise Unauthenticated(f"{algorithm} tokens are refused: no JWKS is configured")
        kid = header.get("kid")  # pyjwt has checked it is a string
        key = await self._jwks_key(algorithm, kid)
        if key.algorithm_name != algorithm:
            raise Unauthenticated(
                f"token algorithm {algorithm} is not allowed for key {_shown(kid)} "
                f"({key.algorithm_name} only)"
            )
        return key

    async def _jwks_key(self, algorithm: str, kid: str | None) -> jwt.PyJWK:
        looked = await self._refresh(unknown_kid=False)
        key = _find(self._keys, algorithm, kid)
        if key is None and not looked:
            await self._refresh(unknown_kid=True)
            key = _find(self._keys, algorithm, kid)
        if key is None:
            problem = f"no {algorithm} key in the JWKS"
            if kid is not None:
                problem = f"unknown key id {_shown(kid)}"
            if self._fetch_failed:
                problem += f"; the JWKS could not be fetched from {self._config.jwks_url}"
            raise Unauthenticated(problem)
        return key

    def _due(self, *, unknown_kid: bool) -> bool:
        now = self._now()
        if unknown_kid:
            return now - self._looked_again_at >= LOOK_AGAIN_S
        stale = now - self._loaded_at >= self._config.jwks_refresh_s
        return stale and now - self._tried_at >= LOOK_AGAIN_S  # a failing source too

    async def _refresh(self, *, unknown_kid: bool) -> bool:
        """Bring the keys up to date when due; whether it looked. Callers that
        arrive during a look wait for it (the lock) rather than find no keys."""
        async with self._lock:
            if not self._due(unknown_kid=unknown_kid):
                return False
            self._tried_at = self._now()
            if unknown_kid:
                self._looked_again_at = self._tried_at
            if self._config.jwks_file is not None:
                self._reread_file(self._config.jwks_file)
            elif self._config.jwks_url is not None:
                await self._fetch_url(self._config.jwks_url)
            return True

    def _reread_file(self, path: Path) -> None:
        try:
            stat = path.stat()
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                self._keys, self._stamp = _read_jwks_file(path)
        except (OSError, ConfigError) as e:
            log.warning("keeping the JWKS keys known: %s", e)
            return
        self._loaded_at = self._tried_at

    async def _fetch_url(self, url: str) -> None:
        try:
            self._keys = parse_jwks(await self._fetch(url))
        except Exception as e:
            log.warning("JWKS %s could not be fetched, keeping the keys known: %s", url, e)
            self._fetch_failed = True
            return
        self._fetch_failed = False
        self._loaded_at = self._tried_at

    def _decode(self, token: str, key: str | jwt.PyJWK) -> dict[str, Any]:
        """The claims, once the signature, ``iss`` and ``aud`` check; times are
        checked by ``_check_times``, against the clock this verifier was given."""
        config = self._config
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=["HS256" if isinstance(key, str) else key.algorithm_name],
                issuer=config.issuer,
                audience=config.audience,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": config.audience is not None,
                    "verify_sub": False,  # subject_claim is checked, whichever it is
                    "verify_jti": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as e:
            raise Unauthenticated(self._why(e)) from None

    def _why(self, error: jwt.PyJWTError) -> str:
        """What was wrong, in words of moc's own: pyjwt's messages may quote
        pieces of the token."""
        if isinstance(error, jwt.InvalidSignatureError):
            return "bad signature"
        if isinstance(error, jwt.DecodeError):
            return "malformed token"
        if isinstance(error, jwt.MissingRequiredClaimError):
            return f"token has no {error.claim} claim"
        if isinstance(error, jwt.InvalidIssuerError):
            return f"wrong issuer: tokens must come from {self._config.issuer!r}"
        if isinstance(error, jwt.InvalidAudienceError):
            return f"wrong audience: tokens must be for {self._config.audience!r}"
        if isinstance(error, jwt.InvalidAlgorithmError):
            return "token algorithm is not allowed for its key"
        if isinstance(error, jwt.InvalidKeyError):
            return f"the key cannot verify tokens: {error}"
        return f"token refused ({type(error).__name__})"

    def _check_times(self, claims: dict[str, Any], now: float) -> float:
        """``exp`` (required), ``nbf`` and ``iat`` against ``now``, with leeway;
        returns ``exp``."""
        leeway = self._config.leeway_s
        exp = _time(claims, "exp")
        if exp is None:
            raise Unauthenticated("token has no exp claim: only tokens that expire are accepted")
        if now - leeway > exp:
            raise Unauthenticated(f"token expired {now - exp:.0f} s ago")
        for name, problem in (("nbf", "not yet valid"), ("iat", "issued in the future")):
            start = _time(claims, name)
            if start is not None and now + leeway < start:
                raise Unauthenticated(f"token {problem}: {name} is {start - now:.0f} s from now")
        return exp

    def _principal(self, claims: dict[str, Any]) -> Principal:
        name = self._config.subject_claim
        subject = _claim(claims, name)
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated(f"token's {name!r} claim is not a non-empty string")
        return Principal(
            id=f"jwt:{subject}",
            role=self._role(claims),
            name=subject,
            models=self._models(claims),
            limits=self._limits,
        )

    def _role(self, claims: dict[str, Any]) -> Role:
        """The one role a string names, the highest a list names (an identity
        provider lists roles of other applications too), else ``default_role``."""
        name = self._config.role_claim
        value = _claim(claims, name)
        if isinstance(value, str):
            if (role := Role.named(value)) is None:
                raise Unauthenticated(f"token's {name!r} claim names no role ({_ROLE_NAMES})")
            return role
        if isinstance(value, list):
            if roles := [role for item in value if (role := Role.named(item)) is not None]:
                return max(roles)
        elif value is not None:
            raise Unauthenticated(f"token's {name!r} claim is not a string or a list of strings")
        if self._config.default_role is None:
            raise Unauthenticated(
                f"token's {name!r} claim names no role ({_ROLE_NAMES}) "
                "and no auth.jwt.default_role is configured"
            )
        return Role[self._config.default_role.upper()]

    def _models(self, claims: dict[str, Any]) -> tuple[str, ...] | None:
        name = self._config.models_claim
        value = _claim(claims, name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(glob, str) for glob in value):
            raise Unauthenticated(f"token's {name!r} claim is not a list of model globs")
        return tuple(value)
