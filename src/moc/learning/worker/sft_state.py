"""What an sft checkpoint holds, and putting it back.

Everything the next step depends on, so that a resumed run takes exactly the
steps an uninterrupted one would have:

- ``adapter.safetensors``: the trainable (LoRA) tensors by parameter name;
- ``trainer.pt``: the optimizer's state (Adam's moments and step counts), the
  learning-rate schedule's, and torch's random state (CPU, and CUDA's devices);
- ``state.json``: the step, the data position, every loss so far, Python's and
  numpy's random states, and the dataset's digest (a resume over another
  dataset is refused).

Every file is serialized in memory and written with Python's own I/O, so a
full disk is an OSError (the libraries' own writers report it as their own
exception types, or as a RuntimeError).

The base model's weights are not saved: they never change, and the child
loads them from the base folder again.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

ADAPTER = "adapter.safetensors"
TRAINER = "trainer.pt"
STATE = "state.json"


def trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _python_rng() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _numpy_rng() -> dict[str, Any]:
    state = dict(np.random.get_state(legacy=False))
    inner = dict(state["state"])
    inner["key"] = [int(k) for k in inner["key"]]
    state["state"] = inner
    return state


def save(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
) -> None:
    """The checkpoint's three files into ``folder``; ``state`` is the loop's
    own record (step, position, losses, digest)."""
    tensors = {name: p.detach().to("cpu").contiguous() for name, p in trainable(model).items()}
    (folder / ADAPTER).write_bytes(safetensors_bytes(tensors, metadata={"format": "pt"}))
    trainer: dict[str, Any] = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        trainer["cuda_rng"] = torch.cuda.get_rng_state_all()
    buffer = io.BytesIO()
    torch.save(trainer, buffer)
    (folder / TRAINER).write_bytes(buffer.getvalue())
    record = {**state, "python_rng": _python_rng(), "numpy_rng": _numpy_rng()}
    (folder / STATE).write_text(json.dumps(record))


def load(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Everything in ``folder`` put back into the objects and the random
    generators; returns the loop's record. The model and optimizer must be
    built as the run that saved them built theirs. A checkpoint that cannot be
    read raises ValueError."""
    try:
        return _load(folder, model, optimizer, scheduler)
    except (SafetensorError, pickle.UnpicklingError, EOFError, KeyError, TypeError) as exc:
        raise ValueError(f"{folder}: {exc}") from exc


def _load(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((folder / STATE).read_text())
    tensors = load_file(str(folder / ADAPTER))
    params = trainable(model)
    if set(tensors) != set(params):
        raise ValueError(f"{folder / ADAPTER} holds other tensors than this adapter's")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[name])
    trainer = torch.load(folder / TRAINER, weights_only=True)
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    torch.set_rng_state(trainer["torch_rng"])
    if "cuda_rng" in trainer and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(trainer["cuda_rng"])
    version, internal, gauss = record.pop("python_rng")
    random.setstate((version, tuple(internal), gauss))
    numpy_rng = record.pop("numpy_rng")
    numpy_rng["state"]["key"] = np.array(numpy_rng["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_rng)
    return record
