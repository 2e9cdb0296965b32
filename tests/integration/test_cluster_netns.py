"""Three nodes in network namespaces of their own (``netns_cluster.py``), where
the machine lets an unprivileged user make them; skipped, loudly, where it
does not (the other cluster tests run the nodes on loopback)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cluster_support import redis_server_or_skip

pytestmark = pytest.mark.timeout(180)
DRIVER = Path(__file__).with_name("netns_cluster.py")


def namespaces_or_skip() -> None:
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"NETNS CLUSTER TEST SKIPPED: no {tool} on this machine")
    probe = subprocess.run(
        ["unshare", "-rnm", "--propagation", "private", "sh", "-c",
         "mount -t tmpfs none /run && mkdir -p /run/netns && ip netns add probe"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"NETNS CLUSTER TEST SKIPPED: namespaces not allowed here: {probe.stderr}")


def test_nodes_in_their_own_network_namespaces_find_their_address_and_route(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    redis_server_or_skip()
    namespaces_or_skip()
    run = subprocess.run(
        ["unshare", "-rnm", "--propagation", "private", sys.executable, str(DRIVER),
         str(tmp_path), str(tiny_models["b"])],
        capture_output=True, text=True, timeout=170, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.glob("n*.log")
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{logs}"
    found = json.loads(run.stdout.strip().splitlines()[-1])
    # Each node listens on 0.0.0.0 and advertises the address the others reach it at.
    assert found["urls"] == {
        "n1": "http://10.9.0.2:8008",
        "n2": "http://10.9.0.3:8008",
        "n3": "http://10.9.0.4:8008",
    }
    assert found["chat"] == [200, "n2"]
    assert found["n3_out_after_s"] < 10
