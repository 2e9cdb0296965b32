"""Running a runtime under systemd: ``service_unit``, ``memory_max``, ``cpu_quota``.

Where a systemd user manager runs:

- a model with ``service_unit`` runs as that transient user service
  (``systemd-run --user --unit=…``): systemd owns the process (its logs go to
  the journal, ``journalctl --user -u <unit>``), moc finds its main pid with
  ``systemctl --user show`` and stops it with ``systemctl --user stop``;
- otherwise a model with ``memory_max`` or ``cpu_quota`` runs inside a
  transient scope (``systemd-run --user --scope``): ``systemd-run`` registers
  the scope and then executes the runtime in place, so the pid moc
  supervises is the runtime's, as without systemd.

Both apply the limits through cgroups.

Where there is none (containers, most CI machines, macOS), the runtime runs
as a plain child process and moc says once, in its log, that the limits are
not applied. Whether a manager runs is asked once (``systemctl --user
show-environment``), since it does not come and go under a running daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import subprocess
from dataclasses import replace

from moc.backends.launch import Launch
from moc.models.spec import ModelSpec
from moc.telemetry.logs import event

log = logging.getLogger(__name__)


def scope_argv(unit: str, memory_max: int | None, cpu_quota: str | None) -> tuple[str, ...]:
    """The prefix that runs a command in a transient user scope with these limits."""
    argv = ["systemd-run", "--user", "--scope", "--quiet", "--collect", f"--unit={unit}"]
    return (*argv, *_limits(memory_max, cpu_quota), "--")


def service_argv(unit: str, memory_max: int | None, cpu_quota: str | None) -> tuple[str, ...]:
    """The prefix that starts a command as a transient user service with these limits."""
    argv = [
        "systemd-run",
        "--user",
        "--quiet",
        "--collect",
        "--service-type=exec",
        f"--unit={unit}",
    ]
    return (*argv, *_limits(memory_max, cpu_quota), "--")


def _limits(memory_max: int | None, cpu_quota: str | None) -> list[str]:
    found = []
    if memory_max is not None:
        found += ["-p", f"MemoryMax={memory_max}"]
    if cpu_quota is not None:
        found += ["-p", f"CPUQuota={cpu_quota}"]
    return found


def unit_main_pid(unit: str) -> int:
    """The main process of a running user service; raises OSError."""
    try:
        done = subprocess.run(
            ["systemctl", "--user", "show", "--property=MainPID", "--value", unit],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OSError(errno.ETIMEDOUT, f"systemctl did not answer about {unit}") from exc
    pid = int(done.stdout.strip() or 0) if done.stdout.strip().isdigit() else 0
    if done.returncode != 0 or pid <= 0:
        raise OSError(errno.ESRCH, f"systemd reports no running process for {unit}")
    return pid


async def stop_unit(unit: str, grace_s: float) -> None:
    """``systemctl --user stop`` (systemd sends SIGTERM, then SIGKILL after its own timeout)."""
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        await asyncio.to_thread(
            subprocess.run,
            ["systemctl", "--user", "stop", unit],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=grace_s + 10,
            check=False,
        )


def unit_name(model: str, port: int) -> str:
    """A unit name systemd accepts, unique per runtime start."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
    return f"moc-{safe}-{port}.scope"


class Systemd:
    """Whether a systemd user manager is there to confine runtimes.

    ``available``: known already (None: ask systemd the first time it matters).
    """

    def __init__(self, available: bool | None = None) -> None:
        self._available = available
        self._told = False

    def available(self) -> bool:
        if self._available is None:
            self._available = _user_manager_runs()
        return self._available

    def confine(self, launch: Launch, spec: ModelSpec) -> Launch:
        """``launch`` as the spec's service or in a scope with its limits, or as it is."""
        if spec.service_unit is None and spec.memory_max is None and spec.cpu_quota is None:
            return launch
        if not self.available():
            if not self._told:
                self._told = True
                event(
                    log,
                    logging.WARNING,
                    "no systemd user manager: service_unit, memory_max and cpu_quota are not "
                    "applied; runtimes run as plain processes",
                    model=spec.name,
                )
            return launch
        if spec.service_unit is not None:
            prefix = service_argv(spec.service_unit, spec.memory_max, spec.cpu_quota)
            return replace(launch, argv=(*prefix, *launch.argv), unit=spec.service_unit)
        prefix = scope_argv(unit_name(spec.name, launch.port), spec.memory_max, spec.cpu_quota)
        return replace(launch, argv=(*prefix, *launch.argv))


def _user_manager_runs() -> bool:
    if shutil.which("systemd-run") is None or shutil.which("systemctl") is None:
        return False
    try:
        done = subprocess.run(
            ["systemctl", "--user", "show-environment"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
