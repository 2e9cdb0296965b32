"""Ten times moc's capacity, and what comes after.

One ``backend: openai`` model whose responder answers each request after
``--delay`` (0.1 s) and which moc runs ``--parallel`` (4) at a time: a
capacity of parallel ÷ delay = 40 requests/s. The load generator (its own
process) offers ``--factor`` (10) times that, open loop, for ``--seconds``
(60). Beside it, a separate client GETs ``/health`` every 100 ms, and moc's
queue depth (``/metrics``), RSS and CPU are sampled every 250 ms.

Per ``--window`` (5 s) of the run, by when each request was due: answers
200 / 429 (and whether each 429 carried ``Retry-After``) / 503 (by code) /
other / none, the latency of the 200s; and in the window: 200s answered per
second, the deepest queue, ``/health``'s p50/p99 (goal: p99 < 50 ms) beside
the p99 of a trivial responder probed the same way (where both are slow, the
machine was), moc's RSS (goal: bounded) and CPU. After the
offered load stops: the time until the queue is empty and a request is
answered within twice its unloaded latency ("full recovery"), and RSS a few
seconds later.

The queues are moc's defaults unless ``--max-waiting`` / ``--timeout-s`` set
the normal-priority queue.

    python benchmarks/overload.py [--seconds 60] [--factor 10] [--delay 0.1] [--parallel 4]
                                  [--max-waiting N] [--timeout-s S]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lease_ops import start_moc
from mixed_load import (
    Kind,
    OpenLoop,
    Record,
    Sent,
    Watch,
    fmt,
    machine,
    met,
    pct,
    queue_depth,
    start_responder,
    table,
)

from moc.config import QUEUE_DEFAULTS

BODY = b'{"model": "slow", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}'
PATH = "/v1/chat/completions"
HEALTH_GOAL_MS = 50.0
IDLE_AFTER_S = 5.0


def moc_config(port: int, parallel: int, max_waiting: int | None, timeout_s: float | None) -> str:
    queue = {}
    if max_waiting is not None:
        queue["max_waiting"] = max_waiting
    if timeout_s is not None:
        queue["timeout_s"] = timeout_s
    queues = (
        "gateway: {queues: {normal: {" + ", ".join(f"{k}: {v}" for k, v in queue.items()) + "}}}\n"
        if queue
        else ""
    )
    return queues + (
        f"models: [{{name: slow, backend: openai, url: 'http://127.0.0.1:{port}/v1', "
        f"parallel: {parallel}}}]\n"
    )


def unloaded_latency_ms(http: httpx.Client, n: int = 10) -> float:
    """The median latency of ``n`` requests sent one at a time."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        http.post(PATH, content=BODY).raise_for_status()
        times.append((time.monotonic() - t0) * 1000)
    return statistics.median(times)


@dataclass
class Recovery:
    """When, after the offered load stopped, moc was back to normal."""

    depth_at_stop: float = float("nan")
    queue_empty_s: float = float("nan")  # until moc_queue_depth read 0
    recovered_s: float = float("nan")  # until a request was answered within 2× normal
    probe_ms: float = float("nan")


def watch_recovery(url: str, stop_at: float, normal_ms: float, out: Recovery) -> None:
    """From ``stop_at``: poll the queue depth every 50 ms until it is 0, then
    send one request at a time until one is answered 200 within twice the
    unloaded latency (or 300 s pass)."""
    time.sleep(max(0.0, stop_at - time.monotonic()))
    with httpx.Client(base_url=url, trust_env=False, timeout=60) as http:
        out.depth_at_stop = queue_depth(http)
        while time.monotonic() - stop_at < 300:
            if queue_depth(http) == 0:
                if out.queue_empty_s != out.queue_empty_s:
                    out.queue_empty_s = time.monotonic() - stop_at
                t0 = time.monotonic()
                status = http.post(PATH, content=BODY).status_code
                took = (time.monotonic() - t0) * 1000
                if status == 200 and took <= 2 * normal_ms:
                    out.recovered_s, out.probe_ms = time.monotonic() - stop_at, took
                    return
            time.sleep(0.05)


def outcome(r: Record) -> str:
    if r.status == 0:
        return "none"
    if r.status in (200, 429):
        return str(r.status)
    if r.status == 503:
        return f"503 {r.code or '?'}"
    return f"other {r.status} {r.code}".strip()


