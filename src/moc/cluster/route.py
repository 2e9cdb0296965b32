"""Where a request for a model goes: the decisions, with no I/O.

A model ready here is served here. Else a node that holds it ready (the least
loaded), else one that is loading it. Else no node holds it: it is placed on
the node best able to take it (it knows the model, the model fits in its free
memory plus what its idle models hold, and its queue is the shortest), and
that choice is claimed in Redis so two nodes cannot both place it.
"""

from __future__ import annotations

from dataclasses import dataclass

from moc.cluster.model import NodeInfo

READY = "ready"
LOADING = frozenset({"starting"})


@dataclass(frozen=True)
class Local:
    """Serve it here."""


@dataclass(frozen=True)
class Forward:
    node: NodeInfo


@dataclass(frozen=True)
class Place:
    """No node holds it: claim a placement on ``node`` (which may be this one)."""

    node: NodeInfo


Route = Local | Forward | Place
LOCAL = Local()


def route(model: str, here: NodeInfo, others: list[NodeInfo]) -> Route:
    mine = here.model(model)
    if mine is not None and mine.state == READY:
        return LOCAL
    holders = [n for n in others if (m := n.model(model)) is not None and m.state == READY]
    if holders:
        return Forward(min(holders, key=lambda n: (n.load, n.name)))
    if mine is not None and mine.state in LOADING:
        return LOCAL
    loading = [n for n in others if (m := n.model(model)) is not None and m.state in LOADING]
    if loading:
        return Forward(min(loading, key=lambda n: (n.load, n.name)))
    best = best_fit(model, [here, *others])
    if best is None:
        return LOCAL  # nobody can: here answers why (model_not_found, insufficient_memory)
    return Place(best)


def best_fit(model: str, nodes: list[NodeInfo]) -> NodeInfo | None:
    """The node to load ``model`` on: it knows the model and it fits (one
    device's free memory, and what idle models hold); the shortest queue,
    then the most free memory."""
    fits = [
        n
        for n in nodes
        if (m := n.model(model)) is not None and m.bytes <= n.largest_free + n.evictable
    ]
    if not fits:
        return None
    return min(fits, key=lambda n: (n.load, -n.free, n.name))


def able_to_learn(
    base: str | None, model: str | None, dataset: str | None, nodes: list[NodeInfo]
) -> NodeInfo | None:
    """The node for a learning job this one cannot take: one that has the base,
    the model and the dataset the job names; the largest device (a job must
    fit on one), then the most free memory, then the shortest queue."""

    def has(n: NodeInfo) -> bool:
        return (
            (base is None or base in n.bases)
            and (model is None or n.model(model) is not None)
            and (dataset is None or dataset in n.datasets)
        )

    able = [n for n in nodes if has(n)]
    if not able:
        return None
    return max(able, key=lambda n: (n.largest_capacity, n.free, -n.load, n.name))
