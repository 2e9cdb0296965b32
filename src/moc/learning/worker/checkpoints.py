"""A job's checkpoint folder: ``step-<n>`` folders, each whole or absent.

A checkpoint is written under a temporary name, its files synced, and renamed
to ``step-<n>``: a process killed mid-write leaves a temporary folder that the
next start removes, never a ``step-<n>`` that is half there. The last
:data:`KEEP` are kept (the newest might be unreadable after a crash of the
machine itself; the one before is the fallback).

What goes in a checkpoint is the trainer's business; this module only moves
whole folders. The folder is owned by the one child process that runs the job.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

KEEP = 2
_STEP = re.compile(r"step-(\d+)")
_TMP_PREFIX = ".tmp-step-"


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step}"


def existing(root: Path) -> list[tuple[int, Path]]:
    """The whole checkpoints under ``root``, newest first."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP.fullmatch(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found, reverse=True)


def remove_partial(root: Path) -> None:
    """Drop the temporary folders of writes that never finished."""
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(_TMP_PREFIX):
                shutil.rmtree(child, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync(folder: Path) -> None:
    for child in folder.iterdir():
        _fsync(child)
    _fsync(folder)


def write(root: Path, step: int, fill: Callable[[Path], None]) -> Path:
    """``step-<step>`` under ``root``, filled by ``fill`` in a temporary
    folder and renamed into place; then all but the last :data:`KEEP` go.

    An OSError (a full disk) propagates with the temporary folder removed and
    the checkpoints that were there untouched.
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{_TMP_PREFIX}{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    final = step_dir(root, step)
    try:
        tmp.mkdir()
        fill(tmp)
        _sync(tmp)
        if final.exists():  # the same step written again after a resume
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for _, old in existing(root)[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
    return final
