"""What every ``moc`` command shares: the ``--url`` and ``--json`` options, and
how an error moc answered is shown (one line, then the exit status 1)."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.text import Text

from moc.cli.render import err
from moc.errors import DatasetInvalid, MocError

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="MOC_URL", help="moc's HTTP address.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(error: MocError) -> NoReturn:
    err.print(Text.assemble(("error", "bold red"), f" [{error.code}] {error.message}"))
    if isinstance(error, DatasetInvalid):  # every wrong line, as the upload found them
        for line in error.details.get("errors", []):
            got = "" if line.get("got") is None else f" (got {line['got']})"
            err.print(
                f"  line {line['line']}: {line['field']}: expected {line['expected']}{got}",
                highlight=False,
                markup=False,
            )
    raise typer.Exit(1)
