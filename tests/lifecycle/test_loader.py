"""The lifecycle in-process, with real runtimes: what only a request in
flight can show (the gateway holds models through ``hold``/``release``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from moc.backends.state import State
from moc.clock import SystemClock
from moc.config import Config
from moc.daemon import build_models
from moc.devices.host import HostProbe
from moc.devices.probe import DeviceInfo, DeviceProbe
from moc.errors import ModelNotFound
from moc.leases.service import LeaseService
from moc.leases.store import LeaseStore
from moc.ledger import Ledger, attribute
from moc.lifecycle.build import Lifecycle
from moc.store.sqlite import Database
from moc.telemetry.metrics import Metrics
from tests.conftest import free_port
from tests.doubles.ollama import SIZES, SMALL, FakeOllama

MIB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("no_stray_runtimes")


@contextlib.asynccontextmanager
async def held(lifecycle: Lifecycle, name: str) -> AsyncIterator[None]:
    """The model held for the length of a block, as a request in flight holds it."""
    await lifecycle.loader.hold(name)
    try:
        yield
    finally:
        lifecycle.loader.release(name)


@pytest.fixture
async def lifecycle_for(tmp_path: Path, tiny_models: dict[str, Path]) -> AsyncIterator[Any]:
    made: list[tuple[Lifecycle, Database]] = []

    def make(models: list[dict[str, Any]], budget_mib: int = 100) -> tuple[Lifecycle, Ledger]:
        specs = [
            m
            if m.get("backend") == "ollama"
            else {"ctx": 512, "path": str(tiny_models[m["name"]]), **m}
            for m in models
        ]
        config = Config(data_dir=tmp_path, models=specs)  # type: ignore[arg-type]

        ledger = Ledger()
        total = budget_mib * MIB
        ledger.add_device("host", "host", total, 0.9)
        info = DeviceInfo(id="host", kind="host", name="host memory", total=total)
        db = Database(tmp_path / f"moc{len(made)}.db")
        metrics = Metrics()
        leases = LeaseService(ledger, LeaseStore(db), SystemClock(), metrics, config.leases)
        probes: list[DeviceProbe] = [HostProbe([("host", total)])]
        lifecycle = build_models(config, ledger, [info], probes, db, SystemClock(), metrics, leases)
        lifecycle.start()
        made.append((lifecycle, db))
        return lifecycle, ledger

    yield make
    for lifecycle, db in made:
        await lifecycle.close()
        db.close()


async def test_a_model_in_use_is_not_evicted_an_idle_one_is(lifecycle_for: Any) -> None:
    lifecycle, _ = lifecycle_for(
        [{"name": n, "memory": f"{m}MiB"} for n, m in (("a", 30), ("b", 35), ("c", 40))]
    )
    async with held(lifecycle, "a"):  # a is older, but busy
        await lifecycle.loader.ensure_loaded("b")
        await asyncio.sleep(0.5)
        await lifecycle.loader.ensure_loaded("c")
        states = {s.spec.name: s.state for s in lifecycle.table.views()}
        assert states == {"a": State.READY, "b": State.STOPPED, "c": State.READY}


async def test_waits_for_requests_to_drain_only_when_nothing_else_frees_room(
    lifecycle_for: Any,
) -> None:
    lifecycle, ledger = lifecycle_for(
        [{"name": "a", "memory": "50MiB"}, {"name": "b", "memory": "50MiB"}]
    )
    async with held(lifecycle, "a"):
        loading = asyncio.create_task(lifecycle.loader.ensure_loaded("b"))
        await asyncio.sleep(0.5)
        assert not loading.done()  # a is busy; b waits instead of failing
        assert lifecycle.table.view("a").state is State.READY
    handle = await asyncio.wait_for(loading, 30)
    assert handle.name == "b"
    assert lifecycle.table.view("a").state is State.STOPPED
    assert ledger.view("host").held == 50 * MIB


async def test_two_loads_waiting_for_one_drain_do_not_wake_each_other(
    lifecycle_for: Any,
) -> None:
    # Each time a waiting load marks its victims draining it wakes every
    # waiting load; two loads waiting on the same busy model used to re-mark
    # and so wake each other without end, a busy loop on the event loop.
    lifecycle, _ = lifecycle_for([{"name": n, "memory": "50MiB"} for n in ("a", "b", "c")])
    changes = 0

    def count() -> None:
        nonlocal changes
        changes += 1

    lifecycle.table.on_change(count)
    async with held(lifecycle, "a"):
        loads = [asyncio.create_task(lifecycle.loader.ensure_loaded(n)) for n in ("b", "c")]
        await asyncio.sleep(0.2)
        changes = 0
        await asyncio.sleep(0.5)
        assert not any(t.done() for t in loads)  # both wait for a to drain
        assert lifecycle.table.slot("a").draining
        assert changes < 5, f"{changes} wake-ups in 0.5 s while nothing changed"
    handles = await asyncio.wait_for(asyncio.gather(*loads), 30)
    assert [h.name for h in handles] == ["b", "c"]


async def test_a_ready_model_is_handed_out_while_another_loads(lifecycle_for: Any) -> None:
    lifecycle, _ = lifecycle_for(
        [{"name": "a", "memory": "30MiB"}, {"name": "b", "memory": "30MiB"}]
    )
    await lifecycle.loader.ensure_loaded("a")
    other = asyncio.create_task(lifecycle.loader.ensure_loaded("b"))
    await asyncio.sleep(0)  # b's load has begun
    handle = await lifecycle.loader.ensure_loaded("a")
    assert handle.name == "a"
    assert not other.done()  # a was answered while b was still loading
    assert lifecycle.table.view("b").state in (State.STOPPED, State.STARTING)
    await other


async def test_unknown_model_is_refused(lifecycle_for: Any) -> None:
    lifecycle, _ = lifecycle_for([{"name": "a"}])
    with pytest.raises(ModelNotFound, match="known: a"):
        await lifecycle.loader.ensure_loaded("zzz")


async def test_a_model_in_ollama_is_claimed_without_a_process(lifecycle_for: Any) -> None:
    """Its reservation is then counted among the memory the device shows in
    use, not held and observed both (see ``ledger.attribute``)."""
    ollama = FakeOllama(free_port()).start()
    try:
        spec = {"name": "q", "backend": "ollama", "url": ollama.url, "served_name": SMALL}
        lifecycle, _ = lifecycle_for([spec, {"name": "a", "memory": "20MiB"}], budget_mib=2048)
        await lifecycle.loader.ensure_loaded("q")
        await lifecycle.loader.ensure_loaded("a")
        claims = {c.entry_id: c for c in lifecycle.table.claims()}
        assert claims["model:q"].pid is None
        assert claims["model:q"].bytes == SIZES[SMALL]
        assert claims["model:a"].pid is not None
        share = attribute(1 << 30, {}, [claims["model:q"]])
        assert share.external == (1 << 30) - SIZES[SMALL]
    finally:
        ollama.stop()
