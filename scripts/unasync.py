"""Generate the synchronous SDK client from the asyncio one, as httpcore does.

    python scripts/unasync.py [--check]

``src/moc/sdk/client.py`` is ``src/moc/sdk/aclient.py`` with the
substitutions below applied in order, then formatted by ruff (a line the
``await`` made too long may fit on one once it is gone). The background
renewal, a task against a thread, is the one difference not a substitution:
it lives in ``moc/sdk/background.py`` behind two tickers of the same shape.
``--check`` changes nothing and fails when the committed client.py is stale;
tests/sdk/test_unasync_current.py runs it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "moc" / "sdk" / "aclient.py"
TARGET = ROOT / "src" / "moc" / "sdk" / "client.py"

# Whole words and phrases, in order: the longer ones first, so that
# "AsyncHeldLease" is not half-replaced by "AsyncClient"'s rule.
SUBSTITUTIONS: list[tuple[str, str]] = [
    # prose of the docstrings
    ("The asyncio client, ``moc.AsyncClient``.", "The synchronous client, ``moc.Client``."),
    (
        "``client.py`` is generated from this file by ``scripts/unasync.py``: edit\nhere,",
        "Generated from ``aclient.py`` by ``scripts/unasync.py``: edit that\nfile,",
    ),
    ("an ``async with`` block", "a ``with`` block"),
    ("an ``asyncio.Event``", "a ``threading.Event``"),
    ("background task", "background thread"),
    ("renew task", "renew thread"),
    # code
    (r"\bAsyncHeldLease\b", "HeldLease"),
    (r"\bAsyncClient\b", "Client"),
    (r"\bAsyncTicker\b", "ThreadTicker"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r"\basyncio\.Event\b", "threading.Event"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"^import asyncio$", "import threading"),
    (r"\basync def ", "def "),
    (r"\basync with ", "with "),
    (r"\basync for ", "for "),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\baclose\b", "close"),
    (r"\baread\b", "read"),
    (r"\baiter_lines\b", "iter_lines"),
    (r"\baiter_bytes\b", "iter_bytes"),
    # blocking calls the asyncio client makes on purpose are no exception in the sync one
    (r"  # noqa: ASYNC\d+$", ""),
]
# Phrases are matched literally; the rest are regular expressions.
_PROSE = 6


def unasync(text: str) -> str:
    for i, (old, new) in enumerate(SUBSTITUTIONS):
        if i < _PROSE:
            if old not in text:
                raise SystemExit(f"aclient.py no longer has {old!r}: update scripts/unasync.py")
            text = text.replace(old, new)
        else:
            text = re.sub(old, new, text, flags=re.MULTILINE)
    return _formatted(text)


def _formatted(text: str) -> str:
    """Imports sorted again (asyncio became threading) and the code formatted."""
    sort = ["check", "--select", "I", "--fix", "--quiet"]
    for command in (sort, ["format"]):
        text = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", str(TARGET), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    return text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail if client.py is stale")
    args = parser.parse_args()
    fresh = unasync(SOURCE.read_text())
    if args.check:
        if TARGET.read_text() != fresh:
            print("src/moc/sdk/client.py is stale: run python scripts/unasync.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
