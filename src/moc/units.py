"""Byte sizes as people write them (``8GiB``, ``512 MB``) and as moc shows them."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

MIB = 1024**2
GIB = 1024**3


def parse_size(text: str | int) -> int:
    """``"8GiB"`` → 8589934592. Raises ValueError naming the accepted units."""
    if isinstance(text, bool):
        raise ValueError(f"expected a size such as 8GiB or 512MB, got {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a size cannot be negative, got {text}")
        return text
    match = _SIZE.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(
            f"expected a size such as 8GiB or 512MB (units: B, KB, MB, GB, TB, KiB, MiB, "
            f"GiB, TiB), got {text!r}"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(n: int) -> str:
    """8589934592 → ``8.0 GiB``; binary units, one decimal."""
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
