"""Seeded request traces: who asks for which model, when, at what priority.

Every trace is a pure function of its seed. Models are modelled by size,
load time (proportional to size), unload time and parallel slots; a request
by its arrival, model, priority and service time (the time a slot is busy
with it once it starts).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from moc.scheduler.waiting import Priority
from moc.units import format_size

GIB = 1 << 30


@dataclass(frozen=True)
class SimModel:
    name: str
    bytes: int
    load_s: float  # cold load, start of runtime to ready
    unload_s: float  # stop, until its memory is free again
    parallel: int  # requests it serves at once


@dataclass(frozen=True)
class Request:
    id: int
    arrival: float
    model: str
    priority: Priority
    service_s: float


@dataclass(frozen=True)
class Trace:
    name: str
    about: str  # how it was made, for the printed tables
    models: tuple[SimModel, ...]
    budget: int  # bytes the device may hold for models
    requests: tuple[Request, ...]
    timeout_s: tuple[float, float, float] = (60.0, 300.0, 900.0)  # moc's defaults, by Priority
    keep_alive_s: float = 300.0  # idle unload, moc's and Ollama's default

    def model(self, name: str) -> SimModel:
        return next(m for m in self.models if m.name == name)

    def only(self, priority: Priority) -> Trace:
        """The same trace with only the requests of one priority (an idle-system reference)."""
        kept = tuple(r for r in self.requests if r.priority is priority)
        return replace(self, name=f"{self.name} ({priority.label} only)", requests=kept)


LOAD_S_PER_GIB = 0.5
UNLOAD_S = 0.5


def models(count: int, gib: int = 8, parallel: int = 2) -> tuple[SimModel, ...]:
    return tuple(
        SimModel(f"m{i}", gib * GIB, gib * LOAD_S_PER_GIB, UNLOAD_S, parallel) for i in range(count)
    )


def zipf_weights(count: int, s: float) -> list[float]:
    return [1.0 / (rank + 1) ** s for rank in range(count)]


def _service(rng: random.Random, mean_s: float) -> float:
    return min(10 * mean_s, max(0.05, rng.expovariate(1.0 / mean_s)))


def _priority(rng: random.Random, high_share: float) -> Priority:
    return Priority.HIGH if rng.random() < high_share else Priority.NORMAL


def zipf(
    seed: int,
    *,
    rate: float = 1.0,
    duration_s: float = 1800.0,
    s: float = 1.1,
    high_share: float = 0.0,
    service_mean_s: float = 1.5,
    name: str = "zipf",
    catalog: tuple[SimModel, ...] | None = None,
    fits: int = 3,
) -> Trace:
    """Poisson arrivals at ``rate``/s; model by Zipf(``s``) over the catalog (8
    models of 8 GiB unless given, most popular first); the budget fits ``fits``."""
    rng = random.Random(seed)
    ms = catalog or models(8)
    weights = zipf_weights(len(ms), s)
    requests = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration_s:
            break
        model = rng.choices(ms, weights)[0].name
        requests.append(
            Request(
                len(requests), t, model, _priority(rng, high_share), _service(rng, service_mean_s)
            )
        )
    about = (
        f"Poisson {rate:g} req/s for {duration_s:g} s, Zipf s={s:g} over {len(ms)} models of "
        f"{format_size(ms[0].bytes)}, {high_share:.0%} high, service exp(mean {service_mean_s:g} s)"
    )
    return Trace(name, about, ms, fits * ms[0].bytes, tuple(requests))


def bursts(
    seed: int,
    *,
    background_rate: float = 0.3,
    burst_rate: float = 2.0,
    period_s: float = 120.0,
    on_s: float = 30.0,
    duration_s: float = 1800.0,
    service_mean_s: float = 1.5,
) -> Trace:
    """A uniform background over 8 models, and every ``period_s`` an on-phase of
    ``on_s`` in which two models drawn at random take ``burst_rate``/s more."""
    rng = random.Random(seed)
    ms = models(8)
    arrivals: list[tuple[float, str]] = []
    t = 0.0
    while True:
        t += rng.expovariate(background_rate)
        if t >= duration_s:
            break
        arrivals.append((t, rng.choice(ms).name))
    start = 0.0
    while start < duration_s:
        pair = rng.sample(ms, 2)
        t = start
        while True:
            t += rng.expovariate(burst_rate)
            if t >= min(start + on_s, duration_s):
                break
            arrivals.append((t, rng.choice(pair).name))
        start += period_s
    arrivals.sort()
    requests = tuple(
        Request(i, t, m, Priority.NORMAL, _service(rng, service_mean_s))
        for i, (t, m) in enumerate(arrivals)
    )
    about = (
        f"background Poisson {background_rate:g} req/s uniform over 8 models of 8 GiB; every "
        f"{period_s:g} s a {on_s:g} s burst of {burst_rate:g} req/s on 2 random models; "
        f"{duration_s:g} s, service exp(mean {service_mean_s:g} s)"
    )
    return Trace("bursts", about, ms, 3 * ms[0].bytes, requests)


def standard(seed: int = 1) -> list[Trace]:
    """The traces the report uses; chosen before any result was seen, and kept."""
    return [
        zipf(seed),
        bursts(seed),
        zipf(seed, high_share=0.10, name="zipf+high"),
    ]
