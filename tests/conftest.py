"""Shared fixtures: a real ``moc serve`` process on free ports."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from moc.models.tiny import TinySpec, write_tiny_gguf

MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MocProcess:
    """``moc serve`` in a child process, with its own data dir and ports."""

    def __init__(
        self,
        data_dir: Path,
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})  # set for moc on top of this process's environment
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.config_path = data_dir.parent / f"{data_dir.name}-config.yaml"
        cfg: dict[str, Any] = {
            "devices": {
                "nvml": "off",
                "host": [{"id": "host", "size": "1GiB"}],
                "poll_interval_s": 0.2,
                # Claims of its own: parallel test runs must not see each other's daemons.
                "claim_dir": str(data_dir.parent / "claims"),
            },
            "log": {"format": "json", "level": "debug"},
        }
        for key, value in (config or {}).items():
            cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.log_path = data_dir.parent / f"{data_dir.name}-serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.command_prefix: list[str] = []  # runs moc under another command (unshare)
        # server.tls set: moc serves https, checked with ``verify`` (httpx's: a
        # context that trusts the test's CA, with a client certificate for mTLS)
        self.https = bool(cfg.get("server", {}).get("tls", {}).get("cert_file"))
        self.verify: ssl.SSLContext | bool = True

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 20.0) -> MocProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [
                *self.command_prefix,
                sys.executable,
                "-m",
                "moc",
                "serve",
                "--config",
                str(self.config_path),
                "--data-dir",
                str(self.data_dir),
                "--http-port",
                str(self.http_port),
                "--grpc-port",
                str(self.grpc_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moc exited with {self.proc.returncode}:\n{self.log()}")
            try:
                health = httpx.get(f"{self.url}/health", timeout=0.5, verify=self.verify)
                if health.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"moc did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.signal(signal.SIGTERM)
        try:
            return self.wait()
        except subprocess.TimeoutExpired:
            self.kill9()
            raise


@pytest.fixture
def moc_factory(tmp_path: Path) -> Iterator[Any]:
    """Start moc processes; all are stopped at the end of the test."""
    started: list[MocProcess] = []

    def make(
        config: dict[str, Any] | None = None,
        name: str = "data",
        env: dict[str, str] | None = None,
    ) -> MocProcess:
        proc = MocProcess(tmp_path / name, config, env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three tiny GGUF models of distinct sizes (a < b < c), written once."""
    folder = tmp_path_factory.mktemp("models")
    return {
        name: write_tiny_gguf(folder / f"{name}.gguf", TinySpec(name, ffn=ffn, seed=i))
        for i, (name, ffn) in enumerate((("a", 128), ("b", 256), ("c", 512)))
    }


def runtimes_using(folder: Path) -> list[psutil.Process]:
    """Runtime processes serving a model from ``folder``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "--model" in cmdline and str(folder) in cmdline:
            found.append(proc)
    return found


@pytest.fixture
def no_stray_runtimes(tiny_models: dict[str, Path]) -> Iterator[None]:
    """Fail a test that leaves runtime processes behind; kill them either way."""
    folder = tiny_models["a"].parent
    yield
    stray = runtimes_using(folder)
    for proc in stray:
        proc.kill()
    assert not stray, f"runtime processes left running: {[p.pid for p in stray]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MocProcess]:
    """One moc for a whole test module (1 GiB host device, capacity 0.9 GiB)."""
    proc = MocProcess(tmp_path_factory.mktemp("moc") / "data").start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(autouse=True)
def _no_moc_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("MOC_"):
            monkeypatch.delenv(key)
    # Every moc a test starts claims its devices in the test's own directory,
    # so that test runs side by side (and a real moc on this host) do not collide.
    monkeypatch.setenv("MOC_DEVICES__CLAIM_DIR", str(tmp_path / "claims"))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real ``redis-server`` for the module (its tests skip, loudly, without one)."""
    from tests.integration.cluster_support import RedisServer, redis_server_or_skip

    redis_server_or_skip()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()
