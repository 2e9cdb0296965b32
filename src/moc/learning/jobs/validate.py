"""A learning job request checked against what moc knows, into a job.

Everything a job reads is looked up here, before it is accepted: the base
model, the source model, the dataset (and that its format suits the kind),
the goal, the device. Every error names the field: 400 ``invalid_request``
for a value of the wrong shape or out of range, 404 (``dataset_not_found``,
``model_not_found``, …) for a name moc does not know, 422
``learning_job_invalid`` for values that each are fine but do not go together.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from moc.errors import DeviceNotFound, GoalNotFound, LearningJobInvalid, NotFound
from moc.learning.jobs.model import (
    PARAMS,
    TINY_BASE,
    IndexParams,
    Kind,
    LearningJob,
    LearningJobRequest,
    QuantizeParams,
)
from moc.validation import from_validation

NUMPY_QUANTS = ("q8_0", "q4_0")  # what the gguf package writes; the rest need llama-quantize

# Which dataset formats each kind reads.
FORMATS: dict[Kind, tuple[str, ...]] = {
    Kind.SFT: ("chat", "instruction"),
    Kind.INDEX: ("documents",),
}


class DatasetRef(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def digest(self) -> str: ...


class Lookups(Protocol):
    """What the validation asks of the rest of moc."""

    def dataset(self, name_or_id: str) -> DatasetRef:
        """Raises a NotFound error naming it."""
        ...

    def goal_exists(self, name: str) -> bool: ...

    def base(self, name: str) -> Path:
        """A Hugging Face model folder; raises ModelNotFound."""
        ...

    def gguf(self, name: str) -> Path:
        """The GGUF file of a llama.cpp model moc knows; raises ModelNotFound."""
        ...

    def embedding_model(self, name: str) -> None:
        """Raises ModelNotFound unless moc serves ``name``."""
        ...

    def devices(self) -> list[str]: ...

    def gpu_of(self, device: str) -> str | None:
        """The CUDA device (UUID) behind a ledger device; None for host memory."""
        ...


@dataclass(frozen=True)
class Accepted:
    job: LearningJob
    sources: dict[str, Path]  # what the child reads: base, model, dataset


def accept(
    request: LearningJobRequest,
    lookups: Lookups,
    new: Callable[..., LearningJob],
    default_priority: int,
) -> Accepted:
    """The job ``new(**fields)`` builds from a request that passed every check."""
    kind = request.kind
    try:
        params = PARAMS[kind].model_validate(request.params)
    except ValidationError as exc:
        raise from_validation(exc, "params", LearningJobInvalid) from None
    kquant = isinstance(params, QuantizeParams) and params.type not in NUMPY_QUANTS
    if kquant and shutil.which("llama-quantize") is None:
        assert isinstance(params, QuantizeParams)
        raise LearningJobInvalid(
            "params.type",
            f"{params.type} needs llama.cpp's llama-quantize on PATH; "
            f"without it: {' or '.join(NUMPY_QUANTS)}",
            value=params.type,
        )
    sources: dict[str, Path] = {}
    fields: dict[str, Any] = {}

    if kind is Kind.SFT:
        base = request.base or TINY_BASE
        sources["base"] = _found("base", lambda: lookups.base(base))
        fields["base"] = base
    elif request.base is not None:
        raise LearningJobInvalid("base", f"only sft jobs take a base model, not {kind.value}")

    if kind is Kind.QUANTIZE:
        if request.model is None:
            raise LearningJobInvalid("model", "is required: the GGUF model to quantize")
        name = request.model
        sources["model"] = _found("model", lambda: lookups.gguf(name))
        fields["model"] = name
    elif request.model is not None:
        raise LearningJobInvalid("model", f"only quantize jobs take a model, not {kind.value}")

    if kind in FORMATS:
        if request.dataset is None:
            raise LearningJobInvalid("dataset", f"is required for a {kind.value} job")
        named = request.dataset
        dataset: DatasetRef = _found("dataset", lambda: lookups.dataset(named))
        if dataset.format not in FORMATS[kind]:
            raise LearningJobInvalid(
                "dataset",
                f"a {kind.value} job reads a {' or '.join(FORMATS[kind])} dataset; "
                f"{request.dataset} is {dataset.format}",
                value=request.dataset,
            )
        sources["dataset"] = dataset.path
        fields["dataset"] = dataset.id
        fields["dataset_format"] = dataset.format
    elif request.dataset is not None:
        raise LearningJobInvalid("dataset", f"a {kind.value} job reads no dataset")

    if isinstance(params, IndexParams) and params.embedder.kind == "moc":
        assert params.embedder.model is not None
        served = params.embedder.model
        _found("params.embedder.model", lambda: lookups.embedding_model(served))

    if request.goal is not None and not lookups.goal_exists(request.goal):
        raise GoalNotFound(
            f"goal: no goal {request.goal!r} (create it with POST /v1/goals)",
            field="goal",
            value=request.goal,
        )
    if request.device is not None and request.device not in lookups.devices():
        known = ", ".join(lookups.devices())
        raise DeviceNotFound(
            f"device: unknown device {request.device!r} (known: {known})",
            field="device",
            value=request.device,
        )
    job = new(
        kind=kind,
        params=params.model_dump(),
        priority=default_priority if request.priority is None else request.priority,
        goal=request.goal,
        device=request.device,
        **fields,
    )
    return Accepted(job, sources)


def _found(field: str, look: Callable[[], Any]) -> Any:
    """What ``look`` finds; its NotFound names the request's field."""
    try:
        return look()
    except NotFound as exc:
        exc.details.setdefault("field", field)
        if not exc.message.startswith(f"{field}:"):
            exc.message = f"{field}: {exc.message}"
            exc.args = (exc.message,)
        raise
