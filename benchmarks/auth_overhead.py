"""What authentication and per-key limits add to a request, side by side in one run.

1. In process: moc's HTTP app called directly (no sockets) for ``GET
   /v1/devices``, with auth off and with auth on for an API key, a key with
   requests- and tokens-per-minute limits, ``MOC_ADMIN_KEY``, and a JWT
   (HS256, cached after its first check). Each case runs in turns with the
   others, ``--rounds`` times; the figure is the median of its rounds' p50s.
   The difference from "off" is what auth costs moc per request.
2. Over HTTP: two ``moc serve`` daemons, auth off and on, one client with
   keep-alive, alternating short runs; p50 and p99 of each.

    python benchmarks/auth_overhead.py [--calls 20000] [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from lease_ops import pct, start_moc  # noqa: E402

from moc.config import Config  # noqa: E402
from moc.daemon import build_services  # noqa: E402
from moc.devices.host import HostProbe  # noqa: E402
from moc.gateway.http.app import build_app  # noqa: E402
from moc.store.sqlite import Database  # noqa: E402

ADMIN = "bench-admin-key-0123456789abcdef0123456789"
SECRET = "bench-jwt-secret-0123456789abcdef0123456789"


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"moc"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8008),
    }


async def _call(app: Any, scope: dict[str, Any]) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(scope), receive, send)
    return status


async def _timed(app: Any, scope: dict[str, Any], calls: int) -> list[float]:
    status = await _call(app, scope)
    assert status == 200, status
    took = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await _call(app, scope)
        took.append(time.perf_counter() - t0)
    return took


def _services(tmp: Path, auth: bool) -> Any:
    config = Config(
        data_dir=tmp,
        runtimes={"demo_models": False},  # type: ignore[arg-type]
        auth={"enabled": auth, "jwt": {"secret": SECRET}},  # type: ignore[arg-type]
    )
    db = Database(tmp / "moc.db")
    return build_services(config, db, [HostProbe([("host", 1 << 30)])])


async def in_process(calls: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as off_dir, tempfile.TemporaryDirectory() as on_dir:
        off = _services(Path(off_dir), auth=False)
        os.environ["MOC_ADMIN_KEY"] = ADMIN  # read (and taken) by the daemon that starts next
        on = _services(Path(on_dir), auth=True)
        from moc.auth.principal import Limits
        from moc.auth.roles import Role

        _, plain = on.auth.keys.create("bench", Role.VIEWER, None, Limits(), None)
        limited = Limits(requests_per_minute=10**7, tokens_per_minute=10**9)
        _, metered = on.auth.keys.create("metered", Role.VIEWER, None, limited, None)
        token = jwt.encode(
            {"sub": "bench", "role": "viewer", "exp": int(time.time()) + 3600}, SECRET, "HS256"
        )
        off_app, on_app = build_app(off), build_app(on)
        path = "/v1/devices"

        def auth(value: str) -> list[tuple[bytes, bytes]]:
            return [(b"authorization", f"Bearer {value}".encode())]

        cases = {
            "auth off": (off_app, _scope(path, [])),
            "API key": (on_app, _scope(path, auth(plain))),
            "API key with rpm+tpm limits": (on_app, _scope(path, auth(metered))),
            "MOC_ADMIN_KEY": (on_app, _scope(path, auth(ADMIN))),
            "JWT (HS256, cached)": (on_app, _scope(path, auth(token))),
        }
        p50s: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, (app, scope) in cases.items():
                took = await _timed(app, scope, calls)
                p50s[name].append(statistics.median(took) * 1e6)
        for services in (off, on):
            await services.lifecycle.close()
    return {name: statistics.median(values) for name, values in p50s.items()}


async def _one_client(url: str, headers: dict[str, str], seconds: float) -> list[float]:
    import aiohttp

    took: list[float] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            async with session.get(f"{url}/v1/devices") as r:
                await r.read()
                assert r.status == 200, r.status
            took.append(time.perf_counter() - t0)
    return took


def over_http(seconds: float, rounds: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MOC_ADMIN_KEY"] = ADMIN
        off, off_port, _ = start_moc(Path(tmp) / "off", device="plain")
        on, on_port, _ = start_moc(Path(tmp) / "on", "auth: {enabled: true}\n", device="guarded")
        try:
            key_headers = {"authorization": f"Bearer {ADMIN}"}
            import httpx

            made = httpx.post(
                f"http://127.0.0.1:{on_port}/v1/keys",
                json={"name": "bench", "role": "viewer"},
                headers=key_headers,
            ).json()["key"]
            targets = {
                "auth off": (f"http://127.0.0.1:{off_port}", {}),
                "auth on, API key": (
                    f"http://127.0.0.1:{on_port}",
                    {"authorization": f"Bearer {made}"},
                ),
            }
            p50: dict[str, list[float]] = {k: [] for k in targets}
            p99: dict[str, list[float]] = {k: [] for k in targets}
            for _ in range(rounds):
                for name, (url, headers) in targets.items():
                    took = asyncio.run(_one_client(url, headers, seconds))
                    p50[name].append(pct(took, 0.5))
                    p99[name].append(pct(took, 0.99))
            return {k: (statistics.median(p50[k]), statistics.median(p99[k])) for k in targets}
        finally:
            for proc in (off, on):
                proc.terminate()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per case and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per HTTP run")
    args = parser.parse_args()
    found = asyncio.run(in_process(args.calls, args.rounds))
    base = found["auth off"]
    print(f"in process, GET /v1/devices, p50 of {args.calls} calls, median of {args.rounds} rounds")
    print(f"{'case':32} {'p50 us':>8} {'added us':>9}")
    for name, value in found.items():
        print(f"{name:32} {value:8.1f} {value - base:9.1f}")
    http = over_http(args.seconds, args.rounds)
    print(f"\nover HTTP, 1 client, keep-alive, {args.rounds} alternating runs of {args.seconds:g}s")
    print(f"{'case':20} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (p50, p99) in http.items():
        print(f"{name:20} {p50:8.3f} {p99:8.3f}")
    added = http["auth on, API key"][0] - http["auth off"][0]
    print(f"added p50: {added * 1000:.1f} us")


if __name__ == "__main__":
    main()
