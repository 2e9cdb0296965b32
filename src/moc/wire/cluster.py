"""The cluster as ``GET /v1/cluster`` answers it."""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed


@closed
class ClusterDevice(TypedDict):
    """A device of a node, as that node last published it."""

    id: str
    """the device's id on its node"""
    kind: str
    """gpu or host"""
    capacity_bytes: int
    """what may be handed out"""
    held_bytes: int
    """held by leases and models"""
    free_bytes: int
    """capacity less held and what other processes use"""


@closed
class ClusterModel(TypedDict):
    """A model a node knows, with its state there."""

    name: str
    """the model's name"""
    state: str
    """ready, starting, stopped, …"""
    bytes: int
    """what it holds there, or would need (0: not known until first loaded)"""


@closed
class ClusterNode(TypedDict):
    """One node up in the cluster."""

    name: str
    """its name (cluster.node)"""
    url: str
    """how the other nodes reach it (cluster.advertise)"""
    up: bool
    """always true: a node whose heartbeat lapsed is not listed"""
    self: bool
    """the node that answered"""
    devices: list[ClusterDevice]
    models: list[ClusterModel]
    queued: int
    """inference requests waiting in its queues"""
    in_flight: int
    """inference requests at its backends"""
    seen_s_ago: float
    """seconds since its last heartbeat was published"""


@closed
class ClusterView(TypedDict):
    """The nodes this one sees; with no cluster configured, itself alone is not listed."""

    enabled: bool
    """whether cluster.redis is set"""
    node: str | None
    """the node that answered"""
    redis: Literal["ok", "down"] | None
    """down: this node serves only what it holds and routes nothing"""
    nodes: list[ClusterNode]
