"""Tables for people, JSON for programs.

Every table is built by :func:`table`, so that ``moc models``, ``moc ps``,
``moc devices`` and ``moc lease list`` look alike: no box, bold headers, the
first column flush left, sizes right-aligned, and no cell ever wrapped onto a
second line (a row that does not fit is cut short with an ellipsis, so each
row stays one line in a pipe or a CI log). Cells are :class:`~rich.text.Text`,
never markup: a holder's name with brackets in it is shown as written.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from moc import wire
from moc.sdk.wire import LeaseInfo
from moc.units import format_size

out = Console()
err = Console(stderr=True, soft_wrap=True)

FAILED_STATES = frozenset({"failed", "degraded", "backoff"})


def emit_json(data: Any) -> None:
    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        raise TypeError

    sys.stdout.write(orjson.dumps(data, default=default, option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")


@dataclasses.dataclass(frozen=True)
class Column:
    """A table column: its header, how a row's cell is drawn, and whether it is a number."""

    header: str
    cell: Callable[[Any], str | Text]
    numeric: bool = False
    max_width: int | None = None  # free text (a holder's name) gives way before numbers do


def table(columns: Sequence[Column], rows: Sequence[Any]) -> Table:
    """The one table style of the CLI. The first column names the row (a model, a
    lease id to renew): it is never cut short; the others give way first."""
    cells = [
        [c if isinstance(c, Text) else Text(c) for c in (col.cell(row) for col in columns)]
        for row in rows
    ]
    grid = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    for i, column in enumerate(columns):
        widest = max([len(column.header), *(line[i].cell_len for line in cells)])
        grid.add_column(
            column.header,
            justify="right" if column.numeric else "left",
            no_wrap=True,
            overflow="ellipsis",
            min_width=widest if i == 0 else None,
            max_width=column.max_width,
        )
    for line in cells:
        grid.add_row(*line)
    return grid


def _maybe_size(n: int | None) -> str:
    return "-" if not n else format_size(n)


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m"


def _state(m: wire.Model) -> Text:
    state = str(m["state"])
    return Text(state, style="red" if state in FAILED_STATES else "")


def model_device(m: wire.Model) -> str:
    """Where the model holds memory now (the server names none for a model that holds none)."""
    return str(m["device"]) if m["device"] else "-"


_MODEL = Column("MODEL", lambda m: m["id"])
_BACKEND = Column("BACKEND", lambda m: m["backend"])
_STATE = Column("STATE", _state)
_DEVICE = Column("DEVICE", model_device)
_HELD = Column("HELD", lambda m: _maybe_size(m["reserved_bytes"]), numeric=True)
_USED = Column("USED", lambda m: _maybe_size(m["measured_bytes"]), numeric=True)

MODELS_COLUMNS = (
    _MODEL,
    _BACKEND,
    _STATE,
    _DEVICE,
    _HELD,
    _USED,
    Column(
        "KEEP ALIVE",
        lambda m: "never" if m["keep_alive_s"] < 0 else _seconds(m["keep_alive_s"]),
        numeric=True,
    ),
    Column("PINNED", lambda m: "yes" if m["pinned"] else ""),
)
PS_COLUMNS = (
    _MODEL,
    _STATE,
    _DEVICE,
    Column("EST", lambda m: _maybe_size(m["estimated_bytes"]), numeric=True),
    _HELD,
    _USED,
    Column("BUSY", lambda m: str(m["in_flight"]), numeric=True),
    Column(
        "UNLOAD IN",
        lambda m: "never" if m["keep_alive_s"] < 0 else _seconds(m["unload_in_s"]),
        numeric=True,
    ),
)
DEVICES_COLUMNS = (
    Column("DEVICE", lambda d: d["id"]),
    Column("TOTAL", lambda d: format_size(d["total_bytes"]), numeric=True),
    Column("CAPACITY", lambda d: format_size(d["capacity_bytes"]), numeric=True),
    Column("HELD", lambda d: format_size(d["held_bytes"]), numeric=True),
    Column("OBSERVED", lambda d: format_size(d["observed_bytes"]), numeric=True),
    Column("FREE", lambda d: format_size(d["free_bytes"]), numeric=True),
    Column("LEASES", lambda d: str(d["leases"]), numeric=True),
    Column("NAME", lambda d: d["name"], max_width=20),
)


def _lease_used(lease: LeaseInfo) -> Text:
    used = "-" if lease.used_bytes is None else format_size(lease.used_bytes)
    return Text(f"{used} (over)", style="red") if lease.over_limit else Text(used)


PREEMPTIBLE = "*"

