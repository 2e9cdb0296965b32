"""The learning side's parts, built and wired together for one daemon."""

from __future__ import annotations

from dataclasses import dataclass

from moc.artifacts.registry import Registry
from moc.clock import Clock
from moc.config import Config
from moc.devices.probe import DeviceInfo
from moc.learning.datasets import DatasetService
from moc.learning.datasets.files import ContentFiles
from moc.learning.datasets.store import DatasetStore
from moc.learning.goals.model import Goal
from moc.learning.goals.service import GoalService
from moc.learning.goals.store import GoalStore
from moc.learning.indexes import Indexes
from moc.learning.jobs.runner import LearningRunner
from moc.learning.jobs.store import LearningJobStore
from moc.learning.lookups import DaemonLookups
from moc.learning.worker.selfcall import SelfTls
from moc.leases.service import LeaseService
from moc.lifecycle.table import ModelTable
from moc.store.sqlite import Database
from moc.telemetry.metrics import Metrics


@dataclass(frozen=True)
class Learning:
    datasets: DatasetService
    goals: GoalService
    runner: LearningRunner
    indexes: Indexes

    def bind(self, moc_url: str, tls: SelfTls | None = None, api_key: str | None = None) -> None:
        """Where children and queries reach moc's own gateway, once it listens,
        how they trust it when it serves TLS, and the key they show it when
        auth is on (moc's own, made at each start)."""
        self.runner.moc_url = moc_url
        self.runner.moc_tls = tls
        self.runner.moc_api_key = api_key
        self.indexes.moc_url = moc_url
        self.indexes.moc_tls = tls
        self.indexes.moc_api_key = api_key

    async def close(self) -> None:
        await self.runner.close()
        await self.indexes.close()


def build_learning(
    config: Config,
    db: Database,
    leases: LeaseService,
    models: ModelTable,
    devices: list[DeviceInfo],
    clock: Clock,
    metrics: Metrics,
    registry: Registry,
) -> Learning:
    files = ContentFiles(config.data_dir.expanduser() / "datasets")
    datasets = DatasetService(
        DatasetStore(db, files.path), files, clock, config.learning.max_dataset_bytes
    )
    goals = GoalService(GoalStore(db), config.goals, clock)
    store = LearningJobStore(db)
    lookups = DaemonLookups(config, datasets, goals, models, devices)
    indexes = Indexes(
        config.data_dir.expanduser() / "indexes", config.learning.interpreter, registry
    )
    runner = LearningRunner(
        store, leases, lookups, goals.weights, clock, metrics, config, indexes.publish, registry
    )
    datasets.in_use = store.using_dataset

    def goal_changed(old: Goal | None, new: Goal | None) -> None:
        runner.goals_changed()

    goals.listen(goal_changed)
    metrics.watch_learning(lambda: {s.value: n for s, n in store.counts().items()})

    return Learning(datasets, goals, runner, indexes)
