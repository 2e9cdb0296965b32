"""The placement and eviction policy: pure decisions, no processes."""

from __future__ import annotations

from moc.lifecycle.policy import (
    Drain,
    Evict,
    Fits,
    NoRoom,
    Reclaim,
    Resident,
    Room,
    TooLarge,
    Yielder,
    place,
    reclaim,
)

MIB = 1024 * 1024


def res(name: str, mib: int, *, device: str = "d0", idle_s: float = 10.0, **kw: object) -> Resident:
    fields: dict[str, object] = {"pinned": False, "busy": False, "reload_s": 1.0} | kw
    return Resident(name, device, mib * MIB, idle_s=idle_s, **fields)  # type: ignore[arg-type]


def room(free_mib: int, *, device: str = "d0", capacity_mib: int = 1000) -> Room:
    return Room(device, capacity_mib * MIB, free_mib * MIB)


def test_fits_on_the_device_with_the_least_room_that_suffices() -> None:
    rooms = [room(500, device="big"), room(120, device="snug"), room(90, device="small")]
    assert place(100 * MIB, rooms, []) == Fits("snug")


def test_larger_than_every_capacity_is_refused_without_evicting() -> None:
    residents = [res("a", 400), res("b", 400)]
    decision = place(1200 * MIB, [room(100)], residents)
    assert decision == TooLarge(1000 * MIB)


def test_one_idle_model_that_frees_enough_goes_and_the_least_valuable_one() -> None:
    residents = [
        res("recent", 300, idle_s=1),
        res("stale", 300, idle_s=600),
        res("small", 50, idle_s=9999),  # not enough on its own
    ]
    assert place(350 * MIB, [room(100)], residents) == Evict("d0", ("stale",))


def test_slow_to_reload_is_worth_keeping() -> None:
    residents = [
        res("slow", 300, idle_s=100, reload_s=60),
        res("quick", 300, idle_s=100, reload_s=0.5),
    ]
    assert place(300 * MIB, [room(0)], residents) == Evict("d0", ("quick",))


def test_several_victims_when_no_single_one_suffices_and_no_more_than_needed() -> None:
    residents = [res("a", 200, idle_s=50), res("b", 200, idle_s=40), res("c", 200, idle_s=30)]
    decision = place(450 * MIB, [room(100)], residents)
    assert isinstance(decision, Evict)
    assert sorted(decision.victims) == ["a", "b"]


def test_pinned_and_busy_models_are_never_victims() -> None:
    residents = [
        res("pinned", 500, idle_s=9999, pinned=True),
        res("busy", 500, idle_s=9999, busy=True),
        res("idle", 300, idle_s=1),
    ]
    assert place(300 * MIB, [room(0)], residents) == Evict("d0", ("idle",))


def test_drain_only_when_idle_models_cannot_free_enough() -> None:
    residents = [res("busy", 500, busy=True), res("idle", 100)]
    decision = place(550 * MIB, [room(0)], residents)
    assert isinstance(decision, Drain)
    assert "busy" in decision.victims


def test_no_room_when_pinned_models_hold_what_is_missing() -> None:
    residents = [res("pinned", 800, pinned=True), res("idle", 100)]
    decision = place(500 * MIB, [room(100)], residents)
    assert decision == NoRoom("d0", 200 * MIB)


def test_prefers_the_device_where_eviction_costs_least() -> None:
    residents = [
        res("fresh", 300, device="d0", idle_s=1, reload_s=30),
        res("stale", 300, device="d1", idle_s=900, reload_s=1),
    ]
    rooms = [room(0, device="d0"), room(0, device="d1")]
    assert place(300 * MIB, rooms, residents) == Evict("d1", ("stale",))


def test_residents_on_other_devices_are_not_victims_for_this_one() -> None:
    residents = [res("elsewhere", 900, device="d1")]
    decision = place(500 * MIB, [room(100, device="d0")], residents)
    assert decision == NoRoom("d0", 100 * MIB)


# --- reclaiming from holders that yield ---------------------------------------------
def y(name: str, mib: int, device: str = "d0") -> Yielder:
    return Yielder(name, device, mib * MIB)


def test_reclaim_counts_idle_models_as_gone_and_asks_only_enough_yielders() -> None:
    # 100 free + 200 idle; 900 needed: the first yielder (the lowest priority) is
    # asked, and the second too only because the first is not enough
    residents = [res("idle", 200), res("busy", 100, busy=True)]
    yielders = [y("job1", 300), y("job2", 400), y("job3", 500)]
    assert reclaim(900 * MIB, [room(100)], residents, yielders) == Reclaim("d0", ("job1", "job2"))
    assert reclaim(500 * MIB, [room(100)], residents, yielders) == Reclaim("d0", ("job1",))


def test_reclaim_picks_the_device_where_the_fewest_bytes_yield() -> None:
    rooms = [room(0, device="a"), room(300, device="b")]
    yielders = [y("big", 800, "a"), y("small", 300, "b")]
    assert reclaim(500 * MIB, rooms, [], yielders) == Reclaim("b", ("small",))


def test_no_reclaim_when_yielders_cannot_make_enough_room() -> None:
    assert reclaim(900 * MIB, [room(100)], [], [y("job", 300)]) is None
    assert reclaim(900 * MIB, [room(100)], [], []) is None
    pinned = [res("pinned", 500, pinned=True)]
    assert reclaim(900 * MIB, [room(100)], pinned, [y("job", 300)]) is None
