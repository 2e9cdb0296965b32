"""A bug inside a handler is answered with moc's error envelope and a
reference into the log, never a traceback on the wire."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from moc.config import Config
from moc.daemon import build_services
from moc.devices.host import HostProbe
from moc.gateway.http.app import build_app
from moc.store.sqlite import Database


async def test_unexpected_exception_becomes_a_500_envelope_with_a_log_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(data_dir=tmp_path, runtimes={"demo_models": False})  # type: ignore[arg-type]
    db = Database(tmp_path / "moc.db")
    services = build_services(config, db, [HostProbe([("host", 1 << 30)])])
    leases, lifecycle = services.leases, services.lifecycle

    def broken(lease_id: str) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(leases, "get", broken)
    transport = httpx.ASGITransport(app=build_app(services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://moc") as client:
            with caplog.at_level(logging.ERROR, logger="moc"):
                response = await client.get("/v1/leases/abc")
            still_serving = await client.get("/v1/leases")
    finally:
        await lifecycle.close()
        db.close()

    assert response.status_code == 500
    body = response.json()["error"]
    assert body["code"] == "internal"
    assert body["src"] == "moc"
    assert "secret internal detail" not in response.text
    ref = body["details"]["ref"]
    assert ref in body["message"]
    logged = [getattr(r, "fields", {}) for r in caplog.records]
    assert any(f.get("ref") == ref and "secret internal detail" in f["error"] for f in logged)
    assert still_serving.status_code == 200
