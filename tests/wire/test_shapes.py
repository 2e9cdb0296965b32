"""The wire shapes say what the views send: the ``Literal`` sets mirror the
server's enums, each view's keys are its shape's, and the wire package stays
free of server parts (the SDK imports it)."""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path

from moc import wire
from moc.backends.state import State
from moc.devices.host import HostProbe
from moc.gateway.http.goals import goal_view
from moc.gateway.views import device_view, lease_view
from moc.jobs.model import JobStatus
from moc.learning.goals.model import Goal, GoalStatus
from moc.leases.model import Lease
from moc.ledger import Ledger
from moc.models.spec import ModelSpec
from moc.scheduler.waiting import Priority
from moc.wire.goals import GoalStatus as WireGoalStatus
from moc.wire.jobs import JobStatus as WireJobStatus
from moc.wire.jobs import PriorityLabel
from moc.wire.models import Backend, ModelState

WIRE = Path(wire.__file__).parent


def _values(literal: object) -> list[object]:
    return list(typing.get_args(literal))


def test_the_literal_sets_are_the_server_enums() -> None:
    assert _values(WireJobStatus) == [s.value for s in JobStatus]
    assert _values(WireGoalStatus) == [s.value for s in GoalStatus]
    assert _values(PriorityLabel) == [p.label for p in Priority]
    assert _values(ModelState) == [s.value for s in State] + ["remote"]
    assert _values(Backend) == _values(ModelSpec.model_fields["backend"].annotation)


def test_the_lease_view_has_exactly_the_lease_shape() -> None:
    lease = Lease("a", "host", 1, "me", None, 50, False, 1, 30.0, 0.0, 30.0)
    assert list(lease_view(lease, 1.0, None, False)) == list(wire.Lease.__annotations__)


def test_the_goal_view_has_exactly_the_goal_shape() -> None:
    goal = Goal("g", 1.0, "", GoalStatus.ACTIVE, 0.0, 0.0)
    assert list(goal_view(goal)) == list(wire.Goal.__annotations__)


def test_the_device_view_has_exactly_the_device_shape() -> None:
    (info,) = HostProbe([("host", 1 << 30)]).devices()
    ledger = Ledger()
    ledger.add_device(info.id, info.kind, info.total, 0.9)
    view = device_view(info, ledger.view(info.id))
    assert list(view) == list(wire.Device.__annotations__)


def test_the_wire_package_imports_nothing_of_the_server() -> None:
    for path in WIRE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("moc.") or node.module.startswith("moc.wire"), (
                    f"{path.name} imports {node.module}"
                )
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith("moc") for a in node.names), path.name


def test_importing_moc_does_not_load_pydantic() -> None:
    """The SDK is ``import moc``; the server's schema machinery stays out of it."""
    code = "import sys, moc; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
