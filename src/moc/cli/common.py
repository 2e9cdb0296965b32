"""What every ``moc`` command shares: the ``--url`` and ``--json`` options,
how an error moc answered is shown (one line, then the exit status 1; a 401
says where the key comes from), and how an answer is shown."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.text import Text

from moc.cli.render import emit_json, err, out
from moc.errors import DatasetInvalid, MocError, Unauthenticated
from moc.sdk.wire import API_KEY_ENV

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="MOC_URL", help="moc's HTTP address.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


# After a 401: where the CLI takes its key from (moc --key sets MOC_API_KEY).
KEY_HINT = "set MOC_API_KEY or pass --key (moc --key KEY COMMAND)"
WRONG_KEY_HINT = "the key sent is moc --key's or MOC_API_KEY's"


def fail(error: MocError) -> NoReturn:
    message = error.message
    if isinstance(error, Unauthenticated):
        message += f"; {WRONG_KEY_HINT if os.environ.get(API_KEY_ENV) else KEY_HINT}"
    err.print(Text.assemble(("error", "bold red"), f" [{error.code}] {message}"))
    if isinstance(error, DatasetInvalid):  # every wrong line, as the upload found them
        for line in error.details.get("errors", []):
            got = "" if line.get("got") is None else f" (got {line['got']})"
            err.print(
                f"  line {line['line']}: {line['field']}: expected {line['expected']}{got}",
                highlight=False,
                markup=False,
            )
    raise typer.Exit(1)


T = TypeVar("T")


def show(fetch: Callable[[], T], as_json: bool, render: Callable[[T], Any]) -> None:
    """What ``fetch`` answers: as JSON, or as ``render`` draws it; an error
    moc answered is shown with :func:`fail`."""
    try:
        found = fetch()
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    else:
        out.print(render(found))
