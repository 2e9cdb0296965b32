import os
import subprocess
import sys

import psutil

from moc.devices.host import HostProbe, default_host_size, process_tree_rss

GIB = 1024**3


def test_default_host_size_is_half_the_ram_in_whole_mib() -> None:
    size = default_host_size()
    assert size % (1024 * 1024) == 0
    assert abs(size - psutil.virtual_memory().total / 2) < 1024 * 1024


def test_reading_measures_asked_pids_including_children() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; b = bytearray(64 * 1024 * 1024); time.sleep(30)"]
    )
    try:
        probe = HostProbe([("host", 2 * GIB)])
        deadline = 50
        while deadline and (process_tree_rss(child.pid) or 0) < 64 * 1024 * 1024:
            import time

            time.sleep(0.1)
            deadline -= 1
        (reading,) = probe.read({os.getpid(), 999_999_999})
        me = reading.process_usage[os.getpid()]
        assert me >= 64 * 1024 * 1024  # the child's bytearray counts for its parent
        assert 999_999_999 not in reading.process_usage
    finally:
        child.kill()
        child.wait()


def test_used_is_what_the_machine_cannot_offer_of_the_device() -> None:
    available = psutil.virtual_memory().available
    small, huge = HostProbe([("small", 1024), ("huge", available * 4)]).read(set())
    assert small.used == 0  # the machine has far more than 1 KiB available
    assert huge.used >= available * 2  # most of a device 4× the available RAM is unavailable
