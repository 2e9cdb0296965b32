from pathlib import Path

import pytest

from moc.config import load_config
from moc.errors import ConfigError
from moc.units import GIB


def test_embedded_defaults_need_no_file() -> None:
    config = load_config()
    assert config.server.http_port == 8008
    assert config.server.grpc_port == 7212
    assert config.server.host == "127.0.0.1"
    assert config.devices.reserve_fraction == 0.9
    assert config.data_dir.name == "moc"


def test_yaml_environment_and_flags_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "moc.yaml"
    path.write_text(
        "server: {http_port: 9000, grpc_port: 9001}\ndevices: {host: [{id: cpu, size: 8GiB}]}\n"
    )
    monkeypatch.setenv("MOC_SERVER__GRPC_PORT", "9101")
    config = load_config(path, {"server": {"host": "0.0.0.0"}})
    assert config.server.http_port == 9000  # file
    assert config.server.grpc_port == 9101  # environment beats file
    assert config.server.host == "0.0.0.0"  # flag
    assert config.devices.host[0].size == 8 * GIB


def test_moc_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("leases: {default_ttl_s: 5}\n")
    monkeypatch.setenv("MOC_CONFIG", str(path))
    monkeypatch.setenv("MOC_URL", "http://elsewhere:1")  # the CLI's, not a config field
    assert load_config().leases.default_ttl_s == 5


def test_data_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOC_DATA_DIR", str(tmp_path / "state"))
    assert load_config().data_dir == tmp_path / "state"


@pytest.mark.parametrize(
    ("yaml_text", "line"),
    [
        ("server: {http_prot: 1}", "server.http_prot: unknown field"),
        (
            "devices: {host: [{id: h, size: 8G}]}",
            "devices.host[h].size: expected a size such as 8GiB or 512MB (units: B, KB, MB, GB, "
            "TB, KiB, MiB, GiB, TiB), got '8G'",
        ),
        (
            "devices: {reserve_fraction: 1.5}",
            "devices.reserve_fraction: must be at most 1 (got 1.5)",
        ),
        ("server: {http_port: 70000}", "server.http_port: must be at most 65535 (got 70000)"),
        ("server: {http_port: abc}", "server.http_port: must be a whole number (got 'abc')"),
        ("devices: {host: [{id: h}]}", "devices.host[h].size: is required"),
        ("devices: {nvml: maybe}", "devices.nvml: must be 'auto', 'on' or 'off' (got 'maybe')"),
        ("models: [3]", "models.0: must be a mapping of fields (got 3)"),
        (
            "leases: {default_ttl_s: 100, max_ttl_s: 10}",
            "leases.max_ttl_s: must be at least default_ttl_s, which is 100 (got 10)",
        ),
        (
            "devices: {host: [{id: a, size: 1GiB}, {id: a, size: 2GiB}]}",
            "devices.host: device id 'a' is declared twice",
        ),
        (
            "gateway: {queues: {low: {batch_s: 1000}}}",
            "gateway.queues.low.batch_s: must be shorter than timeout_s (900): a batch that "
            "waits out its deadline is never sent (got 1000)",
        ),
    ],
)
def test_config_errors_name_the_field_the_limit_and_the_value_once(
    tmp_path: Path, yaml_text: str, line: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).splitlines() == [f"invalid configuration ({path}):", f"  {line}"]


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [("- just a list", "must hold a mapping"), ("server: [", "not valid YAML")],
)
def test_unreadable_documents_are_refused(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("devices: {nvml: off}", "off"),
        ("devices: {nvml: on}", "on"),
        ("devices: {nvml: no}", "off"),
        ("devices: {nvml: true}", "on"),
        ("devices: {nvml: 'off'}", "off"),
        ("devices: {nvml: auto}", "auto"),
        ("devices: {}", "auto"),
    ],
)
def test_switches_take_yaml_booleans(tmp_path: Path, yaml_text: str, expected: str) -> None:
    """YAML 1.1 reads a bare off as False: the docs' `nvml: off` must still mean off."""
    path = tmp_path / "moc.yaml"
    path.write_text(yaml_text + "\n")
    assert load_config(path).devices.nvml == expected


def test_switches_take_booleans_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOC_DEVICES__NVML", "False")
    assert load_config().devices.nvml == "off"