# The fencing token is left to `moc lease acquire` and --json: with it a row
# no longer fits 80 columns.
LEASES_COLUMNS = (
    Column("LEASE", lambda lease: lease.id),
    Column("DEVICE", lambda lease: lease.device),
    Column("SIZE", lambda lease: format_size(lease.bytes), numeric=True),
    Column("USED", _lease_used, numeric=True),
    Column("HOLDER", lambda lease: lease.holder or "-", max_width=16),
    Column("PID", lambda lease: "-" if lease.pid is None else str(lease.pid), numeric=True),
    Column("PRIO", lambda lease: f"{lease.priority}{PREEMPTIBLE if lease.preemptible else ''}"),
    Column("EXPIRES", lambda lease: f"{lease.expires_in_s:.1f}s", numeric=True),
)


GOALS_COLUMNS = (
    Column("GOAL", lambda g: g["name"]),
    Column("WEIGHT", lambda g: f"{g['weight']:g}", numeric=True),
    Column("STATUS", lambda g: g["status"]),
    Column("DESCRIPTION", lambda g: g["description"] or "-", max_width=40),
)


def goals_table(goals: Sequence[wire.Goal]) -> Table:
    return table(GOALS_COLUMNS, goals)


def models_table(models: Sequence[wire.Model]) -> Table:
    return table(MODELS_COLUMNS, models)


def ps_table(models: Sequence[wire.Model]) -> Table:
    """The models holding memory, as ``ollama ps`` shows them."""
    return table(PS_COLUMNS, models)


def devices_table(devices: Sequence[wire.Device]) -> Table:
    return table(DEVICES_COLUMNS, devices)


def leases_table(leases: Sequence[LeaseInfo]) -> Table:
    grid = table(LEASES_COLUMNS, leases)
    if any(lease.preemptible for lease in leases):
        grid.caption = f"{PREEMPTIBLE} preemptible"
        grid.caption_justify = "left"
    return grid


def model_detail(m: wire.ModelDetail) -> str:
    """A model after ``moc load``: one fact per line, each well inside 80 columns."""
    where = model_device(m)
    lines = [f"{m['id']}: {m['state']}" + ("" if where == "-" else f" on {where}")]
    size = m.get("size")
    if size:
        est = size["estimate"]
        lines += [
            f"  reserves  {format_size(size['bytes'])} ({size['source']})",
            f"  estimate  {format_size(est['total_bytes'])} = "
            f"weights {format_size(est['weights_bytes'])} + kv cache "
            f"{format_size(est['kv_cache_bytes'])}",
            f"            + compute {format_size(est['compute_bytes'])} + runtime "
            f"{format_size(est['runtime_bytes'])}",
            f"  measured  {_maybe_size(size['measured_bytes'])}",
        ]
    elif m.get("size_error"):
        lines.append(f"  size      unknown ({m['size_error']})")
    if m.get("last_error"):
        lines.append(f"  error     {m['last_error']}")
    return "\n".join(lines)


def _ready(node: wire.ClusterNode) -> str:
    return ", ".join(m["name"] for m in node["models"] if m["state"] == "ready") or "-"


def _free(node: wire.ClusterNode) -> str:
    return format_size(sum(d["free_bytes"] for d in node["devices"]))


CLUSTER_COLUMNS = (
    Column("NODE", lambda n: n["name"] + (" *" if n["self"] else "")),
    Column("URL", lambda n: n["url"], max_width=32),
    Column("DEVICES", lambda n: str(len(n["devices"])), numeric=True),
    Column("FREE", _free, numeric=True),
    Column("READY", lambda n: _ready(n), max_width=40),
    Column("QUEUED", lambda n: str(n["queued"]), numeric=True),
    Column("SEEN", lambda n: f"{n['seen_s_ago']:.1f}s ago", numeric=True),
)

CLUSTER_PS_COLUMNS = (
    Column("NODE", lambda row: row[0]),
    Column("MODEL", lambda row: row[1]["name"]),
    Column("STATE", lambda row: row[1]["state"]),
    Column("SIZE", lambda row: format_size(row[1]["bytes"]), numeric=True),
)


def cluster_table(view: wire.ClusterView) -> Table:
    """The nodes up, this one starred; the caption says whether Redis answers."""
    grid = table(CLUSTER_COLUMNS, view["nodes"])
    grid.caption = f"redis: {view['redis']}   * the node that answered"
    grid.caption_justify = "left"
    return grid


def cluster_ps_table(view: wire.ClusterView) -> Table:
    """The models that hold memory on every node."""
    rows = [
        (n["name"], m)
        for n in view["nodes"]
        for m in n["models"]
        if m["state"] not in ("stopped", "failed", "degraded")
    ]
    return table(CLUSTER_PS_COLUMNS, rows)