def windows_table(sent: Sent, watch: Watch, window: float, until: float) -> str:
    t0 = sent.started
    rows = []
    start = t0
    while start < until:
        end = start + window
        mine = [r for r in sent.records if start <= r.due < end]
        counts: dict[str, int] = {}
        for r in mine:
            counts[outcome(r)] = counts.get(outcome(r), 0) + 1
        fivexx = ", ".join(f"{k.split(' ', 1)[1]}: {v}" for k, v in counts.items() if "503" in k)
        other = sum(v for k, v in counts.items() if k.startswith("other") or k == "none")
        no_retry = sum(1 for r in mine if r.status == 429 and not r.retry_after)
        samples = watch.between(start, end)
        health = watch.health_ms(start, end)
        control = watch.health_ms(start, end, control=True)
        oks = [r.ms for r in mine if r.status == 200]
        answered = sum(1 for r in sent.records if r.status == 200 and start <= r.answered < end)
        rows.append(
            (
                f"{start - t0:.0f}–{end - t0:.0f}" + (" (after)" if start >= sent.stopped else ""),
                len(mine),
                counts.get("200", 0),
                fmt(pct(oks, 0.5), 0),
                fmt(answered / window, 1),
                f"{counts.get('429', 0)} ({no_retry})",
                fivexx or "0",
                other,
                fmt(max((s.queue_depth for s in samples), default=float("nan")), 0),
                fmt(pct(health, 0.5), 1),
                fmt(pct(health, 0.99), 1),
                fmt(pct(control, 0.99), 1),
                fmt(max((s.rss / (1 << 20) for s in samples), default=float("nan")), 1),
                fmt(watch.cpu_percent(start, end), 0),
            )
        )
        start = end
    return table(
        [
            "s",
            "sent",
            "200",
            "200 p50 ms",
            "200 answered/s",
            "429 (without Retry-After)",
            "503 by code",
            "other / none",
            "queue depth max",
            "/health p50 ms",
            "/health p99 ms",
            "control p99 ms",
            "moc RSS MiB",
            "moc CPU %",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--factor", type=float, default=10.0, help="offered load ÷ capacity")
    parser.add_argument("--delay", type=float, default=0.1, help="the responder's time, s")
    parser.add_argument("--parallel", type=int, default=4, help="the model's slots in moc")
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--max-waiting", type=int, help="gateway.queues.normal.max_waiting")
    parser.add_argument("--timeout-s", type=float, help="gateway.queues.normal.timeout_s")
    args = parser.parse_args()

    capacity = args.parallel / args.delay
    rate = args.factor * capacity
    max_waiting = args.max_waiting or int(QUEUE_DEFAULTS["normal"]["max_waiting"])
    timeout_s = args.timeout_s or QUEUE_DEFAULTS["normal"]["timeout_s"]
    tmp = Path(tempfile.mkdtemp(prefix="moc-bench-overload-"))
    responder, port = start_responder(args.delay)
    config = moc_config(port, args.parallel, args.max_waiting, args.timeout_s)
    moc, moc_port, _ = start_moc(tmp, config)
    url = f"http://127.0.0.1:{moc_port}"
    try:
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
            normal_ms = unloaded_latency_ms(http)
        watch = Watch(url, moc.pid).start()
        time.sleep(1.0)
        kinds = [Kind("chat", PATH, BODY, 1)]
        generator = OpenLoop(
            url, kinds, rate=rate, seconds=args.seconds, timeout_s=timeout_s + 60
        ).start()
        generator.begun.wait()
        begun = time.monotonic()
        recovery = Recovery()
        recovering = threading.Thread(
            target=watch_recovery, args=(url, begun + args.seconds, normal_ms, recovery)
        )
        recovering.start()
        sent = generator.result()
        recovering.join()
        time.sleep(IDLE_AFTER_S)  # idle, for the memory after
        watch.stop()
    finally:
        moc.terminate()
        moc.wait()
        responder.terminate()
        responder.join()

    during = watch.between(sent.started, sent.stopped)
    rss = [s.rss / (1 << 20) for s in during]
    rss_before = watch.samples[0].rss / (1 << 20)
    rss_after = watch.samples[-1].rss / (1 << 20)
    health = watch.health_ms(sent.started, sent.stopped)
    control = watch.health_ms(sent.started, sent.stopped, control=True)
    failed_health = sum(1 for t, _, s in watch.health if s != 200)
    records = sent.records
    too_many = [r for r in records if r.status == 429]
    served = [r for r in records if r.status == 200]
    bad_5xx = [r for r in records if r.status >= 500 and r.code != "queue_timeout"]
    unanswered = [r for r in records if r.status == 0]
    goodput = sum(1 for r in served if r.answered < sent.stopped) / (sent.stopped - sent.started)
    # bounded memory: no growth from the first full window to the end of the overload
    settled = [s.rss / (1 << 20) for s in during if s.t >= sent.started + args.window]
    growth = (settled[-1] - settled[0]) if settled else float("nan")
    drain_s = recovery.depth_at_stop / capacity

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{stamp}; {machine()}; moc, responder and load generator share them\n")
    print(
        f"capacity {capacity:g} requests/s ({args.parallel} slots × {args.delay * 1000:g} ms); "
        f"offered {rate:g}/s ({args.factor:g}×) for {args.seconds:g} s; normal queue "
        f"{max_waiting} waiting, {timeout_s:g} s timeout; one request alone: {normal_ms:.1f} ms; "
        f"sent {sent.rate:.0f}/s; load generator CPU "
        f"{100 * sent.cpu_s / (sent.stopped - sent.started):.0f} % of one core\n"
    )
    # the windows go on until the recovery and the idle seconds after it
    end = sent.stopped + (recovery.recovered_s if recovery.recovered_s > 0 else 0.0) + IDLE_AFTER_S
    print(windows_table(sent, watch, args.window, end))
    print()
    print(
        table(
            ["", "value"],
            [
                ("answered 200 while offered, per s", f"{goodput:.1f} (capacity {capacity:g})"),
                ("queue depth when the load stopped", fmt(recovery.depth_at_stop, 0)),
                ("after the stop: queue empty in", f"{fmt(recovery.queue_empty_s, 2)} s"),
                (
                    "after the stop: full recovery in",
                    f"{fmt(recovery.recovered_s, 2)} s (probe {fmt(recovery.probe_ms)} ms; "
                    f"the queue at the stop drains at capacity in {drain_s:.1f} s)",
                ),
                (
                    "/health during the overload p50 / p99 / max ms",
                    f"{fmt(pct(health, 0.5))} / {fmt(pct(health, 0.99))} / "
                    f"{fmt(max(health, default=float('nan')))} ({len(health)} samples, "
                    f"{failed_health} not 200)",
                ),
                (
                    "control (trivial responder) p50 / p99 / max ms",
                    f"{fmt(pct(control, 0.5))} / {fmt(pct(control, 0.99))} / "
                    f"{fmt(max(control, default=float('nan')))}",
                ),
                (
                    f"moc RSS before / peak / end of overload / {IDLE_AFTER_S:g} s after, MiB",
                    f"{rss_before:.1f} / {max(rss, default=float('nan')):.1f} / "
                    f"{fmt(rss[-1] if rss else float('nan'))} / {rss_after:.1f}",
                ),
            ],
        )
    )
    print()
    checks = [
        (
            f"every 429 carries Retry-After ({len(too_many)} answers)",
            all(r.retry_after for r in too_many),
        ),
        (f"no 5xx but 503 queue_timeout ({len(bad_5xx)} others)", not bad_5xx),
        (f"every request answered ({len(unanswered)} not)", not unanswered),
        (
            f"moc serves at capacity under overload ({goodput:.1f}/s ≥ 90 % of {capacity:g})",
            goodput >= 0.9 * capacity,
        ),
        (
            f"/health p99 < {HEALTH_GOAL_MS:g} ms during the overload "
            f"({fmt(pct(health, 0.99))} ms; control {fmt(pct(control, 0.99))} ms)",
            pct(health, 0.99) < HEALTH_GOAL_MS and failed_health == 0,
        ),
        (
            f"RSS bounded (grew {fmt(growth)} MiB from {args.window:g} s to the end; ≤ 10 MiB)",
            growth <= 10,
        ),
        (
            f"full recovery within the drain time + 2 s ({fmt(recovery.recovered_s, 2)} s)",
            recovery.recovered_s <= drain_s + 2,
        ),
    ]
    for text, ok in checks:
        print(f"- {met(ok)}: {text}")


if __name__ == "__main__":
    main()
