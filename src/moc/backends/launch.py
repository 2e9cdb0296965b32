"""How to start one runtime process: a value the backends build and the
process layer runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """argv (no shell), extra environment, the port it will serve on, and the
    transient systemd user service it runs as (``unit``; then argv starts
    with ``systemd-run``, which starts the service and returns)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    port: int
    unit: str | None = None
