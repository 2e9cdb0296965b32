"""What a learning job may name, looked up in the rest of moc: datasets,
goals, base models, GGUF models and embedding models moc serves, devices."""

from __future__ import annotations

from pathlib import Path

from moc.config import Config
from moc.devices.probe import DeviceInfo
from moc.errors import ModelNotFound
from moc.learning.datasets.model import Dataset
from moc.learning.datasets.service import DatasetService
from moc.learning.goals.service import GoalService
from moc.learning.jobs.model import TINY_BASE
from moc.learning.tiny_hf import write_tiny_base
from moc.lifecycle.table import ModelTable

HF_CONFIG = "config.json"


class DaemonLookups:
    def __init__(
        self,
        config: Config,
        datasets: DatasetService,
        goals: GoalService,
        models: ModelTable,
        devices: list[DeviceInfo],
    ) -> None:
        self._config = config
        self._datasets = datasets
        self._goals = goals
        self._models = models
        self._devices = {d.id: d for d in devices}

    def dataset(self, name_or_id: str) -> Dataset:
        return self._datasets.get(name_or_id)

    def goal_exists(self, name: str) -> bool:
        return name in self._goals.weights()

    def base(self, name: str) -> Path:
        if name == TINY_BASE:
            return write_tiny_base(self._config.data_dir / "learning" / "bases" / TINY_BASE)
        folder = self._config.learning.bases.get(name)
        if folder is None and Path(name).is_absolute():
            folder = Path(name)
        if folder is None or not (folder / HF_CONFIG).is_file():
            known = ", ".join([TINY_BASE, *sorted(self._config.learning.bases)])
            where = "" if folder is None else f" ({folder} has no {HF_CONFIG})"
            raise ModelNotFound(
                f"no base model {name!r}{where}: name one of {known} (learning.bases), "
                "or give the absolute path of a Hugging Face model folder",
                model=name,
            )
        return folder

    def gguf(self, name: str) -> Path:
        spec = self._models.catalog.spec(name)  # ModelNotFound with the known names
        if spec.backend != "llamacpp" or spec.path is None:
            raise ModelNotFound(
                f"model {name} is served by {spec.backend}, not from a GGUF file moc can read",
                model=name,
            )
        return spec.path

    def embedding_model(self, name: str) -> None:
        self._models.catalog.spec(name)

    def devices(self) -> list[str]:
        return list(self._devices)

    def gpu_of(self, device: str) -> str | None:
        info = self._devices.get(device)
        if info is None or info.kind == "host":
            return None
        return info.uuid
