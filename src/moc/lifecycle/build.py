"""The lifecycle's parts, built and wired together for one daemon."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from moc.artifacts.adapters import AdapterCatalog
from moc.artifacts.models import verified_spec
from moc.artifacts.registry import Registry
from moc.backends.registry import build_runtimes
from moc.clock import Clock
from moc.config import Config
from moc.devices.probe import DeviceInfo
from moc.ledger import Ledger
from moc.lifecycle.loader import Loader
from moc.lifecycle.records import RuntimeStore
from moc.lifecycle.recovery import check_files, recover
from moc.lifecycle.sweeper import IdleSweeper
from moc.lifecycle.table import ModelTable
from moc.lifecycle.usage import Measure, Usage
from moc.lifecycle.yielding import Yielders
from moc.models.aliases import read_aliases
from moc.models.catalog import Catalog
from moc.models.spec import ModelSpec
from moc.models.store import SizeStore
from moc.store.sqlite import Database
from moc.telemetry.metrics import Metrics


@dataclass(frozen=True)
class Lifecycle:
    table: ModelTable  # what the transports read
    loader: Loader  # what they call to load, hold and unload
    usage: Usage  # what the device monitor reports to
    sweeper: IdleSweeper
    records: RuntimeStore

    async def recover(self) -> tuple[int, int]:
        """Before serving: warn about unloadable files; adopt or stop the runtimes
        an earlier moc left running, (adopted, stopped)."""
        await check_files(self.table)
        return await recover(self.table, self.loader, self.usage, self.records)

    def start(self) -> None:
        self.sweeper.start()

    async def close(self) -> None:
        """Stop every runtime (within the grace period each)."""
        self.sweeper.close()
        await self.loader.close()
        await self.table.runtimes.close()


def build_lifecycle(
    config: Config,
    specs: list[ModelSpec],
    ledger: Ledger,
    devices: list[DeviceInfo],
    db: Database,
    clock: Clock,
    metrics: Metrics,
    measure: Measure,
    on_more_free: Callable[[], None],
    yielders: Yielders | None = None,
    artifacts: Registry | None = None,
) -> Lifecycle:
    """Raises ConfigError for a runtime setting that cannot work."""
    sizes, records = SizeStore(db), RuntimeStore(db)
    catalog = Catalog(specs, sizes)
    runtimes = build_runtimes(config, catalog)
    table = ModelTable(catalog, runtimes, ledger, devices, clock, metrics, on_more_free)
    names = {spec.name for spec in specs}
    if artifacts is not None:
        table.adapters = AdapterCatalog(artifacts, lambda: names)
    if config.artifacts.agent_map is not None:
        table.aliases = read_aliases(config.artifacts.agent_map.expanduser(), names)
    usage = Usage(table, sizes, clock, metrics, measure)
    drain_timeout_s = config.runtimes.llamacpp.ready_timeout_s
    verify = None if artifacts is None else functools.partial(verified_spec, artifacts)
    loader = Loader(table, usage, records, clock, metrics, drain_timeout_s, yielders, verify)
    return Lifecycle(table, loader, usage, IdleSweeper(table, loader, clock, metrics), records)
