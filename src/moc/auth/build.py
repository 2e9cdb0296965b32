"""Authentication built from the configuration and the environment, and the
check that an address beyond loopback is not served without it."""

from __future__ import annotations

import ipaddress
import os

from moc.auth.jwt import JwtVerifier
from moc.auth.service import Auth
from moc.auth.store import AuthStore
from moc.clock import Clock
from moc.config import Config
from moc.errors import ConfigError
from moc.leases.service import LeaseService
from moc.store.sqlite import Database

ADMIN_KEY_ENV = "MOC_ADMIN_KEY"
JWT_SECRET_ENV = "MOC_AUTH__JWT__SECRET"


def build_auth(config: Config, db: Database, clock: Clock, leases: LeaseService) -> Auth:
    settings = config.auth
    auth = Auth(
        settings,
        AuthStore(db),
        clock,
        env_admin_key=_take_secrets() or None,
        live_leases_of=lambda owner: leases.live(owner=owner),
        jwt=None if settings.jwt is None else JwtVerifier(settings.jwt),
    )
    auth.open()
    if settings.enabled:
        if (
            not auth.keys.has_env_admin
            and settings.jwt is None
            and not any(k.role.label == "admin" and k.live(clock.now()) for k in auth.keys.all())
        ):
            raise ConfigError(
                f"auth.enabled is true but nobody could administer moc: set {ADMIN_KEY_ENV} "
                "(at least 16 characters, e.g. `openssl rand -hex 32`) or configure auth.jwt"
            )
        leases.admit_with(auth.admit_lease)
        leases.on_ended(auth.lease_ended)
    return auth


def _take_secrets() -> str | None:
    """``MOC_ADMIN_KEY``, taken out of the environment with the JWT secret
    (read by then into the configuration): the runtimes and learning jobs moc
    starts inherit its environment, and have no use for either."""
    os.environ.pop(JWT_SECRET_ENV, None)
    return os.environ.pop(ADMIN_KEY_ENV, None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(config: Config) -> None:
    """Refuse to listen beyond loopback with nobody checked at the door."""
    server = config.server
    if config.auth.enabled or server.allow_unauthenticated or is_loopback(server.host):
        return
    raise ConfigError(
        f"server.host is {server.host!r}, which other machines can reach, and auth is off: "
        "anyone could load models, take leases and read the API. Turn auth on "
        f"(auth.enabled: true with {ADMIN_KEY_ENV} set), listen on 127.0.0.1, or set "
        "server.allow_unauthenticated: true (MOC_SERVER__ALLOW_UNAUTHENTICATED=true) to accept it"
    )
