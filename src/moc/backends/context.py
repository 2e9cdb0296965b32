"""What every runtime is built with: the settings, the catalog, one HTTP client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from moc.backends.supervisor import SupervisionPolicy
from moc.backends.systemd import Systemd
from moc.config import Config
from moc.models.catalog import Catalog


@dataclass(frozen=True)
class RuntimeContext:
    config: Config
    catalog: Catalog
    http: httpx.AsyncClient  # shared by every runtime's probes and API calls
    policy: SupervisionPolicy  # restarts and backoff; a runtime may set its own timeouts
    systemd: Systemd
    logs: Path  # where runtime processes write their logs

    @classmethod
    def of(cls, config: Config, catalog: Catalog) -> RuntimeContext:
        rt = config.runtimes
        policy = SupervisionPolicy(
            ready_timeout_s=rt.llamacpp.ready_timeout_s,
            stop_grace_s=rt.llamacpp.stop_grace_s,
            restart_limit=rt.restart_limit,
            backoff_s=rt.restart_backoff_s,
            backoff_max_s=rt.restart_backoff_max_s,
        )
        return cls(
            config,
            catalog,
            httpx.AsyncClient(trust_env=False),
            policy,
            Systemd(),
            config.data_dir / "logs",
        )
