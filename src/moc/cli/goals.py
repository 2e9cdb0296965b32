"""``moc goals`` (list), ``moc goals add|set|rm``: the goals learning jobs share turns by."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from moc.cli.common import JsonOpt, UrlOpt, fail
from moc.cli.render import emit_json, goals_table, out
from moc.errors import InvalidRequest, MocError
from moc.sdk.client import Client

goals_app = typer.Typer(
    help="The goals learning jobs share turns by.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


def _given(ctx: typer.Context, name: str) -> Any:
    """The option ``name`` of the command, unless it was given only before the
    command (``moc goals --url … add …``) and not on it: then that one."""

    def typed(c: Any) -> bool:  # a typer or a click context
        source = c.get_parameter_source(name)
        return source is not None and source.name == "COMMANDLINE"

    parent = ctx.parent
    if typed(ctx) or parent is None or not typed(parent):
        return ctx.params[name]
    return parent.params[name]


def _client(ctx: typer.Context) -> Client:
    return Client(_given(ctx, "url"))


@goals_app.callback()
def goals_list(ctx: typer.Context, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """List the goals (with no command), or change them.

    Active goals share learning job starts by weight (goals.policy).
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        found = Client(url).goals()
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    elif not found:
        out.print("no goals")
    else:
        out.print(goals_table(found))


GoalStatusOpt = Annotated[
    str | None, typer.Option("--status", help="active, paused (its jobs yield) or done.")
]


def _show_goal(goal: Any, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(goal)
    else:
        out.print(
            f"goal {goal['name']} {verb}: weight {goal['weight']:g}, {goal['status']}",
            highlight=False,
            markup=False,
        )


@goals_app.command("add")
def goals_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Letters, digits, '.', '_', '-'; up to 64.")],
    weight: Annotated[float, typer.Option("--weight", "-w", help="Greater than 0, at most 1000.")],
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    status: GoalStatusOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a goal; it is active unless --status says otherwise."""
    try:
        goal = _client(ctx).create_goal(name, weight, description=description, status=status)
    except MocError as exc:
        fail(exc)
    _show_goal(goal, "added", _given(ctx, "as_json"))


@goals_app.command("set")
def goals_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A goal from `moc goals`.")],
    weight: Annotated[float | None, typer.Option("--weight", "-w")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    status: GoalStatusOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a goal's weight, description or status."""
    if weight is None and description is None and status is None:
        fail(InvalidRequest("--weight/--description/--status", "give at least one"))
    try:
        goal = _client(ctx).update_goal(name, weight=weight, description=description, status=status)
    except MocError as exc:
        fail(exc)
    _show_goal(goal, "changed", _given(ctx, "as_json"))


@goals_app.command("rm")
def goals_rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A goal from `moc goals`.")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a goal."""
    try:
        goal = _client(ctx).delete_goal(name)
    except MocError as exc:
        fail(exc)
    if _given(ctx, "as_json"):
        emit_json(goal)
    else:
        out.print(f"goal {goal['name']} removed", highlight=False, markup=False)
