"""Fixtures of the cluster tests: a database of the module's
``redis-server`` (tests/conftest.py) per test, and the nodes a test starts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import redis

from tests.integration.cluster_support import Node, RedisServer, stop_all

DATABASES = itertools.cycle(range(1, 16))  # database 0 is for a module's own nodes


@pytest.fixture
def fresh_db(redis_server: RedisServer) -> str:
    """A Redis database no other test's nodes use, emptied: no claim, rate
    window or node entry of another test is seen in it."""
    url = redis_server.url(next(DATABASES))
    db = redis.Redis.from_url(url)
    try:
        db.flushdb()
    finally:
        db.close()
    return url


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    """The nodes a test starts; all stopped at its end (killed ones are skipped)."""
    started: list[Node] = []
    yield started
    stop_all(started)
