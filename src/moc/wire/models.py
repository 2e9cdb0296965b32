"""A model as ``/v1/models`` answers it: OpenAI's fields, then moc's."""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed

Backend = Literal["llamacpp", "openai", "ollama", "vllm"]
# A runtime's process states (moc.backends.state.State), and "remote" for a
# server moc routes to but does not run.
ModelState = Literal[
    "stopped", "starting", "ready", "stopping", "backoff", "failed", "degraded", "remote"
]
SizeSource = Literal["configured", "measured", "estimated"]


@closed
class Model(TypedDict):
    """One model of the catalog and the state of its runtime."""

    id: str
    """the model's name, as requests name it"""
    object: Literal["model"]
    created: int
    """when moc started (Unix seconds; OpenAI's field)"""
    owned_by: Literal["moc"]
    backend: Backend
    """llamacpp, vllm, ollama, or openai (a server moc routes to; its state is remote)"""
    state: ModelState
    """stopped, starting, ready, stopping, backoff (crashed; restarting), failed
    (the last load failed), degraded (failed restart_limit times in a row; only an
    explicit load restarts it), or remote"""
    device: str | None
    """where it runs, while it holds memory"""
    pid: int | None
    """its runtime's process, while it runs"""
    estimated_bytes: int | None
    """the estimate for the current (or last) load: from the GGUF file, the file
    size Ollama reports, or vLLM's gpu_memory_util share"""
    reserved_bytes: int | None
    """what the ledger holds for it now"""
    measured_bytes: int | None
    """the most its runtime was measured using in this run"""
    in_flight: int
    """requests using it now"""
    pinned: bool
    """never evicted to make room"""
    keep_alive_s: float
    """idle seconds before it is unloaded"""
    unload_in_s: float | None
    """seconds until an idle unload (null: never, or busy)"""
    load_s: float | None
    """the last cold load, from moc starting it to serving"""
    runtime_start_s: float | None
    """the runtime's own part of load_s: spawn to its first /health 200"""
    failures: int
    """consecutive failures"""
    last_error: str | None
    """the last failure, with its log's last lines"""


@closed
class SizeEstimate(TypedDict):
    """The parts of a model's estimated size."""

    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    runtime_bytes: int
    total_bytes: int


@closed
class ModelSize(TypedDict):
    """What a model needs on a kind of device, and where the figure came from."""

    bytes: int
    """what moc plans for it"""
    source: SizeSource
    """configured, measured or estimated"""
    estimate: SizeEstimate
    """the estimate from the model file"""
    measured_bytes: int | None
    """remembered from earlier loads"""
    device_kind: str
    """the kind of device the figures are for"""


@closed
class ModelDetail(Model):
    """One model with its configuration and size (``GET /v1/models/{name}``)."""

    spec: dict[str, Any]
    """the model's configuration"""
    size: ModelSize | None
    """null for a remote model, or when it could not be sized (size_error says why)"""
    size_error: str | None
    """why the model could not be sized"""


@closed
class ModelUnloaded(ModelDetail):
    """The answer to an unload: the model as it is now."""

    unloaded: bool
    """false: it was not loaded"""


@closed
class ModelList(TypedDict):
    """The catalog in OpenAI's list shape."""

    object: Literal["list"]
    data: list[Model]
