"""``moc dataset add|list|show|rm``: datasets for learning jobs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from moc import wire
from moc.cli.common import JsonOpt, UrlOpt, fail
from moc.cli.render import Column, emit_json, err, out, table
from moc.errors import MocError
from moc.sdk.client import Client
from moc.units import format_size

dataset_app = typer.Typer(
    help="Upload, list, show, remove JSONL datasets for learning jobs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[str, typer.Argument(help="The dataset's name (or id).")]

# The id is left to `moc dataset show` and --json: with it a row no longer fits 80 columns.
DATASET_COLUMNS = (
    Column("DATASET", lambda d: d["name"]),
    Column("FORMAT", lambda d: d["format"]),
    Column("ROWS", lambda d: str(d["rows"]), numeric=True),
    Column("SIZE", lambda d: format_size(d["bytes"]), numeric=True),
    Column("TOKENS", lambda d: f"~{d['tokens']}", numeric=True),
    Column("CREATED", lambda d: d["created_at"][:16].replace("T", " ")),
)


def datasets_table(datasets: Sequence[wire.Dataset]) -> Table:
    return table(DATASET_COLUMNS, datasets)


def dataset_detail(d: wire.Dataset) -> str:
    return "\n".join(
        [
            f"{d['name']}: {d['format']}, {d['rows']} rows",
            f"  id       {d['id']}",
            f"  size     {format_size(d['bytes'])} ({d['bytes']} bytes)",
            f"  tokens   ~{d['tokens']} (estimated)",
            f"  digest   {d['digest']}",
            f"  created  {d['created_at']}",
        ]
    )


def _show(data: Any, as_json: bool) -> None:
    if as_json:
        emit_json(data)
    else:
        out.print(dataset_detail(data), highlight=False, markup=False, soft_wrap=True)


@dataset_app.command("add")
def dataset_add(
    name: Annotated[str, typer.Argument(help="1 to 64 letters, digits, _ . -")],
    file: Annotated[
        Path, typer.Argument(help="A JSONL file.", exists=True, dir_okay=False, readable=True)
    ],
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help="chat, instruction or documents; default: detected."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a dataset of this name.")
    ] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload a JSONL file as a dataset.

    Every line is checked; a file with any wrong line is not stored, and each
    wrong line is shown with its field and what was expected.
    """
    try:
        with err.status(f"uploading {file}…"):
            added = Client(url).add_dataset(name, file, format=format, replace=replace)
    except MocError as exc:
        fail(exc)
    _show(added, as_json)


@dataset_app.command("list")
def dataset_list(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """List the datasets."""
    try:
        found = Client(url).datasets()
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    elif not found:
        out.print("no datasets")
    else:
        out.print(datasets_table(found))


@dataset_app.command("show")
def dataset_show(name: NameArg, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show one dataset."""
    try:
        found = Client(url).dataset(name)
    except MocError as exc:
        fail(exc)
    _show(found, as_json)


@dataset_app.command("rm")
def dataset_rm(name: NameArg, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Remove a dataset; refused while a learning job uses it."""
    try:
        removed = Client(url).remove_dataset(name)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(removed)
    else:
        out.print(f"dataset {removed['name']} removed ({removed['id']})", highlight=False)
