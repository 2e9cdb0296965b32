"""Checkpoint folders: whole or absent, the last two kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from moc.learning.worker import checkpoints


def fill_with(text: str):  # type: ignore[no-untyped-def]
    def fill(folder: Path) -> None:
        (folder / "state.json").write_text(text)

    return fill


def test_checkpoints_are_renamed_into_place_and_the_last_two_kept(tmp_path: Path) -> None:
    for step in (5, 10, 15):
        checkpoints.write(tmp_path, step, fill_with(str(step)))
    assert [(s, p.name) for s, p in checkpoints.existing(tmp_path)] == [
        (15, "step-15"),
        (10, "step-10"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-10", "step-15"]
    assert (tmp_path / "step-15" / "state.json").read_text() == "15"


def test_a_failed_write_leaves_the_earlier_checkpoints_and_no_partial_folder(
    tmp_path: Path,
) -> None:
    checkpoints.write(tmp_path, 5, fill_with("5"))

    def broken(folder: Path) -> None:
        (folder / "adapter.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        checkpoints.write(tmp_path, 10, broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-5"]


def test_the_partial_folders_of_a_killed_write_are_removed_and_never_listed(
    tmp_path: Path,
) -> None:
    checkpoints.write(tmp_path, 5, fill_with("5"))
    (tmp_path / ".tmp-step-10-123").mkdir()
    (tmp_path / "step-x").mkdir()
    assert [s for s, _ in checkpoints.existing(tmp_path)] == [5]
    checkpoints.remove_partial(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-5", "step-x"]
    assert checkpoints.existing(tmp_path / "absent") == []
