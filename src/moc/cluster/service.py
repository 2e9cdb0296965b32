"""The cluster as the gateway sees it: which node serves a model, and the
forward there; what this node publishes of itself.

Built by the daemon only when ``cluster.redis`` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Scope, Send

from moc.backends.state import State
from moc.clock import Clock
from moc.cluster.forward import Forwarder, Unreachable
from moc.cluster.limits import SharedLimits
from moc.cluster.link import ClusterLink
from moc.cluster.model import NodeDevice, NodeInfo, NodeModel
from moc.cluster.route import Forward, Local, Place, route
from moc.ledger import DeviceView
from moc.lifecycle.slot import ModelView
from moc.telemetry.metrics import Metrics

LIST_TIMEOUT_S = 5.0  # a node slower than this to list is left out of the cluster's list


def node_info(
    name: str,
    url: str,
    now: float,
    devices: list[DeviceView],
    models: list[ModelView],
    queued: int,
    in_flight: int,
    bases: tuple[str, ...] = (),
    datasets: tuple[str, ...] = (),
) -> NodeInfo:
    """This node as it publishes itself: devices, every model it knows with
    its state and size, how busy it is, and what learning jobs may name here
    (bases, datasets)."""

    def size(view: ModelView) -> int:
        """What it holds, else what it would need: its sizing, its configured
        memory, else its file's size (a GGUF's weights: the bulk of it)."""
        if view.reserved:
            return view.reserved
        if view.sizing is not None:
            return view.sizing.bytes
        if view.spec.memory is not None:
            return int(view.spec.memory)
        path = view.spec.path
        try:
            return path.stat().st_size if path is not None and path.is_file() else 0
        except OSError:
            return 0

    return NodeInfo(
        name=name,
        url=url,
        at=now,
        devices=tuple(NodeDevice(d.id, d.kind, d.capacity, d.held, d.free) for d in devices),
        models=tuple(
            NodeModel(
                v.spec.name,
                v.state.value,
                size(v),
                v.state is State.READY and v.in_flight == 0 and not v.spec.pinned,
            )
            for v in models
        ),
        queued=queued,
        in_flight=in_flight,
        bases=bases,
        datasets=datasets,
    )


class Cluster:
    def __init__(
        self,
        link: ClusterLink,
        forwarder: Forwarder,
        here: Callable[[], NodeInfo],
        ready_here: Callable[[str], bool],
        metrics: Metrics,
        clock: Clock,
        limits: SharedLimits,
    ) -> None:
        self.link = link
        self.name = link.name
        self.limits = limits  # each key's limits, counted across the nodes
        self._forwarder = forwarder
        self._here = here
        self._ready_here = ready_here
        self._metrics = metrics
        self._clock = clock

    @property
    def ok(self) -> bool:
        return self.link.ok

    def nodes(self) -> list[NodeInfo]:
        """Every node up, this one first (as it is now)."""
        return [self._here(), *sorted(self.link.others.values(), key=lambda n: n.name)]

    def node(self, name: str) -> NodeInfo | None:
        return self.link.others.get(name)

    async def serving(self, model: str) -> NodeInfo | None:
        """The other node that should serve ``model``; None: this one. A model
        ready here (most requests) is decided without building this node's
        snapshot."""
        if not self.link.ok or self._ready_here(model):
            return None
        decided = route(model, self._here(), self.link.reachable())
        if isinstance(decided, Local):
            return None
        if isinstance(decided, Forward):
            return decided.node
        assert isinstance(decided, Place)
        winner = await self.link.claim_placement(model, decided.node.name)
        reachable = {n.name: n for n in self.link.reachable()}
        there = None if winner in (None, self.name) else reachable.get(str(winner))
        self._metrics.cluster_placements.labels("here" if there is None else "there").inc()
        return there

    async def forward(
        self, node: NodeInfo, scope: Scope, body: bytes, send: Send, caller: str | None
    ) -> Unreachable | None:
        """Send the request to ``node`` and its answer back; None when it was,
        else why not (nothing was sent back yet; the node is forgotten until
        the next heartbeat, and the caller may serve it itself)."""
        try:
            status, began = await self._forwarder.send(node.url, scope, body, send, caller)
        except Unreachable as failed:
            self.link.forget(node.name)
            self._metrics.cluster_forwards.labels(node.name, "unreachable").inc()
            return failed
        self._metrics.cluster_forwards.labels(node.name, str(status)).inc()
        self._metrics.cluster_forward_seconds.observe(began)
        return None

    async def gather(self, scope: Scope, caller: str | None) -> tuple[list[bytes], list[str]]:
        """The same listing from every other node: the answers, and the names
        of the nodes that gave none (unreachable, or not 200)."""
        others = self.link.reachable()

        async def one(node: NodeInfo) -> bytes | None:
            try:
                status, body = await self._forwarder.fetch(node.url, scope, caller, LIST_TIMEOUT_S)
            except Unreachable as failed:
                if not failed.sent:  # down, not merely slow to list
                    self.link.forget(node.name)
                return None
            return body if status == 200 else None

        found = await asyncio.gather(*(one(n) for n in others))
        missing = [n.name for n, body in zip(others, found, strict=True) if body is None]
        return [body for body in found if body is not None], missing

    async def close(self) -> None:
        await self.link.close()
        await self._forwarder.close()
