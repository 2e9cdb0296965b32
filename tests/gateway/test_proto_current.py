"""The committed gRPC modules match what modelops.proto generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ["modelops_pb2.py", "modelops_pb2.pyi", "modelops_pb2_grpc.py", "modelops_pb2_grpc.pyi"]


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "moc" / "gateway" / "grpc" / name).read_text()
        committed = (ROOT / "src" / "moc" / "gateway" / "grpc" / name).read_text()
        assert fresh == committed, f"{name} is stale: run python scripts/gen_proto.py"
