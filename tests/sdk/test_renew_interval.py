"""How often a held lease renews (the rule the SDK's tickers follow)."""

from __future__ import annotations

import pytest

from moc.sdk.wire import renew_interval


@pytest.mark.parametrize(
    ("ttl_s", "every_s", "yield_s", "expected"),
    [
        (30.0, None, None, 10.0),  # a third of the TTL
        (1.0, None, None, 1 / 3),
        (0.3, None, None, 0.2),  # never more often than five times a second
        (30.0, None, 4.0, 1.0),  # a yield request seen with most of yield_s left
        (30.0, 0.05, 4.0, 0.05),  # the caller's own interval wins
    ],
)
def test_renew_interval(
    ttl_s: float, every_s: float | None, yield_s: float | None, expected: float
) -> None:
    assert renew_interval(ttl_s, every_s, yield_s) == pytest.approx(expected)
