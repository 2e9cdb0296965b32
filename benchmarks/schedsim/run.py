"""Replay the standard traces under moc's policy and the baselines; print tables.

    python -m benchmarks.schedsim.run [--seed 1]

Wait = arrival to the start of service (queueing, and any load or drain
before it): what a client sees before its first token, apart from prefill.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from benchmarks.schedsim.baselines import capacity, lru, min_loads, ollama_like
from benchmarks.schedsim.moc_policy import MocSim, default_limits
from benchmarks.schedsim.trace import Trace, standard
from benchmarks.schedsim.world import Result
from moc.scheduler.waiting import Priority

Policy = Callable[[Trace], Result]
POLICIES: dict[str, Policy] = {
    "moc": lambda t: MocSim(t).run(),
    "ollama-like": ollama_like,
    "lru": lru,
}
BATCH_S = (0.0, 10.0, 20.0, 30.0, 40.0, 60.0)  # the normal queue's batch_s, swept on zipf
IDLE_MARGIN = 1.10  # high-priority p95 may be at most 10 % above the idle system's
LOAD_RATIO = 0.50  # moc's loads at most half the Ollama-like policy's


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def waits(result: Result, p: Priority) -> str:
    w = result.waits[p]
    if not w and not result.timed_out[p]:
        return "–"
    return f"{quantile(w, 0.5):.2f} / {quantile(w, 0.95):.2f}"


def table(trace: Trace, results: list[Result]) -> list[str]:
    cap = capacity(trace)
    lines = [
        f"### {trace.name}: {len(trace.requests)} requests",
        "",
        trace.about + f"; budget fits {cap} models; load {trace.models[0].load_s:g} s, "
        f"unload {trace.models[0].unload_s:g} s, {trace.models[0].parallel} slots per model",
        "",
        "| policy | loads | MIN over own start order | served | timed out (high/normal) "
        "| failed | high wait p50 / p95 s | normal wait p50 / p95 s | budget violations |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.policy} | {r.loads} | {min_loads(r.start_order, cap)} | {r.served} | "
            f"{r.timed_out[Priority.HIGH]}/{r.timed_out[Priority.NORMAL]} | {r.failed} | "
            f"{waits(r, Priority.HIGH)} | {waits(r, Priority.NORMAL)} | {r.violations} |"
        )
    bound = min_loads([q.model for q in trace.requests], cap)
    lines.append(
        f"| MIN over arrival order (bound for any policy starting requests in arrival order) "
        f"| {bound} | | | | | | | |"
    )
    below = [r.policy for r in results if r.loads < bound]
    if below:
        lines += [
            "",
            f"Below the in-order bound: {', '.join(below)}. They start requests out of arrival "
            "order (moc groups them by model; Ollama puts a request back at the end of its "
            "queue while another model loads), so that bound does not apply to them; the bound "
            "over a policy's own start order does.",
        ]
    return lines


def batching(trace: Trace) -> list[str]:
    """moc with ``gateway.queues.normal.batch_s`` swept on one trace: loads
    against waits. Prints a table; returns the goal line for the best setting."""
    ollama = ollama_like(trace)
    print(f"### Batching: {trace.name} with `gateway.queues.normal.batch_s`\n")
    print(
        f"Ollama-like on the same trace: {ollama.loads} loads, normal wait "
        f"p50 / p95 {waits(ollama, Priority.NORMAL)} s\n"
    )
    print("| batch_s | loads | vs Ollama-like | normal wait p50 / p95 s | timed out | violations |")
    print("|---|---|---|---|---|---|")
    met = []
    for batch_s in BATCH_S:
        limits = replace(default_limits(trace), batch_s=(0.0, batch_s, 0.0))
        r = MocSim(trace, limits, name=f"moc, batch_s {batch_s:g}").run()
        ratio = r.loads / max(ollama.loads, 1)
        print(
            f"| {batch_s:g} | {r.loads} | {ratio:.0%} | {waits(r, Priority.NORMAL)} | "
            f"{sum(r.timed_out.values())} | {r.violations} |"
        )
        if ratio <= LOAD_RATIO:
            met.append((batch_s, r.loads, ratio, waits(r, Priority.NORMAL)))
    print()
    if not met:
        return [f"- {trace.name} with batching: no batch_s in {BATCH_S} halves the loads"]
    batch_s, loads, ratio, normal = met[0]
    return [
        f"- {trace.name} with `gateway.queues.normal.batch_s: {batch_s:g}`: moc loads {loads} "
        f"({ratio:.0%} of Ollama-like): met, at a normal wait p50 / p95 of {normal} s"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    t0 = time.perf_counter()
    print(f"schedsim, seed {args.seed}; python {platform.python_version()}\n")
    goals: list[str] = []
    for trace in standard(args.seed):
        results = [policy(trace) for policy in POLICIES.values()]
        print("\n".join(table(trace, results)))
        moc, ollama = results[0], results[1]
        ratio = moc.loads / max(ollama.loads, 1)
        goals.append(
            f"- {trace.name}: moc loads {moc.loads} vs Ollama-like {ollama.loads} "
            f"({ratio:.0%}; goal ≤ {LOAD_RATIO:.0%}): {'met' if ratio <= LOAD_RATIO else 'NOT met'}"
        )
        violations = sum(r.violations for r in results)
        goals.append(
            f"- {trace.name}: budget violations moc {moc.violations}, all policies {violations} "
            f"(goal: 0 for moc): {'met' if moc.violations == 0 else 'NOT met'}"
        )
        if trace.only(Priority.HIGH).requests:
            idle = POLICIES["moc"](trace.only(Priority.HIGH))
            p95_idle = quantile(idle.waits[Priority.HIGH], 0.95)
            p95 = quantile(moc.waits[Priority.HIGH], 0.95)
            print(
                f"\nIdle-system reference (moc, the {len(idle.waits[Priority.HIGH])} high-priority "
                f"requests alone): high wait p50 / p95 = {waits(idle, Priority.HIGH)} s, "
                f"loads {idle.loads}"
            )
            met = p95 <= IDLE_MARGIN * p95_idle
            goals.append(
                f"- {trace.name}: moc high-priority p95 {p95:.2f} s vs idle {p95_idle:.2f} s "
                f"(goal ≤ {IDLE_MARGIN:.2f}×): {'met' if met else 'NOT met'}"
            )
        print()
    goals += batching(standard(args.seed)[0])
    print("### Goals\n")
    print("\n".join(goals))
    print(f"\n(simulated in {time.perf_counter() - t0:.1f} s of real time)")


if __name__ == "__main__":
    main()
