"""Health, metrics, devices and the OpenAPI document."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc.errors import DeviceNotFound
from moc.gateway.http.respond import json, services
from moc.gateway.views import device_view
from moc.version import __version__


async def health(request: Request) -> Response:
    s = services(request)
    status = "draining" if s.draining else "ok"
    return json(
        {
            "status": status,
            "version": __version__,
            "uptime_s": round(s.clock.now() - s.started_at, 3),
            "devices": len(s.devices),
            "leases": sum(s.leases.counts_by_device().values()),
            "waiting": s.leases.waiter_count(),
            "cluster": "off" if s.cluster is None else "ok" if s.cluster.ok else "degraded",
        },
        503 if s.draining else 200,
    )


async def metrics(request: Request) -> Response:
    return Response(services(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def openapi_document(request: Request) -> Response:
    """Built once with the app (:mod:`moc.gateway.http.openapi`)."""
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json")


async def list_devices(request: Request) -> Response:
    s = services(request)
    return json({"devices": [device_view(d, s.ledger.view(d.id)) for d in s.devices]})


async def get_device(request: Request) -> Response:
    s = services(request)
    device_id = request.path_params["device_id"]
    info = s.device(device_id)
    if info is None:
        raise DeviceNotFound(f"no device {device_id!r}", device=device_id)
    return json(device_view(info, s.ledger.view(device_id)))


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi_document, methods=["GET"]),
    Route("/v1/devices", list_devices, methods=["GET"]),
    Route("/v1/devices/{device_id}", get_device, methods=["GET"]),
]