def test_environment_json_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOC_DEVICES__CLAIM_DIR", "/a/path/not/json")
    monkeypatch.setenv("MOC_DEVICES__HOST", "ram=16GiB")
    with pytest.raises(ConfigError) as info:
        load_config()
    assert str(info.value).splitlines()[1].startswith("  MOC_DEVICES__HOST: must be JSON")
    assert str(info.value).endswith("(got 'ram=16GiB')")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_env_typo_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOC_LEASES__MAX_TTL", "5")
    with pytest.raises(ConfigError, match=r"leases\.max_ttl: unknown field"):
        load_config()


def test_models_are_declared_with_durations_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "moc.yaml"
    path.write_text(
        "models:\n"
        "  - {name: a, path: /m/a.gguf, keep_alive: 5m, memory: 2GiB, pinned: true}\n"
        "  - {name: b, path: /m/b.gguf, keep_alive: -1, ctx: 8192, parallel: 4,"
        " args: ['--flash-attn', 'on']}\n"
    )
    a, b = load_config(path).models
    assert (a.keep_alive, a.memory, a.pinned, a.entry_id) == (300.0, 2 * GIB, True, "model:a")
    assert (b.keep_alive, b.ctx, b.parallel, b.args) == (-1.0, 8192, 4, ("--flash-attn", "on"))


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("models: [{name: a, path: /a.gguf, colour: red}]", "models[a].colour: unknown field"),
        (
            "models: [{name: a}]",
            "models[a]: path (a .gguf file) or artifact (a registry artifact) is required for backend llamacpp",
        ),
        (
            "models: [{name: a, path: /a.gguf, ctx: 10}]",
            "models[a].ctx: must be at least 64 (got 10)",
        ),
        ("models: [{name: a, path: /a.gguf, keep_alive: soon}]", "models[a].keep_alive"),
        (
            "models: [{name: a, backend: vllm}]",
            "path (a Hugging Face model folder) or artifact is required for backend vllm",
        ),
        (
            "models: [{name: sql, path: /a.gguf}, {name: q, backend: vllm, path: /q, "
            "gpu_memory_util: 0.5, adapters: [/lora/sql]}]",
            "model or adapter name 'sql' is declared twice",
        ),
        ("models: [{name: a, backend: vllm, path: /m}]", "gpu_memory_util is required"),
        ("models: [{name: a, path: /a.gguf, dtype: bf16}]", "dtype does not apply"),
        (
            "models: [{name: a, backend: tgi, path: /a}]",
            "models[a].backend: must be 'llamacpp', 'openai', 'ollama' or 'vllm' (got 'tgi')",
        ),
        (
            "models: [{name: a, path: /a.gguf, gpu_memory_util: 0.5}]",
            "gpu_memory_util does not apply to backend llamacpp",
        ),
        (
            "models: [{name: a, path: /a.gguf}, {name: a, path: /b.gguf}]",
            "model or adapter name 'a' is declared twice",
        ),
        (
            "models: [{name: 'bad name', path: /a.gguf}]",
            "models[bad name].name: must match pattern",
        ),
        ("runtimes: {llamacpp: {ready_timeout_s: 0}}", "runtimes.llamacpp.ready_timeout_s"),
        ("models: [{name: r, backend: openai}]", "url is required for backend openai"),
        (
            "models: [{name: r, backend: openai, url: 'http://h:1/v1', memory_max: 1GiB}]",
            "memory_max does not apply to backend openai",
        ),
        (
            "models: [{name: r, backend: openai, url: 'ftp://h'}]",
            "models[r].url: must match pattern",
        ),
        (
            "models: [{name: a, path: /a.gguf, url: 'http://h/v1'}]",
            "url does not apply to backend llamacpp",
        ),
        ("gateway: {queues: {low: {max_waiting: -1}}}", "gateway.queues.low.max_waiting"),
        ("gateway: {queues: {urgent: {timeout_s: 1}}}", "gateway.queues.urgent: unknown field"),
        ("gateway: {aging_s: 0}", "gateway.aging_s: must be greater than 0 (got 0)"),
        ("jobs: {max_queued: -5}", "jobs.max_queued"),
        ("models: [{name: o, backend: ollama}]", "url is required for backend ollama"),
        (
            "models: [{name: o, backend: ollama, url: 'http://h:11434', ctx: 8192}]",
            "ctx does not apply to backend ollama",
        ),
    ],
)
def test_model_errors_name_the_model_and_field(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    path = tmp_path / "moc.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
