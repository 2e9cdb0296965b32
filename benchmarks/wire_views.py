"""The lease views on the hot path, timed in process (no server, no sockets).

- ``lease_view``: one lease as every lease route answers it;
- ``GET /v1/leases`` body: 100 views and their JSON, as ``list_leases`` builds it;
- acquire + release through the ASGI app (``httpx.ASGITransport``), moc's own
  cost of a lease round trip without the network.

    python benchmarks/wire_views.py [--rounds 5]

Each figure is the best of ``--rounds`` timeit runs, per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import timeit
from pathlib import Path

import httpx
import orjson

from moc.config import Config
from moc.daemon import build_services
from moc.devices.host import HostProbe
from moc.gateway.http.app import build_app
from moc.gateway.views import lease_view
from moc.leases.model import Lease
from moc.store.sqlite import Database


def _lease(i: int) -> Lease:
    now = time.time()
    return Lease(
        id=f"{i:016x}",
        device="gpu0",
        bytes=8 << 30,
        holder="trainer",
        pid=4242,
        priority=50,
        preemptible=False,
        fencing_token=i,
        ttl_s=30.0,
        created_at=now,
        expires_at=now + 30,
    )


def _best(stmt: object, number: int, rounds: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=rounds)) / number  # type: ignore[arg-type]


async def _acquire_release(rounds: int, number: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(data_dir=Path(tmp), runtimes={"demo_models": False})  # type: ignore[arg-type]
        db = Database(Path(tmp) / "moc.db")
        services = build_services(config, db, [HostProbe([("host", 1 << 40)])])
        transport = httpx.ASGITransport(app=build_app(services))
        best = float("inf")
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://moc") as client:
                for _ in range(rounds):
                    start = time.perf_counter()
                    for _ in range(number):
                        lease = (await client.post("/v1/leases", json={"mb": 1})).json()
                        await client.delete(f"/v1/leases/{lease['id']}")
                    best = min(best, (time.perf_counter() - start) / number)
        finally:
            # The lifecycle owns the runtimes; a tree from before it was split
            # (run with PYTHONPATH to compare) closed them through its models.
            owner = getattr(services, "lifecycle", None) or services.models
            await owner.close()
            db.close()
        return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lease, now = _lease(1), time.time()
    leases = [_lease(i) for i in range(100)]
    one = _best(lambda: lease_view(lease, now, 7 << 30, False), 100_000, args.rounds)
    many = _best(
        lambda: orjson.dumps(
            {"leases": [lease_view(x, now, None, False) for x in leases], "waiting": 0}
        ),
        2_000,
        args.rounds,
    )
    cycle = asyncio.run(_acquire_release(args.rounds, 200))
    print(f"lease_view                      {one * 1e6:8.3f} µs")
    print(f"GET /v1/leases body (100 views) {many * 1e6:8.1f} µs")
    print(f"acquire + release (ASGI)        {cycle * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
