"""Whatever a configuration file holds, loading it ends in a Config or a
ConfigError naming what is wrong: never a traceback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moc.config import Config, load_config
from moc.errors import ConfigError

SECTIONS = ["server", "devices", "leases", "log", "runtimes", "gateway", "jobs", "models"]
FIELDS = [
    "http_port",
    "host",
    "nvml",
    "size",
    "id",
    "max_waiting",
    "timeout_s",
    "queues",
    "high",
    "name",
    "path",
    "backend",
    "url",
    "ctx",
    "parallel",
    "keep_alive",
    "memory",
    "adapters",
    "gpu_memory_util",
    "service_unit",
    "aging_s",
    "max_in_flight",
    "level",
    "llamacpp",
    "vllm",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["1GiB", "5m", "-1", "ollama", "vllm", "http://h:1"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
documents = st.dictionaries(st.sampled_from(SECTIONS), values, max_size=4) | values


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=documents)
def test_any_document_loads_or_is_refused_clearly(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "moc.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        config = load_config(path)
    except ConfigError as exc:
        refused = str(exc)
    else:
        assert isinstance(config, Config)
        return
    assert refused.startswith("invalid configuration") or "config file" in refused, refused
    for prefix in ("Value error", "Assertion failed", "Input should", "String should"):
        assert prefix not in refused, refused
    assert not re.search(r"got (.+) \(got \1\)", refused), refused
