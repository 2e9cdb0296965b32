"""``moc train``, ``moc quantize``, ``moc index``, ``moc search`` and
``moc learning list|show|cancel|follow``: learning jobs from the command line."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from moc import wire
from moc.cli.common import JsonOpt, UrlOpt, fail
from moc.cli.render import Column, emit_json, err, out, table
from moc.errors import MocError
from moc.sdk.client import Client
from moc.units import format_size

learning_app = typer.Typer(
    help="List, show, follow and cancel learning jobs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

FollowOpt = Annotated[
    bool, typer.Option("--follow", "-f", help="Show its progress until it finishes.")
]
GoalOpt = Annotated[str | None, typer.Option("--goal", help="The goal it serves.")]
PriorityOpt = Annotated[
    int | None, typer.Option("--priority", "-p", help="0..100; below 50 it yields to inference.")
]
DeviceOpt = Annotated[str | None, typer.Option("--device", "-d", help="Default: best fit.")]
NodeOpt = Annotated[
    str | None,
    typer.Option("--node", help="In a cluster: the node to run it on. Default: one that can."),
]


def _submit(
    url: str | None,
    follow: bool,
    as_json: bool,
    kind: str,
    params: dict[str, Any],
    **fields: Any,
) -> None:
    client = Client(url)
    try:
        given = {k: v for k, v in params.items() if v is not None}
        job = client.submit_learning(kind, params=given, **fields)
        if follow:
            job = _follow(client, job, as_json)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(job)
    elif not follow:
        out.print(f"learning job [bold]{job['id']}[/bold] {job['status']}: {_asks(job)}")
        err.print(f"follow it with: moc learning follow {job['id']}", highlight=False)
    if job["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


def _asks(job: wire.LearningJob) -> str:
    size = format_size(job["bytes"]) if job["bytes"] is not None else "?"
    return f"{job['kind']}, holds {size} ({job['bytes_source']}) while it runs"


def _follow(client: Client, job: wire.LearningJob, as_json: bool) -> wire.LearningJob:
    """Until the job finishes: a progress bar on a terminal, a line per change
    of status elsewhere; the job as it ended."""
    events = client.learning_events(job["id"])
    if as_json or not sys.stderr.isatty():
        return _follow_plain(events, job, quiet=as_json)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    last = job
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(f"{job['kind']} {job['id']}", total=None, detail=job["status"])
        for item in events:
            last = item["job"]
            p = last["progress"]
            bar.update(task, completed=p["step"], total=p["total"], detail=_detail(last))
    return last


def _follow_plain(
    events: Iterable[wire.LearningEvent], job: wire.LearningJob, quiet: bool
) -> wire.LearningJob:
    last, said = job, ""
    for item in events:
        last = item["job"]
        line = f"{last['id']} {_detail(last)}"
        if not quiet and (item["event"] != "progress" or last["status"] != said):
            err.print(line, highlight=False)
        said = last["status"]
    return last


def _detail(job: wire.LearningJob) -> str:
    p = job["progress"]
    parts: list[str] = [job["status"]]
    if p["total"]:
        parts.append(f"step {p['step']}/{p['total']}")
    if p["loss"] is not None:
        parts.append(f"loss {p['loss']:.4f}")
    if p["tokens_per_s"]:
        parts.append(f"{p['tokens_per_s']:.0f} tok/s")
    if job["yields"]:
        parts.append(f"yielded {job['yields']}×")
    if job["error"]:
        parts.append(job["error"].splitlines()[0])
    return ", ".join(parts)


# --- submitting -------------------------------------------------------------------
def _modules(given: str | None) -> list[str] | str | None:
    """``all-linear`` as itself, otherwise the comma-separated names."""
    if given is None or given == "all-linear":
        return given
    return [name.strip() for name in given.split(",") if name.strip()]


def train(
    dataset: Annotated[
        str, typer.Argument(help="A chat or instruction dataset (moc dataset add).")
    ],
    base: Annotated[
        str | None, typer.Option("--base", help="A base model folder; default tiny-base.")
    ] = None,
    rank: Annotated[int | None, typer.Option("--rank", help="LoRA rank (8).")] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", help="LoRA alpha (16).")] = None,
    dropout: Annotated[float | None, typer.Option("--dropout")] = None,
    target_modules: Annotated[
        str | None, typer.Option("--target-modules", help="Comma-separated module names.")
    ] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    seq_len: Annotated[int | None, typer.Option("--seq-len")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    checkpoint_every: Annotated[int | None, typer.Option("--checkpoint-every")] = None,
    goal: GoalOpt = None,
    priority: PriorityOpt = None,
    device: DeviceOpt = None,
    node: NodeOpt = None,
    follow: FollowOpt = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune a LoRA adapter on a dataset (kind sft)."""
    params = {
        "rank": rank,
        "alpha": alpha,
        "dropout": dropout,
        "target_modules": _modules(target_modules),
        "learning_rate": learning_rate,
        "epochs": epochs,
        "max_steps": max_steps,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "seed": seed,
        "checkpoint_every": checkpoint_every,
    }
    _submit(url, follow, as_json, "sft", params, base=base, dataset=dataset, goal=goal,
            priority=priority, device=device, node=node)  # fmt: skip


