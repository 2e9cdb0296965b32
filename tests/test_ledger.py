import pytest

from moc.ledger import Claim, Entry, EntryKind, Ledger, attribute

GIB = 1024**3


def ledger() -> Ledger:
    ledger = Ledger()
    ledger.add_device("a", "host", 10 * GIB, 0.9)
    ledger.add_device("b", "host", 4 * GIB, 0.5)
    return ledger


def test_capacity_is_total_times_reserve_fraction() -> None:
    l = ledger()
    assert l.capacity("a") == 9 * GIB
    assert l.capacity("b") == 2 * GIB
    assert l.free("a") == 9 * GIB


def test_reserve_release_and_resize_keep_held_exact() -> None:
    l = ledger()
    l.reserve(Entry("x", "a", 3 * GIB, EntryKind.LEASE))
    l.reserve(Entry("y", "a", 1 * GIB, EntryKind.MODEL))
    view = l.view("a")
    assert (view.held, view.leases, view.reservations) == (4 * GIB, 1, 1)
    l.resize("y", 2 * GIB)
    assert l.free("a") == 9 * GIB - 5 * GIB
    assert l.release("x") is not None
    assert l.release("x") is None
    assert l.view("a").held == 2 * GIB


def test_duplicate_entry_is_refused() -> None:
    l = ledger()
    l.reserve(Entry("x", "a", 1, EntryKind.LEASE))
    with pytest.raises(ValueError, match="already exists"):
        l.reserve(Entry("x", "b", 1, EntryKind.LEASE))


def test_external_use_reduces_free_and_can_make_it_negative() -> None:
    l = ledger()
    l.reserve(Entry("x", "b", 2 * GIB, EntryKind.LEASE))
    l.set_external("b", GIB)
    assert l.free("b") == -GIB
    assert not l.fits("b", 1)


def test_best_fit_prefers_the_tightest_device() -> None:
    l = ledger()
    assert l.best_fit(GIB, ["a", "b"]) == "b"
    assert l.best_fit(3 * GIB, ["a", "b"]) == "a"
    assert l.best_fit(10 * GIB, ["a", "b"]) is None
    assert l.best_fit(GIB, []) is None


def test_attribute_charges_known_pids_and_assumes_pidless_holders_are_unknown_users() -> None:
    claims = [Claim("lease1", "a", 100, 3 * GIB), Claim("lease2", "a", None, 2 * GIB)]
    usage = {100: 4 * GIB, 200: 1 * GIB, 300: 3 * GIB}
    share = attribute(used=8 * GIB + 512, process_usage=usage, claims=claims)
    assert share.used_by_entry == {"lease1": 4 * GIB}
    # 8 GiB + 512 used; 4 GiB is lease1's process; 2 GiB presumed lease2's holder.
    assert share.external == 2 * GIB + 512


def test_attribute_counts_a_shared_pid_once() -> None:
    claims = [Claim("l1", "a", 7, GIB), Claim("l2", "a", 7, GIB)]
    share = attribute(used=3 * GIB, process_usage={7: 2 * GIB}, claims=claims)
    assert share.external == GIB
    assert share.used_by_entry == {"l1": 2 * GIB, "l2": 2 * GIB}


def test_attribute_never_negative() -> None:
    assert (
        attribute(used=GIB, process_usage={}, claims=[Claim("l", "a", None, 4 * GIB)]).external == 0
    )
