"""Regenerate the gRPC code from src/moc/gateway/grpc/modelops.proto.

    python scripts/gen_proto.py [--out DIR]

The generated modules are committed, so installing moc needs no protoc;
tests/gateway/test_proto_current.py fails when they fall behind the .proto.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = "moc/gateway/grpc/modelops.proto"


def generate(out: Path) -> None:
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    # protoc finds the mypy plugins (protoc-gen-mypy…) on PATH, next to python.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    code = protoc.main(
        [
            "protoc",
            f"-I{ROOT / 'src'}",
            f"-I{include}",
            f"--python_out={out}",
            f"--mypy_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_grpc_out={out}",
            str(ROOT / "src" / PROTO),
        ]
    )
    if code != 0:
        sys.exit(f"protoc failed with exit code {code}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "src")
    generate(parser.parse_args().out)
