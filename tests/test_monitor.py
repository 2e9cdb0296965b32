"""The device monitor turns readings into ledger figures and usage reports."""

from __future__ import annotations

from collections.abc import Set

from moc.devices.probe import DeviceInfo, DeviceReading
from moc.ledger import Claim, Ledger
from moc.monitor import DeviceMonitor
from moc.telemetry.metrics import Metrics

GIB = 1024**3


class ScriptedProbe:
    """A DeviceProbe that returns the readings a test gives it and records
    which pids it was asked about."""

    def __init__(self) -> None:
        self.next: list[DeviceReading] = []
        self.asked: list[set[int]] = []
        self.closed = False

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo("gpu0", "nvidia", "fake", 10 * GIB)]

    def read(self, pids: Set[int]) -> list[DeviceReading]:
        self.asked.append(set(pids))
        return self.next

    def close(self) -> None:
        self.closed = True


async def test_monitor_applies_external_use_and_reports_entry_usage() -> None:
    ledger = Ledger()
    ledger.add_device("gpu0", "nvidia", 10 * GIB, 0.9)
    probe = ScriptedProbe()
    metrics = Metrics()
    claims = [Claim("lease-a", "gpu0", 4242, 2 * GIB)]
    reported: list[dict[str, int]] = []
    woke: list[bool] = []
    monitor = DeviceMonitor(
        [probe],
        ledger,
        metrics,
        1.0,
        claims=[lambda: claims],
        usage_sinks=[reported.append],
        on_more_free=lambda: woke.append(True),
    )

    probe.next = [DeviceReading("gpu0", used=5 * GIB, process_usage={4242: 3 * GIB, 7: GIB})]
    await monitor.observe_once()
    assert probe.asked == [{4242}]
    assert ledger.view("gpu0").external == 2 * GIB
    assert reported[-1] == {"lease-a": 3 * GIB}
    assert woke == []

    probe.next = [DeviceReading("gpu0", error="GPU is lost")]
    await monitor.observe_once()
    assert ledger.view("gpu0").external == 2 * GIB  # last figure stands
    assert (
        metrics.registry.get_sample_value("moc_device_read_errors_total", {"device": "gpu0"}) == 1
    )

    probe.next = [DeviceReading("gpu0", used=3 * GIB, process_usage={4242: 3 * GIB})]
    await monitor.observe_once()
    assert ledger.view("gpu0").external == 0
    assert woke == [True]  # free memory grew: waiters get another look
    await monitor.close()
    assert probe.closed
