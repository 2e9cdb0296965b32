"""The lifecycle's parts, built and wired together for one daemon."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from moc.backends.registry import build_runtimes
from moc.clock import Clock
from moc.config import Config
from moc.devices.probe import DeviceInfo
from moc.ledger import Ledger
from moc.lifecycle.loader import Loader
from moc.lifecycle.recovery import check_files, recover
from moc.lifecycle.sweeper import IdleSweeper
from moc.lifecycle.table import ModelTable
from moc.lifecycle.usage import Measure, Usage
from moc.models.catalog import Catalog
from moc.store.models import ModelStore
from moc.telemetry.metrics import Metrics


@dataclass(frozen=True)
class Lifecycle:
    table: ModelTable  # what the transports read
    loader: Loader  # what they call to load, hold and unload
    usage: Usage  # what the device monitor reports to
    sweeper: IdleSweeper
    store: ModelStore

    async def recover(self) -> tuple[int, int]:
        """Before serving: warn about unloadable files; adopt or stop the runtimes
        an earlier moc left running, (adopted, stopped)."""
        await check_files(self.table)
        return await recover(self.table, self.loader, self.usage, self.store)

    def start(self) -> None:
        self.sweeper.start()

    async def close(self) -> None:
        """Stop every runtime (within the grace period each)."""
        self.sweeper.close()
        await self.loader.close()
        await self.table.runtimes.close()


def build_lifecycle(
    config: Config,
    catalog: Catalog,
    ledger: Ledger,
    devices: list[DeviceInfo],
    store: ModelStore,
    clock: Clock,
    metrics: Metrics,
    measure: Measure,
    on_more_free: Callable[[], None],
) -> Lifecycle:
    """Raises ConfigError for a runtime setting that cannot work."""
    runtimes = build_runtimes(config, catalog)
    table = ModelTable(catalog, runtimes, ledger, devices, clock, metrics, on_more_free)
    usage = Usage(table, store, clock, metrics, measure)
    drain_timeout_s = config.runtimes.llamacpp.ready_timeout_s
    loader = Loader(table, usage, store, clock, metrics, drain_timeout_s)
    return Lifecycle(table, loader, usage, IdleSweeper(table, loader, clock, metrics), store)
