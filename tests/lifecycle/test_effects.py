"""The loader driven against a runtime that records every effect: which
runtimes start and stop, and in what order, for each sequence of requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from moc.backends.context import RuntimeContext
from moc.backends.registry import Runtimes
from moc.backends.state import State
from moc.clock import SystemClock
from moc.config import Config
from moc.devices.probe import DeviceInfo
from moc.errors import ExceedsCapacity, InsufficientMemory, LoadFailed
from moc.leases.model import LeaseRequest
from moc.leases.service import LeaseService
from moc.leases.store import LeaseStore
from moc.ledger import Ledger
from moc.lifecycle.loader import Loader
from moc.lifecycle.records import RuntimeStore
from moc.lifecycle.table import ModelTable
from moc.lifecycle.usage import Usage
from moc.models.catalog import Catalog
from moc.models.store import SizeStore
from moc.store.sqlite import Database
from moc.telemetry.metrics import Metrics
from tests.doubles.runtime import RecordingRuntime

MIB = 1 << 20


class World:
    """A loader over host devices of 100 MiB each (90 MiB to hand out), or as given."""

    def __init__(
        self, tmp_path: Path, models: list[dict[str, Any]], devices: dict[str, int] | None = None
    ) -> None:
        specs = [{"path": str(tmp_path / f"{m['name']}.gguf"), **m} for m in models]
        config = Config(data_dir=tmp_path, models=specs)  # type: ignore[arg-type]
        self.db = Database(tmp_path / "moc.db")
        sizes = SizeStore(self.db)
        catalog = Catalog(list(config.models), sizes)
        self.runtime = RecordingRuntime(RuntimeContext.of(config, catalog))
        self.ledger = Ledger()
        infos = []
        for name, mib in (devices or {"host": 100}).items():
            self.ledger.add_device(name, "host", mib * MIB, 0.9)
            infos.append(DeviceInfo(id=name, kind="host", name=name, total=mib * MIB))
        clock, metrics = SystemClock(), Metrics()
        runtimes = Runtimes(self.runtime.ctx, [self.runtime])
        self.table = ModelTable(catalog, runtimes, self.ledger, infos, clock, metrics, _nothing)
        usage = Usage(self.table, sizes, clock, metrics, _unmeasured)
        self.leases = LeaseService(
            self.ledger, LeaseStore(self.db), clock, metrics, Config().leases
        )
        self.leases.on_freed(self.table.notify)
        self.loader = Loader(
            self.table,
            usage,
            RuntimeStore(self.db),
            clock,
            metrics,
            drain_timeout_s=5.0,
            yielders=self.leases,
        )

    @property
    def effects(self) -> list[str]:
        return self.runtime.effects

    async def close(self) -> None:
        await self.leases.close()
        await self.loader.close()
        await self.table.runtimes.close()
        self.db.close()


def _nothing() -> None:
    return None


async def _unmeasured(pid: int, device: str) -> int | None:
    return None


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[World] = []

    def make(
        *models: tuple[str, int], devices: dict[str, int] | None = None, **extra: dict[str, Any]
    ) -> World:
        specs = [{"name": n, "memory": f"{mib}MiB", **extra.get(n, {})} for n, mib in models]
        made.append(World(tmp_path, specs, devices))
        return made[-1]

    yield make
    for w in made:
        await w.close()


async def test_a_load_that_needs_room_stops_the_victim_before_it_starts(world: Any) -> None:
    w = world(("a", 50), ("b", 50))
    await w.loader.ensure_loaded("a")
    await w.loader.ensure_loaded("b")
    assert w.effects == ["start a", "ready a", "stop a", "stopped a", "start b", "ready b"]
    assert w.ledger.view("host").held == 50 * MIB


async def test_two_callers_share_one_load(world: Any) -> None:
    w = world(("a", 30))
    handles = await asyncio.gather(*(w.loader.ensure_loaded("a") for _ in range(5)))
    assert {h.name for h in handles} == {"a"}
    assert w.effects == ["start a", "ready a"]


async def test_a_model_that_can_never_fit_evicts_nothing(world: Any) -> None:
    w = world(("a", 30), ("huge", 95))
    await w.loader.ensure_loaded("a")
    with pytest.raises(ExceedsCapacity, match="memory reserves"):
        await w.loader.ensure_loaded("huge")
    assert w.effects == ["start a", "ready a"]
    assert w.table.view("a").state is State.READY
    assert w.table.view("huge").last_error is not None


async def test_the_idle_model_goes_not_the_busy_one(world: Any) -> None:
    w = world(("a", 30), ("b", 30), ("c", 40))
    await w.loader.hold("a")  # a request in flight on a
    await w.loader.ensure_loaded("b")
    await w.loader.ensure_loaded("c")
    assert w.effects[-4:] == ["stop b", "stopped b", "start c", "ready c"]
    assert "stop a" not in w.effects
    w.loader.release("a")


async def test_a_pinned_model_is_never_evicted(world: Any) -> None:
    w = world(("p", 60), ("b", 40), p={"pinned": True})
    await w.loader.ensure_loaded("p")
    with pytest.raises(InsufficientMemory, match="pinned"):
        await w.loader.ensure_loaded("b")
    assert w.effects == ["start p", "ready p"]


async def test_a_failed_start_is_shown_and_the_next_load_retries(world: Any) -> None:
    w = world(("a", 30))
    w.runtime.failing.add("a")
    with pytest.raises(LoadFailed, match="would not start"):
        await w.loader.ensure_loaded("a")
    view = w.table.view("a")
    assert view.state is State.FAILED
    assert view.last_error is not None
    assert "would not start" in view.last_error
    assert w.ledger.view("host").held == 0  # the memory came back
    w.runtime.failing.clear()
    await w.loader.ensure_loaded("a")
    assert w.effects == ["start a", "start a", "ready a"]
    assert w.table.view("a").last_error is None


async def test_a_crash_while_ready_restarts_the_runtime(world: Any) -> None:
    w = world(("a", 30))
    await w.loader.ensure_loaded("a")
    w.runtime.supervisors["a"].crash()
    sup = w.runtime.supervisors["a"]
    while sup.state is not State.READY or w.effects.count("ready a") < 2:
        await sup.changed()
    assert w.effects == ["start a", "ready a", "start a", "ready a"]


async def test_unload_stops_and_frees(world: Any) -> None:
    w = world(("a", 30))
    await w.loader.ensure_loaded("a")
    assert await w.loader.unload("a")
    assert not await w.loader.unload("a")  # not loaded any more
    assert w.effects == ["start a", "ready a", "stop a", "stopped a"]
    assert w.ledger.view("host").held == 0
    view = w.table.view("a")
    assert view.state is State.STOPPED
    assert view.device is None


async def test_a_model_loaded_again_starts_where_it_is_placed_now(world: Any) -> None:
    # small holds 45 MiB, large 90: a goes to small (the best fit), and after
    # pinned p takes small, to large. Its supervisor is the same one.
    w = world(("a", 30), ("p", 30), devices={"small": 50, "large": 100}, p={"pinned": True})
    await w.loader.ensure_loaded("a")
    await w.loader.unload("a")
    await w.loader.ensure_loaded("p")
    await w.loader.ensure_loaded("a")
    assert w.runtime.devices == ["a on small", "p on small", "a on large"]
    assert w.table.view("a").device == "large"


# --- learning jobs and other yieldable leases ---------------------------------------
async def test_a_load_asks_a_yieldable_lease_to_let_go_and_starts_after_it_has(
    world: Any,
) -> None:
    w = world(("a", 50))
    w.leases.start()
    job = await w.leases.acquire(
        LeaseRequest(bytes=60 * MIB, ttl_s=60, priority=20, yield_s=5.0, holder="learning:x")
    )
    events = w.leases.watch(job.id)

    async def holder() -> float:
        assert (await events.get())["event"] == "yield"
        await asyncio.sleep(0.2)  # a checkpoint
        w.leases.release(job.id, None)
        return asyncio.get_running_loop().time()

    let_go = asyncio.create_task(holder())
    await w.loader.ensure_loaded("a")
    assert w.effects == ["start a", "ready a"]
    assert let_go.done()
    # what it freed went to the load, and the job's new request waits behind it
    again = asyncio.create_task(
        w.leases.acquire(LeaseRequest(bytes=60 * MIB, ttl_s=60, priority=20, wait_s=0.2))
    )
    with pytest.raises(InsufficientMemory):
        await again


async def test_a_lease_that_ranks_above_loads_is_not_asked(world: Any) -> None:
    w = world(("a", 50))
    w.leases.start()
    await w.leases.acquire(LeaseRequest(bytes=60 * MIB, ttl_s=60, priority=80, yield_s=5.0))
    with pytest.raises(InsufficientMemory, match="leases and other processes hold the rest"):
        await w.loader.ensure_loaded("a")
    assert w.effects == []


async def test_a_holder_that_does_not_let_go_is_revoked_and_the_load_goes_on(
    world: Any,
) -> None:
    w = world(("a", 50))
    w.leases.start()
    job = await w.leases.acquire(LeaseRequest(bytes=60 * MIB, ttl_s=60, priority=20, yield_s=0.3))
    await w.loader.ensure_loaded("a")
    assert w.effects == ["start a", "ready a"]
    assert w.leases.live() == []
    assert job.id not in {lease.id for lease in w.leases.live()}
