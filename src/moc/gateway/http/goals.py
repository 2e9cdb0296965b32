"""Goal routes: /v1/goals…"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc import wire
from moc.gateway.http.body import parse
from moc.gateway.http.respond import json, services
from moc.gateway.http.wire import GoalCreateBody, GoalUpdateBody
from moc.gateway.views import iso
from moc.learning.goals.model import Goal, goal_change, new_goal


def goal_view(goal: Goal) -> wire.Goal:
    return {
        "name": goal.name,
        "weight": goal.weight,
        "description": goal.description,
        "status": goal.status.value,
        "created_at": iso(goal.created_at),
        "updated_at": iso(goal.updated_at),
    }


async def create(request: Request) -> Response:
    body = await parse(request, GoalCreateBody)
    made = new_goal(
        name=body.name, weight=body.weight, description=body.description, status=body.status
    )
    goal = services(request).goals.create(made)
    return json(goal_view(goal), 201, {"location": f"/v1/goals/{goal.name}"})


async def list_goals(request: Request) -> Response:
    answer: wire.GoalList = {"goals": [goal_view(g) for g in services(request).goals.list()]}
    return json(answer)


async def get_goal(request: Request) -> Response:
    return json(goal_view(services(request).goals.get(request.path_params["name"])))


async def update(request: Request) -> Response:
    body = await parse(request, GoalUpdateBody)
    change = goal_change(weight=body.weight, description=body.description, status=body.status)
    return json(goal_view(services(request).goals.update(request.path_params["name"], change)))


async def delete(request: Request) -> Response:
    goal = services(request).goals.delete(request.path_params["name"])
    answer: wire.GoalDeleted = {"deleted": True, "goal": goal_view(goal)}
    return json(answer)


routes = [
    Route("/v1/goals", create, methods=["POST"]),
    Route("/v1/goals", list_goals, methods=["GET"]),
    Route("/v1/goals/{name}", get_goal, methods=["GET"]),
    Route("/v1/goals/{name}", update, methods=["PATCH"]),
    Route("/v1/goals/{name}", delete, methods=["DELETE"]),
]
