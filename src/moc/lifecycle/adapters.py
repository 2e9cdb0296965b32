"""Registry adapters with their base models: which a runtime starts with, a
request's adapter made ready before its base is held, and one registered
while its base runs loaded into it (vLLM) or the base restarted with it once
idle (llama.cpp).

Part of the loader: the same slots, written on the event loop only. Every
adapter is verified (off the loop) before a runtime reads it, and its bytes
are held with its base's reservation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from moc.artifacts.adapters import check_base, has
from moc.backends.state import HOLDS_MEMORY, State
from moc.errors import BackendUnavailable, MocError, ModelFileInvalid
from moc.lifecycle.slot import Slot
from moc.lifecycle.table import ModelTable
from moc.models.served import ServedAdapter
from moc.telemetry.logs import event

log = logging.getLogger(__name__)


class AdapterLoading:
    def __init__(
        self,
        table: ModelTable,
        unload: Callable[[str, str], Awaitable[bool]],
        release: Callable[[str], None],
    ) -> None:
        self._table = table
        self._unload = unload  # the loader's: stop a model's runtime
        self._release = release  # the loader's: a hold ends

    async def start_with(self, slot: Slot) -> int:
        """Every registry adapter of the model its runtime can serve, verified,
        started with it; the bytes they add. One that does not verify is left
        out, and a request naming it is refused with the reason (see
        ready)."""
        catalog = self._table.adapters
        runtime = slot.runtime
        if catalog is None or not runtime.adapter_files:
            return 0
        served, lora = [], []
        for adapter in catalog.for_base(slot.spec.name, runtime.adapter_files):
            try:
                ready = await catalog.verified(adapter)
                # one for another architecture would stop the base from starting
                files = {f: ready.folder / f for f in runtime.adapter_files}
                await asyncio.to_thread(check_base, files, slot.spec)
                served.append(ready)
            except MocError as exc:
                event(log, logging.WARNING, "adapter left out", model=slot.spec.name,
                      adapter=adapter.ref, error=exc.message)  # fmt: skip
                continue
            lora.append((adapter.name, adapter.digest))
        if tuple(lora) != slot.lora:
            base = self._table.catalog.spec(slot.spec.name)  # as configured, without adapters
            verified = base if slot.spec.artifact is None else slot.spec  # keep its verified path
            slot.spec = runtime.with_adapters(
                verified.model_copy(update={"args": base.args}), served
            )
            slot.lora = tuple(lora)
            if slot.supervisor is not None and slot.state not in HOLDS_MEMORY:
                slot.supervisor = None  # a supervisor starts the spec it was made with
        return sum(a.nbytes for a in served)

    async def ready(self, name: str, served: str) -> tuple[str, str] | None:
        """The registry adapter a request names, verified before anything is
        reserved for it (once: a runtime serving it verified it when it started,
        and the request goes on at once). A runtime started before it was registered (or before
        its latest version) takes it while it runs where it can (vLLM), its
        bytes added to the model's; otherwise it is started again with it once
        idle."""
        catalog = self._table.adapters
        adapter = catalog.lookup(served) if catalog is not None else None
        if catalog is None or adapter is None:
            return None  # an adapter of the configuration: its runtime knows it by name
        slot = self._table.slot(name)
        if not has(adapter, slot.runtime.adapter_files):
            raise ModelFileInvalid(
                f"adapter {adapter.name} has none of the files model {name}'s runtime loads "
                f"({', '.join(sorted(slot.runtime.adapter_files)) or 'it serves no adapters'})",
                model=name,
            )
        key = (adapter.name, adapter.digest)
        if key in slot.lora and slot.state in HOLDS_MEMORY:
            return key  # verified when its runtime started: nothing to do per request
        ready = await catalog.verified(adapter)  # raises artifact_tampered, …
        if key in slot.lora or slot.state not in HOLDS_MEMORY:
            return key  # the next load loads it
        if await self._hot_load(slot, ready, key):
            return key
        if slot.in_flight or slot.loading is not None:
            raise BackendUnavailable(
                f"model {name} is busy; adapter {adapter.name} (registered since it started) "
                "is loaded with it as soon as it is idle",
                model=name,
            )
        await self._unload(name, f"adapter {adapter.name} added")
        return key

    async def _hot_load(self, slot: Slot, ready: ServedAdapter, key: tuple[str, str]) -> bool:
        """``ready`` added to the running runtime of ``slot``, its bytes held
        first; False where the runtime cannot take it now (llama.cpp never can;
        a new version of a loaded name, or memory short, needs a new start)."""
        fresh = not any(n == ready.name for n, _ in slot.lora)
        if slot.state is not State.READY or slot.device is None or not fresh:
            return False
        if ready.name in slot.adding:  # another request is loading it: once is enough
            raise BackendUnavailable(
                f"adapter {ready.name} is being loaded into model {slot.spec.name}",
                model=slot.spec.name,
            )
        if not self._table.ledger.fits(slot.device, ready.nbytes):
            return False  # the next start makes room the usual way
        self._table.resize(slot, slot.reserved + ready.nbytes)
        slot.adding.add(ready.name)
        slot.in_flight += 1  # not evicted while the server takes it
        try:
            added = await slot.runtime.add_adapter(self._table.handle(slot), ready)
        except BaseException:
            self._table.resize(slot, slot.reserved - ready.nbytes)
            raise
        finally:
            slot.adding.discard(ready.name)
            self._release(slot.spec.name)
        if not added:
            self._table.resize(slot, slot.reserved - ready.nbytes)
            return False
        slot.lora = (*slot.lora, key)
        return True
