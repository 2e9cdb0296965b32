"""JSON responses, encoded once with orjson, and the request's services."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from moc.services import Services


def services(request: Request) -> Services:
    """The daemon's parts, as the app was built with them."""
    found: Services = request.app.state.services
    return found


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")