def quantize(
    model: Annotated[str, typer.Argument(help="A GGUF model moc serves (f32 or f16).")],
    type_: Annotated[
        str, typer.Option("--type", "-t", help="q8_0, q4_0 (K-quants need llama-quantize).")
    ] = "q8_0",
    goal: GoalOpt = None,
    priority: PriorityOpt = None,
    device: DeviceOpt = None,
    node: NodeOpt = None,
    follow: FollowOpt = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Quantize a GGUF model; measure its agreement with the source."""
    _submit(url, follow, as_json, "quantize", {"type": type_}, model=model, goal=goal,
            priority=priority, device=device, node=node)  # fmt: skip


def index(
    dataset: Annotated[str, typer.Argument(help="A documents dataset (moc dataset add).")],
    name: Annotated[str, typer.Option("--name", "-n", help="The index's name.")],
    chunk_size: Annotated[int | None, typer.Option("--chunk-size", help="Characters.")] = None,
    chunk_overlap: Annotated[int | None, typer.Option("--chunk-overlap")] = None,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            help="moc:<model> to embed with a model moc serves; "
            "or a sentence-transformers folder (default all-MiniLM-L6-v2).",
        ),
    ] = None,
    goal: GoalOpt = None,
    priority: PriorityOpt = None,
    device: DeviceOpt = None,
    node: NodeOpt = None,
    follow: FollowOpt = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Chunk, embed and index a documents dataset for retrieval."""
    chosen: dict[str, Any] | None = None
    if embedder is not None:
        if embedder.startswith("moc:"):
            chosen = {"kind": "moc", "model": embedder[4:]}
        else:
            chosen = {"kind": "sentence-transformers", "model": embedder}
    params: dict[str, Any] = {"name": name, "chunk_size": chunk_size}
    params |= {"chunk_overlap": chunk_overlap, "embedder": chosen}
    _submit(url, follow, as_json, "index", params, dataset=dataset, goal=goal,
            priority=priority, device=device, node=node)  # fmt: skip


def search(
    index_name: Annotated[str, typer.Argument(metavar="INDEX", help="The index's name.")],
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many chunks.")] = 5,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The chunks of an index closest to a query."""
    try:
        found = Client(url).query_index(index_name, query, k=k)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
        return
    for hit in found["results"]:
        out.print(f"[bold]{hit['score']:.3f}[/bold] {hit['source'] or ''}", highlight=False)
        out.print(f"  {hit['text'][:300]}", highlight=False, markup=False)


# --- looking at them ---------------------------------------------------------------
_COLUMNS = [
    Column("ID", lambda j: j["id"]),
    Column("KIND", lambda j: j["kind"]),
    Column("STATUS", lambda j: j["status"]),
    Column(
        "PROGRESS",
        lambda j: f"{j['progress']['step']}/{j['progress']['total'] or '?'}",
        numeric=True,
    ),
    Column(
        "LOSS",
        lambda j: "" if j["progress"]["loss"] is None else f"{j['progress']['loss']:.4f}",
        numeric=True,
    ),
    # what it asks for; `moc learning show` has where it holds it and its yields
    Column("MEMORY", lambda j: format_size(j["bytes"]) if j["bytes"] else "", numeric=True),
    Column("GOAL", lambda j: j["goal"] or "", max_width=12),
]


def jobs_table(jobs: list[wire.LearningJob]) -> Table:
    return table(_COLUMNS, jobs)


@learning_app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option("--status")] = None,
    kind: Annotated[str | None, typer.Option("--kind")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Learning jobs, newest first."""
    try:
        found = Client(url).learning_jobs(status=status, kind=kind, limit=limit)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    elif not found:
        out.print("no learning jobs")
    else:
        out.print(jobs_table(found))


@learning_app.command("show")
def show(job_id: str, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """One learning job in full."""
    try:
        job = Client(url).learning_job(job_id)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(job)
        return
    out.print(f"[bold]{job['id']}[/bold] {job['kind']}: {_detail(job)}", highlight=False)
    for key in ("base", "model", "dataset", "goal", "priority", "held_on", "created_at"):
        if job[key] is not None:
            out.print(f"  {key}: {job[key]}", highlight=False)
    out.print(f"  memory: {_asks(job)}", highlight=False)
    if job["output"]:
        for key, value in job["output"].items():
            if key != "losses":
                out.print(f"  output.{key}: {value}", highlight=False)
    if job["error"]:
        out.print(job["error"], highlight=False, markup=False)


@learning_app.command("follow")
def follow_job(job_id: str, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show a job's progress until it finishes."""
    client = Client(url)
    try:
        job = _follow(client, client.learning_job(job_id), as_json)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(job)
    else:
        out.print(f"{job['id']} {_detail(job)}", highlight=False)
    if job["status"] != "complete":
        raise typer.Exit(1)


@learning_app.command("cancel")
def cancel(job_id: str, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel a learning job (its memory is given back at once)."""
    try:
        job = Client(url).cancel_learning(job_id)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(job)
    else:
        out.print(f"{job['id']}: cancel requested ({job['status']})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("quantize")(quantize)
    app.command("index")(index)
    app.command("search")(search)
    app.add_typer(learning_app, name="learning")
