"""LiteLLM's proxy as a target of ``gateway_overhead.py``.

LiteLLM lives in its own virtual environment (its pins clash with moc's):
``.bench/litellm-venv`` by default, made with ``pip install 'litellm[proxy]'``
plus ``httptools`` (the HTTP parser that moc and the bare proxy run on uvicorn
with; without it uvicorn falls back to the slower pure-Python h11) when
missing, or any interpreter that has ``litellm[proxy]`` installed.

It runs as its documented production command, ``litellm --config FILE --host
127.0.0.1 --port PORT --num_workers 1`` (one uvicorn worker on uvloop, as its
production checklist advises per process), with a generated config: one model
whose ``litellm_params`` point at the responder, no database (so no spend or
error logs are written), no callbacks, ``set_verbose: false``, and
``LITELLM_LOG=ERROR`` (which also silences uvicorn's access log). Clients send
``LITELLM_MASTER_KEY`` as their bearer token.

    python benchmarks/litellm_proxy.py [--venv PATH]   # build the venv, print its version
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = ROOT / ".bench" / "litellm-venv"
REQUIREMENTS = ("litellm[proxy]", "httptools")
MASTER_KEY = "sk-moc-bench"
READY_TIMEOUT_S = 120.0


class LiteLLMUnavailable(RuntimeError):
    """LiteLLM could not be installed or started; the message says why."""


@dataclass(frozen=True)
class Running:
    proc: subprocess.Popen[bytes]
    command: tuple[str, ...]
    port: int
    version: str
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {MASTER_KEY}"}


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """The venv's interpreter, creating the venv and installing LiteLLM when missing."""
    python = _venv_python(venv)
    if python.exists() and _version_or_none(python) is not None:
        return python
    print(f"installing {' '.join(REQUIREMENTS)} into {venv} (a few minutes) ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise LiteLLMUnavailable(
                f"`{' '.join(step)}` failed (exit {done.returncode}):\n"
                f"{_tail(done.stdout + done.stderr)}"
            )
    return python


def _version_or_none(python: Path) -> str | None:
    try:
        done = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def version(python: Path) -> str:
    found = _version_or_none(python)
    if found is None:
        raise LiteLLMUnavailable(
            f"{python} cannot import litellm: install it there with "
            f"`{python} -m pip install {' '.join(repr(r) for r in REQUIREMENTS)}`, "
            "or leave out --litellm-python to build .bench/litellm-venv"
        )
    return found


def config_text(model: str, responder_port: int) -> str:
    return (
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: http://127.0.0.1:{responder_port}/v1\n"
        "      api_key: any\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "general_settings:\n"
        "  disable_spend_logs: true\n"
        "  disable_error_logs: true\n"
    )


def command(python: Path, config: Path, port: int) -> list[str]:
    """``litellm --config ... --port ... --num_workers 1``; its console script
    when it sits beside the interpreter, else the same entry point by module."""
    script = python.parent / "litellm"
    head = [str(script)] if script.exists() else [str(python), "-m", "litellm.proxy.proxy_cli"]
    port_args = ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    return [*head, "--config", str(config), *port_args]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "DATABASE_"))}
    env.update(
        LITELLM_MASTER_KEY=MASTER_KEY,
        OPENAI_API_KEY="any",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def start(python: Path, workdir: Path, model: str, responder_port: int, port: int) -> Running:
    """Start the proxy and wait for ``/health/readiness``; stop it and raise
    :class:`LiteLLMUnavailable` with its log's tail if it exits or never gets ready."""
    found = version(python)
    config = workdir / "litellm.yaml"
    config.write_text(config_text(model, responder_port))
    log = workdir / "litellm.log"
    argv = command(python, config, port)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Running(proc, tuple(argv), port, found, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(trust_env=False, timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LiteLLMUnavailable(
                    f"LiteLLM exited with {proc.returncode} before it was ready; "
                    f"the end of {log}:\n{_tail(log.read_text(errors='replace'))}"
                )
            try:
                if http.get(f"http://127.0.0.1:{port}/health/readiness").status_code == 200:
                    return running
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    stop(running)
    raise LiteLLMUnavailable(
        f"LiteLLM was not ready after {READY_TIMEOUT_S:.0f} s; the end of {log}:\n"
        f"{_tail(log.read_text(errors='replace'))}"
    )


def stop(running: Running) -> None:
    """Stop the proxy and any worker it forked (its own process group)."""
    if running.proc.poll() is not None:
        return
    os.killpg(running.proc.pid, signal.SIGTERM)
    try:
        running.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(running.proc.pid, signal.SIGKILL)
        running.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="build LiteLLM's venv and print its version")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    args = parser.parse_args()
    try:
        python = ensure_venv(args.venv)
        print(f"litellm {version(python)} at {python}")
    except LiteLLMUnavailable as e:
        sys.exit(f"LiteLLM is not available: {e}")


if __name__ == "__main__":
    main()
