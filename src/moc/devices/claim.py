"""Host-wide claims on devices, so that two daemons never own the same one.

Two daemons handing out one GPU's memory each believe they have all of it;
the first CUDA out-of-memory tells them otherwise. Each device a daemon
manages is therefore claimed with an ``flock`` on a file in a directory every
moc on the host shares (``devices.claim_dir``; by default ``/run/moc``, else
``moc-claims`` in the system temp dir). The kernel drops an flock when its
process dies, ``kill -9`` included, so a claim never outlives its daemon and
nothing needs cleaning up; the pid written into the file only names the owner
in the error the next daemon gives.

What is claimed:

- an NVIDIA GPU by its UUID, which names the card whatever its index;
- host memory by the kernel's boot id: containers on one kernel share its RAM
  and its boot id, while each may have a machine-id of its own. The default
  host device (no ``devices.host`` declared) takes the host exclusively. A
  declared host device takes the host shared and its own id exclusively, so
  daemons with different declared host devices run side by side, and none runs
  beside one that took the default.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from moc.devices.probe import DeviceInfo
from moc.errors import ConfigError

_ID_FILES = (Path("/proc/sys/kernel/random/boot_id"), Path("/etc/machine-id"))


def host_identity() -> str:
    """The kernel's boot id, else the machine id, else the host name."""
    for path in _ID_FILES:
        with contextlib.suppress(OSError):
            text = path.read_text().strip()
            if text:
                return text
    return socket.gethostname()


def default_claim_dirs() -> list[Path]:
    """Where claims live unless configured, in the order tried."""
    return [Path("/run/moc"), Path(tempfile.gettempdir()) / "moc-claims"]


def _usable(path: Path, *, shared: bool) -> bool:
    existed = path.is_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        if shared and not existed:
            # Sticky and open to all, like /tmp, so that the daemons of every
            # user on the host claim in the same place.
            path.chmod(0o1777)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def claim_dir(configured: Path | None) -> Path:
    """The directory to claim devices in; a configured one must be usable."""
    if configured is not None:
        if not _usable(configured.expanduser(), shared=False):
            raise ConfigError(
                "devices.claim_dir: must be a directory moc can create files in "
                f"(got {str(configured)!r})"
            )
        return configured.expanduser()
    for candidate in default_claim_dirs():
        if _usable(candidate, shared=True):
            return candidate
    tried = ", ".join(str(p) for p in default_claim_dirs())
    raise ConfigError(f"devices.claim_dir: none of {tried} is writable; set devices.claim_dir")


Scope = Literal["gpu", "host", "host_share", "host_device"]
"""What a claim covers: a GPU; all host memory (the default host device); a share
of host memory (any declared host device); one declared host device's id."""


@dataclass(frozen=True)
class Claim:
    """One lock to hold: ``key`` names the file; ``device`` is what it is for."""

    key: str
    device: DeviceInfo
    scope: Scope

    @property
    def exclusive(self) -> bool:
        return self.scope != "host_share"


def claims_for(devices: Sequence[DeviceInfo], *, declared_host: bool) -> list[Claim]:
    host = f"host-{host_identity()}"
    claims: dict[str, Claim] = {}
    for info in devices:
        if info.kind == "nvidia":
            key = f"nvidia-{info.uuid or info.id}"
            claims[key] = Claim(key, info, "gpu")
        elif declared_host:
            # One shared lock on the host is enough however many host devices.
            claims.setdefault(host, Claim(host, info, "host_share"))
            claims[f"{host}-{info.id}"] = Claim(f"{host}-{info.id}", info, "host_device")
        else:
            claims[host] = Claim(host, info, "host")
    return list(claims.values())


def _file(directory: Path, key: str) -> Path:
    return directory / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".lock")


def _open(path: Path) -> int:
    flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_RDWR, 0o666)
    except PermissionError:
        # Another user's claim file: an flock needs only a descriptor to read.
        fd = os.open(path, flags | os.O_RDONLY)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # umask would otherwise keep other users' daemons out
    return fd


def _pid_in(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        text = path.read_text().strip()
        if text.isdigit():
            return text
    return None


def _held_exclusively(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own shared lock
    return False


class DeviceClaims:
    """The claims one daemon holds, until :meth:`release` or its process ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fds: list[int] = []

    @classmethod
    def take(
        cls, devices: Sequence[DeviceInfo], *, declared_host: bool, directory: Path | None
    ) -> DeviceClaims:
        """Claim every device or none; ConfigError names the owner of one taken."""
        held = cls(claim_dir(directory))
        try:
            for claim in claims_for(devices, declared_host=declared_host):
                held._take(claim)
        except BaseException:
            held.release()
            raise
        return held

    def _take(self, claim: Claim) -> None:
        path = _file(self.directory, claim.key)
        try:
            fd = _open(path)
        except OSError as exc:
            raise ConfigError(
                f"devices.claim_dir: cannot open {path} to claim device {claim.device.id}: "
                f"{exc.strerror}"
            ) from exc
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if claim.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigError(f"devices.claim_dir: cannot lock {path}: {exc.strerror}") from exc
            raise ConfigError(self._taken(claim, path)) from None
        self._fds.append(fd)
        if claim.exclusive:
            with contextlib.suppress(OSError):  # read-only: someone else's file, pid not ours
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def _taken(self, claim: Claim, path: Path) -> str:
        info, owner = claim.device, _pid_in(path) or "?"
        match claim.scope:
            case "gpu":
                return (
                    f"device {info.id} ({info.name}, {info.uuid}) is owned by moc pid {owner} "
                    f"(claim {path}); stop that moc, or give this one other devices"
                )
            case "host_device":
                return (
                    f"device {info.id} (host memory) is owned by moc pid {owner} (claim {path}); "
                    "give each moc a host device id of its own under devices.host"
                )
            case "host_share":
                return (
                    f"device {info.id}: moc pid {owner} runs on this host's default host device, "
                    f"which claims all host memory (claim {path}); declare devices.host in both "
                    "mocs, with different ids"
                )
            case "host":
                return self._host_taken(info, path)

    def _host_taken(self, info: DeviceInfo, path: Path) -> str:
        """The default host device wants all host memory; name who holds part of it."""
        owners = sorted(
            pid
            for other in self.directory.glob(f"{path.stem}-*.lock")
            if _held_exclusively(other) and (pid := _pid_in(other)) is not None
        )
        if not owners:
            owners = [_pid_in(path) or "?"]
        return (
            f"device {info.id} (host memory) is owned by moc pid {', '.join(owners)} "
            f"(claim {path}); stop that moc, or declare a host device of its own for each "
            "under devices.host"
        )

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing the only descriptor drops its flock
        self._fds = []
