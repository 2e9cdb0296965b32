"""What a user declares about a model: one entry of ``models:`` in the config.

Validated once at startup; a wrong or unknown field fails with the model's
name and the field. Runtime-specific fields that the model's backend does not
use are rejected rather than ignored, so a setting never silently does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moc.fields import Duration, Size

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
SUPPORTED_BACKENDS = ("llamacpp", "openai", "ollama", "vllm")
URL_PATTERN = r"^https?://[^\s/]+(/[^\s]*)?$"
ARTIFACT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?$"
# parallel for a remote server (backend openai) unless given: such a server
# batches many requests at once, and one at a time from moc would leave it
# idle. vLLM's default batch (--max-num-seqs) is 256; llama.cpp's server has
# as many slots as it was started with, and queues the rest itself.
REMOTE_PARALLEL = 256


# Fields a backend does not use are refused, so a setting never silently does nothing.
_REMOTE = ("url", "served_name", "api_key_env")
_PROCESS = ("path", "artifact", "adapters", "args", "memory_max", "cpu_quota", "service_unit")
_NOT_FOR = {
    "llamacpp": (*_REMOTE, "gpu_memory_util", "dtype"),
    "openai": (*_PROCESS, "memory", "device", "pinned", "preload", "ctx", "gpu_memory_util"),
    "ollama": (*_PROCESS, "api_key_env", "ctx", "gpu_memory_util", "dtype"),
    "vllm": _REMOTE,
}
_WHY_NOT = {
    "llamacpp": "they are for models served elsewhere (openai, ollama), or for vllm",
    "vllm": "they are for models served elsewhere (openai, ollama)",
    "openai": "moc does not start, place or evict a server it did not start",
    "ollama": "Ollama runs the model; its own settings (Modelfile, environment) decide these",
}


class ModelSpec(BaseModel):
    """One model moc may load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    backend: Literal["llamacpp", "openai", "ollama", "vllm"] = "llamacpp"
    path: Path | None = Field(
        None, description="the GGUF file (llamacpp) or the model folder (vllm)"
    )
    artifact: str | None = Field(
        None,
        pattern=ARTIFACT_PATTERN,
        description="load from this registry artifact (name, or name@sha256:…) instead of a "
        "path; its files and signature are verified before every load",
    )
    url: str | None = Field(
        None, pattern=URL_PATTERN, description="the server's OpenAI base URL (openai)"
    )
    served_name: str | None = Field(None, description="the model's name at the server (openai)")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="env var with the key (openai)"
    )
    ctx: int = Field(4096, ge=64, le=1 << 22, description="context length per slot")
    parallel: int = Field(
        1, ge=1, le=4096, description="concurrent requests (slots); openai: 256 unless given"
    )
    device: str | None = Field(None, description="pin to this device id")
    pinned: bool = Field(False, description="never evicted to make room")
    preload: bool = Field(False, description="loaded when moc starts")
    keep_alive: Duration = Field(300.0, description="idle seconds before unload; <0 never")
    memory: Size | None = Field(None, description="override the estimate")
    adapters: tuple[Path, ...] = ()
    args: tuple[str, ...] = Field((), description="extra runtime flags, one per item")
    embeddings: bool = Field(False, description="serve /v1/embeddings too (llamacpp: --embeddings)")
    dtype: str | None = None
    gpu_memory_util: float | None = Field(None, gt=0, le=1)
    memory_max: Size | None = None
    service_unit: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9@_.:-]{1,200}\.service$",
        description="run the runtime as this transient systemd user service",
    )
    cpu_quota: str | None = Field(None, pattern=r"^\d+%$")

    @model_validator(mode="before")
    @classmethod
    def _remote_parallel(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("backend") == "openai" and "parallel" not in data:
            return {**data, "parallel": REMOTE_PARALLEL}
        return data

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelSpec:
        if self.backend not in SUPPORTED_BACKENDS:
            raise ValueError(
                f"backend {self.backend!r} is not available in this version of moc "
                f"(available: {', '.join(SUPPORTED_BACKENDS)})"
            )
        if self.path is not None and self.artifact is not None:
            raise ValueError("give path or artifact, not both")
        from_file = self.path is not None or self.artifact is not None
        if self.backend == "llamacpp" and not from_file:
            raise ValueError(
                "path (a .gguf file) or artifact (a registry artifact) is required for backend "
                "llamacpp"
            )
        if self.backend == "vllm":
            if not from_file:
                raise ValueError(
                    "path (a Hugging Face model folder) or artifact is required for backend vllm"
                )
            if self.gpu_memory_util is None:
                raise ValueError(
                    "gpu_memory_util is required for backend vllm: the fraction of the device "
                    "vLLM takes at start (on a CPU, of the machine's memory), which moc reserves"
                )
        if self.backend in ("openai", "ollama") and self.url is None:
            example = "http://host:8000/v1" if self.backend == "openai" else "http://host:11434"
            raise ValueError(f"url is required for backend {self.backend} (e.g. {example})")
        if self.embeddings and self.backend != "llamacpp":
            raise ValueError(
                f"embeddings does not apply to backend {self.backend}: it starts llama.cpp "
                "with --embeddings; other backends serve embeddings as their server does"
            )
        wrong = [f for f in _NOT_FOR[self.backend] if f in self.model_fields_set]
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to "
                f"backend {self.backend}: {_WHY_NOT[self.backend]}"
            )
        return self

    def adapter_names(self) -> list[str]:
        """The names requests use for this model's LoRA adapters (vllm)."""
        return [p.name.removesuffix(".safetensors") for p in self.adapters]

    @property
    def remote(self) -> bool:
        """A server moc routes to but does not run."""
        return self.backend == "openai"

    @property
    def entry_id(self) -> str:
        """The model's id in the ledger."""
        return f"model:{self.name}"
