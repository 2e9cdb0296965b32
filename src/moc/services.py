"""The parts a running daemon is made of, handed to the transports.

Built once by :mod:`moc.daemon`; the transports read from it and call into
its services but keep no state of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moc.artifacts.registry import Registry
from moc.auth.service import Auth
from moc.clock import Clock
from moc.cluster.service import Cluster
from moc.config import Config
from moc.devices.probe import DeviceInfo
from moc.dispatch.service import Dispatcher
from moc.jobs.runner import JobRunner
from moc.learning.build import Learning
from moc.learning.datasets import DatasetService
from moc.learning.goals.service import GoalService
from moc.learning.indexes import Indexes
from moc.learning.jobs.runner import LearningRunner
from moc.leases.service import LeaseService
from moc.leases.validate import TtlLimits
from moc.ledger import Ledger
from moc.lifecycle.build import Lifecycle
from moc.lifecycle.loader import Loader
from moc.lifecycle.table import ModelTable
from moc.scheduler.task import Scheduler
from moc.telemetry.metrics import Metrics


@dataclass
class Services:
    config: Config
    clock: Clock
    ledger: Ledger
    devices: list[DeviceInfo]
    leases: LeaseService
    lifecycle: Lifecycle
    scheduler: Scheduler
    dispatcher: Dispatcher
    jobs: JobRunner
    learning_side: Learning
    artifacts: Registry
    auth: Auth
    metrics: Metrics
    started_at: float
    limits: TtlLimits = field(init=False)
    draining: bool = False  # set when shutdown begins; /health turns 503
    cluster: Cluster | None = None  # set once HTTP listens, with cluster.redis

    def __post_init__(self) -> None:
        self.limits = TtlLimits.of(self.config.leases)

    @property
    def models(self) -> ModelTable:
        """The models as they are."""
        return self.lifecycle.table

    @property
    def loader(self) -> Loader:
        """Loading, holding and unloading them."""
        return self.lifecycle.loader

    @property
    def datasets(self) -> DatasetService:
        return self.learning_side.datasets

    @property
    def goals(self) -> GoalService:
        return self.learning_side.goals

    @property
    def learning(self) -> LearningRunner:
        """Learning jobs: submitted, run under leases, yielding to inference."""
        return self.learning_side.runner

    @property
    def indexes(self) -> Indexes:
        return self.learning_side.indexes

    def device(self, device_id: str) -> DeviceInfo | None:
        return next((d for d in self.devices if d.id == device_id), None)
