"""What every backend must do, the same test for each: load, serve, stream,
unload, come back after its runtime dies, and report what it measured.

Backends: llama.cpp (real servers on tiny GGUF models), Ollama (the
stand-in that follows its API) and, where ``MOC_VLLM_PYTHON`` names a Python
with vLLM, vLLM on a tiny Hugging Face model (marker ``vllm``; slow).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import free_port
from tests.doubles.ollama import SMALL, FakeOllama
from tests.integration.support import Factory, load, model, spec, start, wait_for

pytestmark = pytest.mark.usefixtures("no_stray_runtimes")


@dataclass
class Backend:
    name: str
    models: list[dict[str, Any]]  # one model, named "m"
    crash: Callable[[httpx.Client], None]  # the runtime dies under moc


def _kill_runtime(http: httpx.Client) -> None:
    os.kill(model(http, "m")["pid"], signal.SIGKILL)


VLLM_PYTHON = os.environ.get("MOC_VLLM_PYTHON")
WRITER = Path(__file__).parents[1] / "models" / "write_tiny_hf.py"
VLLM = pytest.param(
    "vllm",
    marks=[
        pytest.mark.vllm,
        pytest.mark.timeout(900),
        pytest.mark.skipif(not VLLM_PYTHON, reason="set MOC_VLLM_PYTHON to a Python with vLLM"),
    ],
)


@pytest.fixture(params=["llamacpp", "ollama", VLLM])
def backend(
    request: pytest.FixtureRequest, tiny_models: dict[str, Path], tmp_path: Path
) -> Iterator[Backend]:
    if request.param == "llamacpp":
        yield Backend("llamacpp", [{**spec(tiny_models, "a"), "name": "m"}], _kill_runtime)
        return
    if request.param == "vllm":
        assert VLLM_PYTHON is not None
        subprocess.run([VLLM_PYTHON, str(WRITER), str(tmp_path / "hf")], check=True, timeout=300)
        model_spec = {
            "name": "m",
            "backend": "vllm",
            "path": str(tmp_path / "hf"),
            "ctx": 256,
            "dtype": "float32",
            "gpu_memory_util": 0.1,
        }
        yield Backend("vllm", [model_spec], _kill_runtime)
        return
    server = FakeOllama(free_port()).start()

    def restart_ollama(http: httpx.Client) -> None:
        server.stop()  # Ollama goes away with what it held, and comes back empty
        wait_for(lambda: model(http, "m")["state"] != "ready", timeout=10)
        server.start()

    url = server.url
    yield Backend(
        "ollama",
        [{"name": "m", "backend": "ollama", "url": url, "served_name": SMALL}],
        restart_ollama,
    )
    server.stop()


def _moc(moc_factory: Factory, backend: Backend) -> Any:
    runtimes: dict[str, Any] = {"restart_backoff_s": 0.2, "restart_backoff_max_s": 1}
    if VLLM_PYTHON:
        runtimes["vllm"] = {"python": VLLM_PYTHON}
    return start(moc_factory, backend.models, size="8GiB", runtimes=runtimes)


def _chat(client: openai.OpenAI, stream: bool = False) -> str:
    messages: Any = [{"role": "user", "content": "hi"}]
    if not stream:
        reply = client.chat.completions.create(model="m", messages=messages, max_tokens=8)
        return reply.choices[0].message.content or ""
    pieces = client.chat.completions.create(model="m", messages=messages, max_tokens=8, stream=True)
    return "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)


def test_load_serve_stream_measure_unload(moc_factory: Factory, backend: Backend) -> None:
    moc = _moc(moc_factory, backend)
    with (
        httpx.Client(base_url=moc.url) as http,
        openai.OpenAI(base_url=f"{moc.url}/v1", api_key="unused", max_retries=0) as client,
    ):
        shown = load(http, "m")
        assert (shown["state"], shown["backend"], shown["device"]) == (
            "ready",
            backend.name,
            "host",
        )
        assert shown["estimated_bytes"] > 0
        assert _chat(client)
        assert _chat(client, stream=True)
        wait_for(lambda: (model(http, "m")["measured_bytes"] or 0) > 0)
        measured = model(http, "m")
        assert measured["reserved_bytes"] == measured["measured_bytes"]
        assert http.post("/v1/models/m/unload").json()["unloaded"] is True
        gone = model(http, "m")
        assert (gone["state"], gone["reserved_bytes"]) == ("stopped", None)
        held = http.get("/v1/devices/host").json()["held_bytes"]
        assert held == 0


def test_a_runtime_that_dies_comes_back(moc_factory: Factory, backend: Backend) -> None:
    moc = _moc(moc_factory, backend)
    with (
        httpx.Client(base_url=moc.url) as http,
        openai.OpenAI(base_url=f"{moc.url}/v1", api_key="unused", max_retries=0) as client,
    ):
        load(http, "m")
        backend.crash(http)
        wait_for(lambda: model(http, "m")["state"] == "ready", timeout=600)
        assert _chat(client)
        restarts = [
            line
            for line in http.get("/metrics").text.splitlines()
            if line.startswith('moc_model_restarts_total{model="m"}')
        ]
        assert restarts
        assert float(restarts[0].split()[1]) >= 1
