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


def _maybe_size(n: int | None) -> str:
    return "-" if not n else format_size(n)


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m"


def models_table(models: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    table.add_column("MODEL", no_wrap=True)
    for col in ("BACKEND", "STATE", "DEVICE", "RESERVED", "MEASURED", "KEEP ALIVE", "PINNED"):
        table.add_column(col)
    for m in models:
        state = m["state"]
        if state in ("failed", "degraded", "backoff"):
            state = f"[red]{state}[/red]"
        keep = m["keep_alive_s"]
        table.add_row(
            m["id"],
            m["backend"],
            state,
            m["device"] or "-",
            _maybe_size(m["reserved_bytes"]),
            _maybe_size(m["measured_bytes"]),
            "never" if keep < 0 else _seconds(keep),
            "yes" if m["pinned"] else "",
        )
    return table


def ps_table(models: list[dict[str, Any]]) -> Table:
    """The models holding memory, as ``ollama ps`` shows them."""
    table = Table(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
    table.add_column("MODEL", no_wrap=True)
    # Short headers and no wrapping: a row must fit 80 columns (pipes, CI logs).
    for col in ("BACKEND", "STATE", "DEVICE", "EST", "HELD", "USED", "BUSY", "UNLOAD IN"):
        table.add_column(col, no_wrap=True)

    for m in models:
        table.add_row(
            m["id"],
            m["backend"],
            m["state"],
            m["device"] or "-",
            _maybe_size(m["estimated_bytes"]),
            _maybe_size(m["reserved_bytes"]),
            _maybe_size(m["measured_bytes"]),
            str(m["in_flight"]),
            "never" if m["keep_alive_s"] < 0 else _seconds(m["unload_in_s"]),
        )
    return table


def model_detail(m: dict[str, Any]) -> str:
    lines = [f"{m['id']}: {m['state']}" + (f" on {m['device']}" if m["device"] else "")]
    size = m.get("size")
    if size:
        est = size["estimate"]
        lines.append(
            f"  size: {format_size(size['bytes'])} ({size['source']}); estimate "
            f"{format_size(est['total_bytes'])} = weights {format_size(est['weights_bytes'])}"
            f" + kv {format_size(est['kv_cache_bytes'])} + compute "
            f"{format_size(est['compute_bytes'])} + runtime {format_size(est['runtime_bytes'])};"
            f" measured {_maybe_size(size['measured_bytes'])}"
        )
    elif m.get("size_error"):
        lines.append(f"  size: unknown ({m['size_error']})")
    if m.get("last_error"):
        lines.append(f"  last error: {m['last_error']}")
    return "\n".join(lines)
