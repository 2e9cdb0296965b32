"""A node as the cluster sees it: what it publishes with each heartbeat."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class NodeDevice:
    id: str
    kind: str
    capacity: int
    held: int
    free: int


@dataclass(frozen=True)
class NodeModel:
    name: str
    state: str  # the lifecycle's: ready, starting, stopped, …
    bytes: int  # what it holds, or would need (its size), on a device
    idle: bool  # ready with nothing in flight and not pinned: evictable


@dataclass(frozen=True)
class NodeInfo:
    """One node at one heartbeat. ``at`` is the publisher's clock (seconds since
    the epoch); a node is up while its key lives in Redis."""

    name: str
    url: str
    at: float
    devices: tuple[NodeDevice, ...] = ()
    models: tuple[NodeModel, ...] = ()
    queued: int = 0
    in_flight: int = 0
    bases: tuple[str, ...] = ()  # the fine-tuning bases it has, by name
    datasets: tuple[str, ...] = ()  # the datasets it holds, by name and by id
    _by_name: dict[str, NodeModel] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({m.name: m for m in self.models})

    def model(self, name: str) -> NodeModel | None:
        return self._by_name.get(name)

    @property
    def largest_capacity(self) -> int:
        return max((d.capacity for d in self.devices), default=0)

    @property
    def free(self) -> int:
        return sum(d.free for d in self.devices)

    @property
    def largest_free(self) -> int:
        """A model or a lease must fit on one device."""
        return max((d.free for d in self.devices), default=0)

    @property
    def evictable(self) -> int:
        return sum(m.bytes for m in self.models if m.idle)

    @property
    def load(self) -> int:
        return self.queued + self.in_flight

    def to_json(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("_by_name")
        return found

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NodeInfo:
        return cls(
            name=str(raw["name"]),
            url=str(raw["url"]),
            at=float(raw["at"]),
            devices=tuple(NodeDevice(**d) for d in raw.get("devices", ())),
            models=tuple(NodeModel(**m) for m in raw.get("models", ())),
            queued=int(raw.get("queued", 0)),
            in_flight=int(raw.get("in_flight", 0)),
            bases=tuple(str(b) for b in raw.get("bases", ())),
            datasets=tuple(str(d) for d in raw.get("datasets", ())),
        )
