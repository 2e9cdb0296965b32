"""Tables for people, JSON for programs."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from moc.sdk.wire import LeaseInfo
from moc.units import format_size

out = Console()
err = Console(stderr=True, soft_wrap=True)


def emit_json(data: Any) -> None:
    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        raise TypeError

    sys.stdout.write(orjson.dumps(data, default=default, option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")


def devices_table(devices: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    table.add_column("DEVICE", no_wrap=True)
    for col in (
        "KIND",
        "TOTAL",
        "CAPACITY",
        "HELD",
        "OBSERVED",
        "FREE",
        "LEASES",
        "NAME",
    ):
        table.add_column(col, justify="left" if col in ("KIND", "NAME") else "right")
    for d in devices:
        table.add_row(
            d["id"],
            d["kind"],
            format_size(d["total_bytes"]),
            format_size(d["capacity_bytes"]),
            format_size(d["held_bytes"]),
            format_size(d["observed_bytes"]),
            format_size(d["free_bytes"]),
            str(d["leases"]),
            d["name"],
        )
    return table


def leases_table(leases: list[LeaseInfo]) -> Table:
    table = Table(box=None, header_style="bold")
    table.add_column("LEASE", no_wrap=True, min_width=16)
    for col in ("DEVICE", "SIZE", "USED", "HOLDER", "PID", "PRIO", "TOKEN", "EXPIRES IN"):
        table.add_column(col)
    for lease in leases:
        used = "-" if lease.used_bytes is None else format_size(lease.used_bytes)
        if lease.over_limit:
            used = f"[red]{used} (over)[/red]"
        table.add_row(
            lease.id,
            lease.device,
            format_size(lease.bytes),
            used,
            lease.holder or "-",
            "-" if lease.pid is None else str(lease.pid),
            str(lease.priority) + (" (preemptible)" if lease.preemptible else ""),
            str(lease.fencing_token),
            f"{lease.expires_in_s:.1f}s",
        )
    return table
