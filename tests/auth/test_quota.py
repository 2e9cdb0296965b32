"""Device byte-seconds per day: ended leases added up (and kept across a
restart), live ones counted to their expiry, the day boundary."""

from __future__ import annotations

from pathlib import Path

import pytest

from moc.auth.principal import Limits
from moc.auth.quota import DAY, DeviceQuota
from moc.auth.store import AuthStore
from moc.errors import RateLimited
from moc.leases.model import Lease
from moc.store.sqlite import Database

MIB = 1 << 20
DAY0 = 1_800_000_000.0 - 1_800_000_000.0 % DAY  # a UTC midnight


def lease(lease_id: str, nbytes: int, created: float, expires: float, owner: str = "k1") -> Lease:
    return Lease(lease_id, "host", nbytes, "h", None, 50, False, 1, expires - created, created,
                 expires, owner=owner)  # fmt: skip


def quota(path: Path, live: list[Lease], cap: int | None = 100 * MIB * 10) -> DeviceQuota:
    limits = Limits(device_byte_seconds_per_day=cap)
    return DeviceQuota(
        AuthStore(Database(path / "moc.db")),
        lambda owner: limits if owner == "k1" else None,
        lambda owner: [x for x in live if x.owner == owner],
    )


def test_a_lease_is_admitted_only_if_its_whole_ttl_fits(tmp_path: Path) -> None:
    q = quota(tmp_path, [])  # 1000 MiB·s a day
    q.check("k1", 100 * MIB, 10, DAY0 + 10)
    with pytest.raises(RateLimited) as caught:
        q.check("k1", 100 * MIB, 10.5, DAY0 + 10)
    assert caught.value.details["field"] == "device_byte_seconds_per_day"
    assert caught.value.retry_after_s == pytest.approx(DAY - 10)
    q.check("k2", 10**15, 10**6, DAY0)  # no limit for this owner
    q.check("", 10**15, 10**6, DAY0)  # nor with auth off


def test_live_leases_count_to_their_expiry_and_ended_ones_to_their_end(tmp_path: Path) -> None:
    live = [lease("l1", 50 * MIB, DAY0 + 0, DAY0 + 10)]
    q = quota(tmp_path, live)
    # l1 will use 500 MiB·s: 500 are left
    q.check("k1", 50 * MIB, 10, DAY0 + 5)
    with pytest.raises(RateLimited):
        q.check("k1", 50 * MIB, 11, DAY0 + 5)
    # renewing l1 counts it to now, then the new TTL
    q.check("k1", 50 * MIB, 15, DAY0 + 5, renewing="l1")
    ended = live.pop()
    q.ended(ended, DAY0 + 4)  # released early: 200 MiB·s
    assert q.used("k1", DAY0 + 4) == pytest.approx(200 * MIB)
    again = quota(tmp_path, [])  # a restart keeps the day's count
    assert again.used("k1", DAY0 + 5) == pytest.approx(200 * MIB)
    assert again.used("k1", DAY0 + DAY + 5) == 0  # a new day starts from zero


def test_only_the_part_of_a_lease_inside_today_counts(tmp_path: Path) -> None:
    q = quota(tmp_path, [])
    q.ended(lease("l2", MIB, DAY0 - 100, DAY0 + 100), DAY0 + 10)
    assert q.used("k1", DAY0 + 10) == pytest.approx(10 * MIB)


def test_a_lease_reaped_late_is_charged_only_until_it_expired(tmp_path: Path) -> None:
    q = quota(tmp_path, [])
    q.ended(lease("l3", MIB, DAY0, DAY0 + 10), DAY0 + 500)  # found expired at a restart
    assert q.used("k1", DAY0 + 500) == pytest.approx(10 * MIB)


def test_a_live_lease_past_midnight_counts_only_to_the_days_end(tmp_path: Path) -> None:
    live = [lease("l4", MIB, DAY - 10 + DAY0, DAY0 + DAY + 3600)]
    q = quota(tmp_path, live, cap=20 * MIB)
    q.check("k1", MIB, 5, DAY0 + DAY - 10)  # 10 MiB·s for l4 today, 5 for this
