"""Annotated field types shared by the configuration models."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from moc.units import parse_size


def _size(value: Any) -> int:
    if isinstance(value, str | int) and not isinstance(value, bool):
        return parse_size(value)
    raise ValueError(f"expected a size such as 8GiB or 512MB, got {value!r}")


def _duration(value: Any) -> float:
    """Seconds, or a Go-style duration as Ollama takes it: ``30s``, ``5m``, ``1h``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", value)
        if match:
            scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[match.group(2)]
            return float(match.group(1)) * scale
    raise ValueError(f"expected seconds or a duration such as 30s, 5m, 1h; got {value!r}")


Size = Annotated[int, BeforeValidator(_size), Field(gt=0)]
Duration = Annotated[float, BeforeValidator(_duration)]
