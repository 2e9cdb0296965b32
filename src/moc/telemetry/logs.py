"""Structured, calm logs: one event per line.

Library code logs through ``logging`` with an event name as the message and
the facts as ``extra={"fields": {...}}`` (see :func:`event`). The daemon picks
the rendering: JSON lines for machines, ``key=value`` for a terminal.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log event ``name`` with ``fields``; cheap when the level is off."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


def _timestamp(record: logging.LogRecord) -> str:
    ms = int(record.msecs)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        body.update(_fields(record))
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"{record.levelname:<7}", record.getMessage()]
        for key, value in _fields(record).items():
            text = str(value)
            if " " in text or not text:
                text = repr(text)
            parts.append(f"{key}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(fmt: str, level: str) -> None:
    """Route every logger (moc's, uvicorn's, grpc's) through one handler."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # uvicorn announces every start and stop at info; moc says it once itself.
    logging.getLogger("uvicorn.error").setLevel(max(_LEVELS[level], logging.WARNING))
    # Libraries that narrate routine work at info: every health probe (httpx),
    # every file written (gguf).
    for name in ("httpx", "httpcore", "gguf"):
        logging.getLogger(name).setLevel(max(_LEVELS[level], logging.WARNING))
