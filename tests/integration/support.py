"""Helpers shared by the end-to-end tests of models and the gateway."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.conftest import MocProcess

Factory = Callable[..., MocProcess]


def spec(tiny: dict[str, Path], name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "path": str(tiny[name]), "ctx": 512, **kw}


def chat(name: str, **extra: Any) -> dict[str, Any]:
    """A short chat completion body for model ``name``."""
    return {
        "model": name,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        **extra,
    }


def start(
    moc_factory: Factory,
    models: list[dict[str, Any]],
    *,
    size: str = "100MiB",
    runtimes: dict[str, Any] | None = None,
    name: str = "data",
    **sections: Any,
) -> MocProcess:
    """moc with these models on a host device of ``size``; ``sections`` are more
    config sections (``gateway={...}``, ``jobs={...}``)."""
    config = {
        "devices": {"nvml": "off", "host": [{"id": "host", "size": size}], "poll_interval_s": 0.2},
        "models": models,
        "runtimes": {"restart_backoff_s": 0.2, **(runtimes or {})},
        **sections,
    }
    return moc_factory(config, name=name).start()


def sized(tiny: dict[str, Path], **kw: Any) -> list[dict[str, Any]]:
    """a, b and c reserving 30, 35 and 40 MiB: a 90 MiB budget holds two of three."""
    return [spec(tiny, n, memory=f"{m}MiB", **kw) for n, m in (("a", 30), ("b", 35), ("c", 40))]


def model(http: httpx.Client, name: str) -> dict[str, Any]:
    response = http.get(f"/v1/models/{name}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def load(http: httpx.Client, name: str) -> dict[str, Any]:
    response = http.post(f"/v1/models/{name}/load", timeout=600)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def held(http: httpx.Client) -> int:
    value: int = http.get("/v1/devices/host").json()["held_bytes"]
    return value


def complete(pid_port_url: str) -> str:
    reply = httpx.post(
        f"{pid_port_url}/v1/completions", json={"prompt": "hi", "max_tokens": 8}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    text: str = reply.json()["choices"][0]["text"]
    return text


def runtime_url(pid: int) -> str:
    cmdline = psutil.Process(pid).cmdline()
    return f"http://127.0.0.1:{cmdline[cmdline.index('--port') + 1]}"


def metric(http: httpx.Client, name: str, **labels: str) -> float:
    text = http.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[line.index("{") + 1 : line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0
