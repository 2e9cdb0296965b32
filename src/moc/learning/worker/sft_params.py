"""An sft job's ``params``: the names, their defaults, and their reading.

The daemon validates the ranges before it writes ``job.json`` (and may import
this module for the names and defaults: standard library only); the child
reads them with :meth:`SftParams.from_params`, which refuses a name it does
not know so that a daemon and a worker of different versions fail loudly
instead of training with a setting silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class SftParams:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    # module names, or "all-linear" (every linear layer but the output head)
    target_modules: tuple[str, ...] | str = ATTENTION
    learning_rate: float = 1e-3
    epochs: int = 1
    max_steps: int | None = None  # when set, it wins over epochs
    batch_size: int = 4
    seq_len: int = 256
    seed: int = 0
    checkpoint_every: int = 50
    warmup_steps: int = 0  # linear warm-up, then a linear decay to zero at the last step
    max_grad_norm: float = 1.0
    # torch's CPU threads; fixed for the job's life, because the sums of a
    # matrix product split differently over another count (and resume is exact)
    threads: int | None = None
    qlora: bool = True  # a 4-bit base where CUDA and bitsandbytes are both present

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SftParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"params: unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dict(params)
        modules = values.get("target_modules")
        if isinstance(modules, list):
            values["target_modules"] = tuple(modules)
        return cls(**values)
