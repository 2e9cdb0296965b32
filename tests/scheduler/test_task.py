"""The scheduler task: a step that fails is logged with its traceback, and the
task keeps serving."""

from __future__ import annotations

import asyncio
import logging

import pytest

from moc.config import GatewayConfig
from moc.scheduler.task import Scheduler
from moc.scheduler.waiting import Limits, ModelFacts


class FailingClock:
    """A clock that breaks on demand: the first thing a step asks for is the time."""

    def __init__(self) -> None:
        self.broken = False

    def now(self) -> float:
        if self.broken:
            raise RuntimeError("the clock broke")
        return 1_700_000_000.0


def facts(model: str) -> ModelFacts:
    return ModelFacts(slots=1, warm=True, accepting=True, fits_cold=False)


async def failures(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    for _ in range(200):
        found = [r for r in caplog.records if r.getMessage() == "scheduler step failed"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.005)
    raise AssertionError(f"expected {count} logged failures, saw {caplog.records}")


async def test_a_failing_step_is_logged_at_error_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FailingClock()
    scheduler = Scheduler(Limits.of(GatewayConfig()), facts, clock)
    scheduler.start()
    clock.broken = True
    scheduler.poke()
    (record,) = await failures(caplog, 1)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)

    scheduler.poke()  # the task survived the failure and steps again
    await failures(caplog, 2)
    clock.broken = False
    await scheduler.close()
