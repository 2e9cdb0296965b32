"""The learning side's parts, built and wired together for one daemon."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from moc.clock import Clock
from moc.config import Config
from moc.devices.probe import DeviceInfo
from moc.errors import Unavailable
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

    def bind(self, moc_url: str) -> None:
        """Where children and queries reach moc's own gateway, once it listens."""
        self.runner.moc_url = moc_url

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
) -> Learning:
    files = ContentFiles(config.data_dir.expanduser() / "datasets")
    datasets = DatasetService(
        DatasetStore(db, files.path), files, clock, config.learning.max_dataset_bytes
    )
    goals = GoalService(GoalStore(db), config.goals, clock)
    store = LearningJobStore(db)
    lookups = DaemonLookups(config, datasets, goals, models, devices)
    runner = LearningRunner(store, leases, lookups, goals.weights, clock, metrics, config)
    datasets.in_use = store.using_dataset

    def goal_changed(old: Goal | None, new: Goal | None) -> None:
        runner.goals_changed()

    goals.listen(goal_changed)
    metrics.watch_learning(lambda: {s.value: n for s, n in store.counts().items()})

    async def embed_via_moc(model: str, texts: list[str]) -> list[list[float]]:
        try:
            async with httpx.AsyncClient(base_url=runner.moc_url, timeout=300) as client:
                answer = await client.post("/v1/embeddings", json={"model": model, "input": texts})
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot embed the query with {model}: {exc}") from exc
        if answer.status_code != 200:
            raise Unavailable(f"embedding the query with {model}: {answer.text[:300]}")
        return [item["embedding"] for item in answer.json()["data"]]

    root = config.data_dir.expanduser() / "indexes"
    indexes = Indexes(root, config.learning.interpreter, embed_via_moc)
    return Learning(datasets, goals, runner, indexes)
