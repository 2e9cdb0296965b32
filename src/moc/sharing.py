"""What the nodes of a cluster share through Redis besides the directory:
the goals (so a goal made, paused or reweighted on any node holds on every
node's learning queue) and the API keys (so a key made on one node works on
all of them, and a revocation reaches all of them within about two
heartbeats). Each stays in every node's SQLite as well: a node serves with
its own copy while Redis is down."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from moc.auth.keys import KeyRing
from moc.auth.model import ApiKey
from moc.cluster.link import ClusterLink
from moc.cluster.shared import Docs, SharedTable
from moc.errors import GoalNotFound, MocError
from moc.learning.goals.model import Goal
from moc.learning.goals.service import GoalService
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

T = TypeVar("T")


def _each(docs: Docs, read: Callable[[dict[str, Any]], T], table: str) -> dict[str, T | None]:
    """Every document read; None for one this version cannot read (a newer
    node's, say), logged."""
    found: dict[str, T | None] = {}
    for key, doc in docs.items():
        try:
            found[key] = read(doc)
        except (KeyError, ValueError, TypeError, MocError) as exc:
            event(log, logging.WARNING, "cluster table: a document cannot be read here",
                  table=table, key=key[:80], error=repr(exc))  # fmt: skip
            found[key] = None
    return found


def share(goals: GoalService, keys: KeyRing, link: ClusterLink, secret: bytes) -> None:
    """Share ``goals`` and ``keys`` through ``link``'s Redis, signed with the
    cluster's ``secret``, synced after each heartbeat."""

    def adopt_goals(docs: Docs) -> None:
        taken = []
        for name, goal in _each(docs, Goal.from_record, "goals").items():
            if goal is None:  # unreadable here: this node keeps its own, if it has one
                try:
                    goal = goals.get(name)
                except GoalNotFound:
                    continue
            taken.append(goal)
        goals.adopt(taken)

    goal_table = SharedTable(
        link, "goals", secret, lambda: {g.name: g.record() for g in goals.list()}, adopt_goals
    )

    def goal_changed(old: Goal | None, new: Goal | None) -> None:
        if new is not None:
            goal_table.put(new.name, new.record())
        elif old is not None:
            goal_table.drop(old.name)

    goals.listen(goal_changed)

    def adopt_keys(docs: Docs) -> None:
        keys.adopt([k for k in _each(docs, ApiKey.from_record, "keys").values() if k is not None])

    key_table = SharedTable(
        link,
        "keys",
        secret,
        lambda: {k.id: k.record() for k in keys.all()},
        adopt_keys,
        keep_mine=True,  # keys are never deleted: one missing in Redis was lost there
    )
    keys.on_change = lambda key: key_table.put(key.id, key.record())
    link.after_beat(goal_table.sync)
    link.after_beat(key_table.sync)
