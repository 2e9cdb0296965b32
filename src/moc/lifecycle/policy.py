"""Where a model goes, and what must leave to make room. Pure: no I/O, no clock.

Given what a load needs, the devices' arithmetic and the models holding
memory, :func:`place` returns one decision:

- ``Fits``: a device has room now (best fit: the least free that suffices);
- ``Evict``: room appears on a device if these idle models are unloaded;
- ``Drain``: only models with requests in flight stand in the way; wait for
  them to finish, then decide again;
- ``TooLarge``: larger than every eligible device's capacity: it can never
  fit, so fail at once instead of evicting anything;
- ``NoRoom``: pinned models, leases or memory used outside moc hold the rest.

When idle models alone do not free enough, :func:`reclaim` says which
*yieldable* holders (learning jobs, yieldable leases; all of lower priority
than the load) to ask to let go, on the device where the fewest bytes must
yield once every idle unpinned model there is counted as gone too. Asking a
holder built to yield is preferred to waiting for busy models to drain.

Victims are chosen by how little they are worth keeping: a model idle for
long is worth less, one that is slow to load again worth more. When one idle
model alone frees enough, the least valuable such model goes; otherwise the
least valuable per byte go first, and any that turn out unnecessary are
kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Room:
    device: str
    capacity: int  # what moc may hand out on the device
    free: int  # capacity − held − external, now


@dataclass(frozen=True)
class Resident:
    """A model holding memory, as the policy sees it."""

    name: str
    device: str
    bytes: int
    pinned: bool
    busy: bool  # requests in flight, or starting/stopping
    idle_s: float
    reload_s: float  # how long it took to load last time (an estimate before)

    @property
    def keep_value(self) -> float:
        return (1.0 + self.reload_s) / (1.0 + self.idle_s)


@dataclass(frozen=True)
class Fits:
    device: str


@dataclass(frozen=True)
class Evict:
    device: str
    victims: tuple[str, ...]


@dataclass(frozen=True)
class Drain:
    device: str
    victims: tuple[str, ...]


@dataclass(frozen=True)
class TooLarge:
    capacity: int  # the largest eligible capacity


@dataclass(frozen=True)
class NoRoom:
    device: str
    free_if_all_evicted: int


@dataclass(frozen=True)
class Yielder:
    """A holder of memory that lets go when asked (a learning job, a yieldable lease)."""

    id: str
    device: str
    bytes: int


@dataclass(frozen=True)
class Reclaim:
    device: str
    yielders: tuple[str, ...]


Decision = Fits | Evict | Drain | TooLarge | NoRoom


def _choose(need: int, free: int, candidates: list[Resident]) -> tuple[str, ...] | None:
    """The victims that make ``free`` reach ``need``, or None if they cannot."""
    shortfall = need - free
    if sum(r.bytes for r in candidates) < shortfall:
        return None
    singles = [r for r in candidates if r.bytes >= shortfall]
    if singles:
        return (min(singles, key=lambda r: (r.keep_value, -r.bytes, r.name)).name,)
    ordered = sorted(candidates, key=lambda r: (r.keep_value / max(r.bytes, 1), r.name))
    chosen: list[Resident] = []
    freed = 0
    for r in ordered:
        chosen.append(r)
        freed += r.bytes
        if freed >= shortfall:
            break
    # Keep any victim the others make unnecessary, most valuable first.
    for r in sorted(chosen, key=lambda r: -r.keep_value):
        if freed - r.bytes >= shortfall:
            chosen.remove(r)
            freed -= r.bytes
    return tuple(r.name for r in chosen)


def _cost(victims: tuple[str, ...], residents: dict[str, Resident]) -> float:
    return sum(residents[v].keep_value for v in victims)


def place(need: int, rooms: Sequence[Room], residents: Sequence[Resident]) -> Decision:
    """Decide where a load of ``need`` bytes goes among ``rooms`` (the eligible devices)."""
    largest = max((r.capacity for r in rooms), default=0)
    if need > largest:
        return TooLarge(largest)
    fitting = [r for r in rooms if r.free >= need]
    if fitting:
        return Fits(min(fitting, key=lambda r: r.free).device)

    by_name = {r.name: r for r in residents}
    best: tuple[float, Evict] | None = None
    drain: tuple[int, Drain] | None = None
    most_free = rooms[0].device, -1
    for room in rooms:
        if room.capacity < need:
            continue
        here = [r for r in residents if r.device == room.device and not r.pinned]
        idle = [r for r in here if not r.busy]
        victims = _choose(need, room.free, idle)
        if victims is not None:
            cost = _cost(victims, by_name)
            if best is None or cost < best[0]:
                best = (cost, Evict(room.device, victims))
            continue
        with_busy = _choose(need, room.free, here)
        if with_busy is not None:
            busy_count = sum(1 for v in with_busy if by_name[v].busy)
            if drain is None or busy_count < drain[0]:
                drain = (busy_count, Drain(room.device, with_busy))
        free_if_all = room.free + sum(r.bytes for r in here)
        if free_if_all > most_free[1]:
            most_free = room.device, free_if_all
    if best is not None:
        return best[1]
    if drain is not None:
        return drain[1]
    return NoRoom(*most_free)


def reclaim(
    need: int, rooms: Sequence[Room], residents: Sequence[Resident], yielders: Sequence[Yielder]
) -> Reclaim | None:
    """The yielders to ask so that ``need`` fits once they and the idle models
    on that device are gone; None when no device gets there. ``yielders`` come
    in the order they should be asked (lowest priority first)."""
    best: tuple[int, Reclaim] | None = None
    for room in rooms:
        if room.capacity < need:
            continue
        idle = sum(
            r.bytes for r in residents if r.device == room.device and not r.pinned and not r.busy
        )
        shortfall = need - room.free - idle
        chosen: list[Yielder] = []
        for y in yielders:
            if shortfall <= 0:
                break
            if y.device == room.device:
                chosen.append(y)
                shortfall -= y.bytes
        if shortfall > 0 or not chosen:
            continue
        asked = sum(y.bytes for y in chosen)
        if best is None or asked < best[0]:
            best = (asked, Reclaim(room.device, tuple(y.id for y in chosen)))
    return None if best is None else best[1]
