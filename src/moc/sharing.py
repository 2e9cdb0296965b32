"""What the nodes of a cluster share through Redis besides the directory:
the goals (so a goal made, paused or reweighted on any node holds on every
node's learning queue) and the API keys (so a key made on one node works on
all of them, and a revocation reaches all of them within about two
heartbeats). Each stays in every node's SQLite as well: a node serves with
its own copy while Redis is down."""

from __future__ import annotations

from moc.auth.keys import KeyRing
from moc.auth.model import ApiKey
from moc.cluster.link import ClusterLink
from moc.cluster.shared import Docs, SharedTable
from moc.learning.goals.model import Goal
from moc.learning.goals.service import GoalService


def share(goals: GoalService, keys: KeyRing, link: ClusterLink) -> None:
    """Share ``goals`` and ``keys`` through ``link``'s Redis, synced after
    each heartbeat."""

    def adopt_goals(docs: Docs) -> None:
        goals.adopt([Goal.from_record(d) for d in docs.values()])

    goal_table = SharedTable(
        link, "goals", lambda: {g.name: g.record() for g in goals.list()}, adopt_goals
    )

    def goal_changed(old: Goal | None, new: Goal | None) -> None:
        if new is not None:
            goal_table.put(new.name, new.record())
        elif old is not None:
            goal_table.drop(old.name)

    goals.listen(goal_changed)

    def adopt_keys(docs: Docs) -> None:
        keys.adopt([ApiKey.from_record(d) for d in docs.values()])

    key_table = SharedTable(
        link, "keys", lambda: {k.id: k.record() for k in keys.all()}, adopt_keys
    )
    keys.on_change = lambda key: key_table.put(key.id, key.record())
    link.after_beat(goal_table.sync)
    link.after_beat(key_table.sync)
