"""The key ring against a real SQLite file: keys made, checked, revoked,
rotated and expired, and kept across a restart as hashes only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from moc.auth.keys import ENV_ADMIN_ID, KeyRing
from moc.auth.principal import Limits
from moc.auth.roles import Role
from moc.auth.store import AuthStore
from moc.errors import ApiKeyNotFound, ConfigError, InvalidRequest, Unauthenticated
from moc.store.sqlite import Database


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t


def ring(path: Path, clock: Clock, env: str | None = None) -> KeyRing:
    keys = KeyRing(AuthStore(Database(path / "moc.db")), clock, env)
    keys.open()
    return keys


def test_a_made_key_names_its_principal_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    clock = Clock()
    keys = ring(tmp_path, clock)
    key, secret = keys.create("ci", Role.USER, ("tiny-*",), Limits(requests_per_minute=5), None)
    assert secret.startswith(f"moc_{key.id}_")
    principal = keys.principal(secret)
    assert (principal.id, principal.role, principal.name) == (key.id, Role.USER, "ci")
    assert principal.may_use("tiny-a")
    assert not principal.may_use("big")
    assert principal.limits.requests_per_minute == 5
    raw = (tmp_path / "moc.db").read_bytes()
    assert secret.encode() not in raw
    assert secret.split("_", 2)[2].encode() not in raw
    assert hashlib.sha256(secret.split("_", 2)[2].encode()).digest() == key.secret_hash
    again = ring(tmp_path, clock)  # a restart reads the keys back
    assert again.principal(secret).id == key.id


@pytest.mark.parametrize(
    "presented",
    ["", "nope", "moc_", "moc_000000000000_" + "A" * 43, "Bearer x", "moc_zz_" + "A" * 43],
)
def test_a_malformed_or_unknown_key_is_refused(tmp_path: Path, presented: str) -> None:
    keys = ring(tmp_path, Clock())
    with pytest.raises(Unauthenticated) as caught:
        keys.principal(presented)
    assert caught.value.code == "unauthenticated"


def test_a_wrong_secret_for_a_real_id_is_refused_without_echoing_it(tmp_path: Path) -> None:
    keys = ring(tmp_path, Clock())
    key, _secret = keys.create("ci", Role.USER, None, Limits(), None)
    forged = f"moc_{key.id}_{'B' * 43}"
    with pytest.raises(Unauthenticated) as caught:
        keys.principal(forged)
    assert "B" * 10 not in caught.value.message
    assert key.id in caught.value.message


def test_revoked_and_expired_keys_are_refused_at_once(tmp_path: Path) -> None:
    clock = Clock()
    keys = ring(tmp_path, clock)
    _live, live_secret = keys.create("a", Role.USER, None, Limits(), clock.t + 60)
    gone, gone_secret = keys.create("b", Role.USER, None, Limits(), None)
    keys.revoke(gone.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        keys.principal(gone_secret)
    assert keys.revoke(gone.id).revoked_at == keys.get(gone.id).revoked_at  # idempotent
    keys.principal(live_secret)
    clock.t += 60
    with pytest.raises(Unauthenticated, match="expired"):
        keys.principal(live_secret)
    past, past_secret = keys.create("c", Role.USER, None, Limits(), clock.t - 1)
    assert not past.live(clock.t)  # made expired: never accepted
    with pytest.raises(Unauthenticated, match="expired"):
        keys.principal(past_secret)


def test_rotation_with_a_grace_period_keeps_the_old_secret_until_it_ends(tmp_path: Path) -> None:
    clock = Clock()
    keys = ring(tmp_path, clock)
    key, old = keys.create("svc", Role.OPERATOR, None, Limits(), None)
    rotated, new = keys.rotate(key.id, grace_s=30)
    assert rotated.id == key.id
    assert new != old
    assert keys.principal(old).id == keys.principal(new).id == key.id
    clock.t += 30
    with pytest.raises(Unauthenticated):
        keys.principal(old)
    keys.principal(new)
    _, newest = keys.rotate(key.id, grace_s=0)
    with pytest.raises(Unauthenticated):
        keys.principal(new)
    keys.principal(newest)
    keys.revoke(key.id)
    with pytest.raises(InvalidRequest, match="cannot be rotated"):
        keys.rotate(key.id, grace_s=0)
    with pytest.raises(ApiKeyNotFound):
        keys.rotate("000000000000", grace_s=0)


def test_the_environment_admin_key_is_an_admin_and_must_be_long(tmp_path: Path) -> None:
    keys = ring(tmp_path, Clock(), env="an-admin-secret-of-32-characters")
    principal = keys.principal("an-admin-secret-of-32-characters")
    assert (principal.id, principal.role) == (ENV_ADMIN_ID, Role.ADMIN)
    with pytest.raises(Unauthenticated):
        keys.principal("an-admin-secret-of-32-characterz")
    with pytest.raises(ConfigError, match="MOC_ADMIN_KEY"):
        ring(tmp_path, Clock(), env="short")
