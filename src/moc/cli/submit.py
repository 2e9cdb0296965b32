"""``moc submit``: queue async jobs and follow them, like the seed's
``submit_test_job.py`` (``--batch``, ``--random N``, ``--spam N``)."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from datetime import datetime

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from moc import wire
from moc.cli.render import err
from moc.sdk.client import Client

PROMPTS = (
    "Summarise the plot of a film you like in two sentences.",
    "Write a haiku about memory.",
    "List three uses for a paperclip.",
    "Explain a GPU to a child.",
    "Translate 'good morning' into French and German.",
    "Give a name for a grey cat.",
)
PRIORITIES = ("high", "normal", "low")
TERMINAL = {"complete", "failed", "cancelled"}


@dataclass(frozen=True)
class Plan:
    model: str
    prompt: str
    priority: str


def plans(
    models: list[str],
    *,
    count: int,
    batch: bool,
    randomise: bool,
    model: str | None,
    prompt: str | None,
    priority: str | None,
    seed: int | None,
) -> list[Plan]:
    """The jobs to submit: one, the fixed batch, or ``count`` random ones."""
    rng = random.Random(seed)
    if batch:
        names = [model] if model else models
        return [
            Plan(names[i % len(names)], prompt or PROMPTS[i], priority or PRIORITIES[i % 3])
            for i in range(4)
        ]
    if not randomise:
        return [Plan(model or models[0], prompt or PROMPTS[0], priority or "normal")] * count
    return [
        Plan(
            model or rng.choice(models),
            prompt or rng.choice(PROMPTS),
            priority or rng.choice(PRIORITIES),
        )
        for _ in range(count)
    ]


def submit_all(client: Client, todo: list[Plan], max_tokens: int, delay: float) -> list[str]:
    ids = []
    with _progress() as progress:
        task = progress.add_task("submitting", total=len(todo))
        for plan in todo:
            job = client.submit_job(
                plan.model,
                prompt=plan.prompt,
                priority=plan.priority,
                metadata={"source": "moc submit"},
                options={"max_tokens": max_tokens},
            )
            ids.append(job["job_id"])
            progress.advance(task)
            if delay:
                time.sleep(delay)
    return ids


def follow(client: Client, ids: list[str], timeout: float) -> list[wire.Job]:
    """Poll until every job has ended (or ``timeout``); the jobs as last seen."""
    seen: dict[str, wire.Job] = {}
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task("waiting for results", total=len(ids))
        while True:
            for job_id in ids:
                if job_id in seen and seen[job_id]["status"] in TERMINAL:
                    continue
                seen[job_id] = client.job(job_id)
            done = sum(1 for j in seen.values() if j["status"] in TERMINAL)
            progress.update(task, completed=done)
            if done == len(ids) or time.monotonic() > deadline:
                return [seen[i] for i in ids]
            time.sleep(0.25)


def summary(jobs: list[wire.Job]) -> Table:
    table = Table(title="jobs", show_edge=False)
    for column in ("status", "jobs", "wait p50 s", "run p50 s", "models"):
        table.add_column(column)
    by_status: dict[str, list[wire.Job]] = {}
    for job in jobs:
        by_status.setdefault(job["status"], []).append(job)
    for status, group in sorted(by_status.items()):
        waits = [_span(j["created_at"], j["started_at"]) for j in group]
        runs = [_span(j["started_at"], j["finished_at"]) for j in group]
        table.add_row(
            status,
            str(len(group)),
            _median(waits),
            _median(runs),
            ", ".join(sorted({j["model"] for j in group})),
        )
    return table


def show_failures(jobs: list[wire.Job]) -> None:
    for job in jobs:
        if job["status"] == "failed":
            error = job.get("error") or {}
            err.print(f"{job['job_id']} failed: [{error.get('code')}] {error.get('message')}")


def _span(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _median(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.3f}" if known else "-"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
