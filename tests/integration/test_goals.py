"""Goals against a real ``moc serve``: the HTTP API, the SDK and the ``moc
goals`` commands, the configured limit on active goals, and goals kept
across a restart (and a kill -9)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest

import moc
from moc.errors import GoalExists, GoalNotFound, InvalidRequest, TooManyActiveGoals
from tests.conftest import MocProcess
from tests.integration.support import Factory
from tests.integration.test_cli import lines, row, run

LIMITED = {"goals": {"max_active_goals": 2}, "runtimes": {"demo_models": False}}


def test_http_crud_with_the_documented_answers(moc_factory: Factory) -> None:
    server = moc_factory(LIMITED).start()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        made = http.post("/v1/goals", json={"name": "research", "weight": 3})
        assert made.status_code == 201, made.text
        assert made.headers["location"] == "/v1/goals/research"
        goal = made.json()
        assert {k: goal[k] for k in ("name", "weight", "description", "status")} == {
            "name": "research",
            "weight": 3.0,
            "description": "",
            "status": "active",
        }
        assert goal["created_at"] == goal["updated_at"]
        assert goal["created_at"].endswith("Z")

        again = http.post("/v1/goals", json={"name": "research", "weight": 1})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "goal_exists"

        http.post("/v1/goals", json={"name": "chores", "weight": 1, "description": "tidy"})
        third = http.post("/v1/goals", json={"name": "extra", "weight": 1})
        assert third.status_code == 409
        error = third.json()["error"]
        assert error["code"] == "too_many_active_goals"
        assert error["details"]["limit"] == 2
        assert "goals.max_active_goals is 2" in error["message"]
        paused = http.post("/v1/goals", json={"name": "extra", "weight": 1, "status": "paused"})
        assert paused.status_code == 201

        listed = http.get("/v1/goals").json()
        assert [g["name"] for g in listed["goals"]] == ["research", "chores", "extra"]

        patched = http.patch("/v1/goals/research", json={"weight": 0.5, "status": "paused"})
        assert patched.status_code == 200, patched.text
        assert (patched.json()["weight"], patched.json()["status"]) == (0.5, "paused")
        assert http.get("/v1/goals/research").json() == patched.json()

        bad = http.patch("/v1/goals/research", json={"weight": 1001})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "weight"
        assert "at most 1000" in bad.json()["error"]["message"]

        deleted = http.delete("/v1/goals/chores")
        assert deleted.json() == {"deleted": True, "goal": listed["goals"][1]}
        for method in ("GET", "PATCH", "DELETE"):
            gone = http.request(method, "/v1/goals/chores", json={} if method == "PATCH" else None)
            assert gone.status_code == 404
            assert gone.json()["error"]["code"] == "goal_not_found"


def test_goals_survive_a_restart_and_a_kill(moc_factory: Factory) -> None:
    server = moc_factory(LIMITED).start()
    with moc.Client(server.url) as client:
        client.create_goal("kept", 2, description="across restarts")
        client.update_goal("kept", status="done")
    assert server.stop() == 0, server.log()
    server.start()
    with moc.Client(server.url) as client:
        client.create_goal("after", 1)
    server.kill9()
    server.start()
    with moc.Client(server.url) as client:
        found = {g["name"]: g for g in client.goals()}
    assert set(found) == {"kept", "after"}
    assert (found["kept"]["status"], found["kept"]["description"]) == ("done", "across restarts")


def test_the_sdk_raises_the_error_classes(moc_factory: Factory) -> None:
    server = moc_factory(LIMITED).start()
    with moc.Client(server.url) as client:
        goal = client.create_goal("a", 1.5, description="first")
        assert client.goal("a") == goal
        assert client.goals() == [goal]
        assert client.update_goal("a", weight=4)["weight"] == 4.0
        with pytest.raises(GoalExists):
            client.create_goal("a", 1)
        with pytest.raises(InvalidRequest) as info:
            client.create_goal("b", 0)
        assert info.value.field == "weight"
        client.create_goal("b", 1)
        with pytest.raises(TooManyActiveGoals):
            client.create_goal("c", 1)
        with pytest.raises(GoalNotFound):
            client.goal("what?")  # quoted: an unknown goal, not a query string
        assert client.delete_goal("a")["weight"] == 4.0

    async def from_async() -> list[str]:
        async with moc.AsyncClient(server.url) as aclient:
            await aclient.create_goal("c", 2, status="paused")
            await aclient.update_goal("c", description="async")
            names = [g["name"] for g in await aclient.goals()]
            assert (await aclient.goal("c"))["description"] == "async"
            await aclient.delete_goal("c")
            return names

    assert asyncio.run(from_async()) == ["b", "c"]


def test_the_goals_commands(moc_factory: Factory) -> None:
    server: MocProcess = moc_factory(LIMITED).start()
    assert lines(run(server, "goals")) == ["no goals"]
    added = run(server, "goals", "add", "research", "--weight", "3", "--description", "papers")
    assert lines(added) == ["goal research added: weight 3, active"]
    run(server, "goals", "add", "chores", "-w", "0.5", "--status", "paused")

    table = lines(run(server, "goals"))
    assert table[0].split() == ["GOAL", "WEIGHT", "STATUS", "DESCRIPTION"]
    assert row(table, "research") == ["research", "3", "active", "papers"]
    assert row(table, "chores") == ["chores", "0.5", "paused", "-"]

    changed = run(server, "goals", "set", "chores", "--status", "active", "--json")
    assert json.loads(changed.stdout)["status"] == "active"
    listed = json.loads(run(server, "goals", "--json").stdout)
    assert [(g["name"], g["status"]) for g in listed] == [
        ("research", "active"),
        ("chores", "active"),
    ]

    over = run(server, "goals", "add", "third", "--weight", "1")
    assert over.returncode == 1
    assert "too_many_active_goals" in over.stderr
    assert "Traceback" not in over.stderr
    nothing = run(server, "goals", "set", "chores")
    assert nothing.returncode == 1
    assert "give at least one" in nothing.stderr

    # --url and --json given before the command hold for it too.
    before = subprocess.run(
        [sys.executable, "-m", "moc", "goals", "--url", server.url, "--json", "set", "research",
         "-w", "4"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "MOC_URL": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["weight"] == 4

    assert lines(run(server, "goals", "rm", "chores")) == ["goal chores removed"]
    missing = run(server, "goals", "rm", "chores")
    assert missing.returncode == 1
    assert "goal_not_found" in missing.stderr
