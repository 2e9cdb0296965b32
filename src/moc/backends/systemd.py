"""Confining a runtime with systemd: ``memory_max`` and ``cpu_quota``.

Where a systemd user manager runs, a runtime whose model sets ``memory_max``
or ``cpu_quota`` is started inside a transient scope
(``systemd-run --user --scope``), which applies the limits through cgroups.
``systemd-run`` registers the scope and then executes the runtime in its own
process, so the pid moc supervises is the runtime's, as without systemd.

Where there is none (containers, most CI machines, macOS), the runtime runs
as a plain child process and moc says once, in its log, that the limits are
not applied. Whether a manager runs is asked once (``systemctl --user
show-environment``), since it does not come and go under a running daemon.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import replace

from moc.backends.process import Launch
from moc.models.spec import ModelSpec
from moc.telemetry.logs import event

log = logging.getLogger(__name__)


def scope_argv(unit: str, memory_max: int | None, cpu_quota: str | None) -> tuple[str, ...]:
    """The prefix that runs a command in a transient user scope with these limits."""
    argv = ["systemd-run", "--user", "--scope", "--quiet", "--collect", f"--unit={unit}"]
    if memory_max is not None:
        argv += ["-p", f"MemoryMax={memory_max}"]
    if cpu_quota is not None:
        argv += ["-p", f"CPUQuota={cpu_quota}"]
    return (*argv, "--")


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
        """``launch`` inside a scope with the spec's limits, or as it is."""
        if spec.memory_max is None and spec.cpu_quota is None:
            return launch
        if not self.available():
            if not self._told:
                self._told = True
                event(
                    log,
                    logging.WARNING,
                    "no systemd user manager: memory_max and cpu_quota are not applied; "
                    "runtimes run as plain processes",
                    model=spec.name,
                )
            return launch
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
