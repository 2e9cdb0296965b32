"""Eviction decision time: the pure policy with a large catalog.

1,000 models in the catalog, 100 of them loaded across 8 devices (simulated
entries, random sizes, idle times and reload costs, some pinned, some busy).
Each decision places one of the 900 unloaded models on devices that are
full, so the policy must choose victims — the expensive path. A baseline
with every device roomy (the best-fit path) runs beside it. Target: ≤ 1 ms.

    python benchmarks/eviction_policy.py [--decisions 5000]
"""

from __future__ import annotations

import argparse
import os
import random
import time

from moc.lifecycle.policy import Evict, Resident, Room, place

GIB = 1 << 30


def scenario(rng: random.Random) -> tuple[list[int], list[Resident]]:
    catalog = [rng.randint(1, 40) * GIB // 4 for _ in range(1000)]
    residents = [
        Resident(
            name=f"m{i}",
            device=f"gpu{i % 8}",
            bytes=catalog[i],
            pinned=rng.random() < 0.05,
            busy=rng.random() < 0.2,
            idle_s=rng.uniform(0, 3600),
            reload_s=rng.uniform(0.5, 60),
        )
        for i in range(100)
    ]
    return catalog, residents


def timed(
    decisions: int, catalog: list[int], rooms: list[Room], residents: list[Resident]
) -> tuple[list[float], int]:
    samples = []
    evictions = 0
    for k in range(decisions):
        need = catalog[100 + k % 900]
        t0 = time.perf_counter()
        decision = place(need, rooms, residents)
        samples.append(time.perf_counter() - t0)
        evictions += isinstance(decision, Evict)
    return samples, evictions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=5000)
    args = parser.parse_args()
    catalog, residents = scenario(random.Random(7))
    full = [Room(f"gpu{d}", 80 * GIB, GIB // 2) for d in range(8)]
    roomy = [Room(f"gpu{d}", 80 * GIB, 60 * GIB) for d in range(8)]

    def ms(values: list[float], q: float) -> float:
        return sorted(values)[round(q * (len(values) - 1))] * 1000

    print(f"\nmachine: {os.cpu_count()} CPUs; {args.decisions} decisions each\n")
    print("| case | p50 ms | p99 ms | max ms | decisions that evict |")
    print("|---|---|---|---|---|")
    for label, rooms in (("devices full: choose victims", full), ("room free: best fit", roomy)):
        samples, evictions = timed(args.decisions, catalog, rooms, residents)
        print(
            f"| {label} | {ms(samples, 0.5):.3f} | {ms(samples, 0.99):.3f} | "
            f"{max(samples) * 1000:.3f} | {evictions} |"
        )


if __name__ == "__main__":
    main()
