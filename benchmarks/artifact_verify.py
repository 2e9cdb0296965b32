"""What verification costs: hashing throughput, and a verified load against an
unverified one, cold and with a remembered digest.

Side by side, in one run:

- **hashing**: the same file hashed by ``sha256sum``, by ``openssl dgst
  -sha256`` (the limit: one core reading and hashing with the CPU's SHA
  instructions) and by moc's verifier (``DigestMemory.sha256``, a fresh
  memory each time), best of ``--repeats``, in MB/s;
- **loads**: one ``moc serve`` with the same GGUF file declared twice, by
  ``path`` (unverified) and by ``artifact`` (verified before every load);
  each round loads and unloads each: the verified model's first load after a
  start of moc hashes every byte (cold: moc is restarted before each cold
  round, outside the timing), later loads find the digests remembered by
  file identity. The figure is the median of ``POST /v1/models/{name}/load``
  as the client sees it.

    python benchmarks/artifact_verify.py [--mb 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from moc.artifacts.digests import DigestMemory  # noqa: E402
from moc.models.tiny import TinySpec, write_tiny_gguf  # noqa: E402
from moc.sdk.client import Client  # noqa: E402
from tests.conftest import MocProcess  # noqa: E402

HIDDEN_BYTES_PER_FFN = 2 * 3 * 64 * 4  # two layers of gate, up and down, float32


def best(run: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def hashing(path: Path, repeats: int) -> dict[str, float]:
    mb = path.stat().st_size / 1e6

    def tool(*argv: str) -> float:
        run = [*argv, str(path)]
        return best(lambda: subprocess.run(run, check=True, capture_output=True), repeats)

    coreutils = tool("sha256sum")
    openssl = tool("openssl", "dgst", "-sha256") if shutil.which("openssl") else float("nan")
    ours = best(lambda: DigestMemory().sha256(path), repeats)
    return {"sha256sum": mb / coreutils, "openssl": mb / openssl, "moc": mb / ours}


def timed_load(http: httpx.Client, name: str) -> float:
    t0 = time.perf_counter()
    answer = http.post(f"/v1/models/{name}/load", timeout=600)
    took = time.perf_counter() - t0
    assert answer.status_code == 200, answer.text
    assert http.post(f"/v1/models/{name}/unload").status_code == 200
    return took


def loads(model: Path, work: Path, rounds: int) -> dict[str, float]:
    size = f"{model.stat().st_size * 2 // 2**20 + 64}MiB"
    config = {
        "devices": {"nvml": "off", "host": [{"id": "bench", "size": "4GiB"}]},
        "models": [
            {"name": "plain", "path": str(model), "ctx": 256, "memory": size},
            {"name": "verified", "artifact": "big", "ctx": 256, "memory": size},
        ],
    }
    moc = MocProcess(work / "data", config).start(timeout=60)
    try:
        with Client(moc.url, timeout=600) as client:
            client.add_artifact("big", model, kind="model")
        plain, cold, warm = [], [], []
        for i in range(rounds):
            moc.stop()
            moc.start(timeout=60)  # a new process: nothing remembered
            with httpx.Client(base_url=moc.url) as http:
                timed_load(http, "plain")  # warm-up: the file in the page cache for both
                cold.append(timed_load(http, "verified"))
                # then in turns, so that neither always goes first
                for name in ("plain", "verified") if i % 2 else ("verified", "plain"):
                    (plain if name == "plain" else warm).append(timed_load(http, name))
    finally:
        moc.stop()
    return {
        "plain_s": statistics.median(plain),
        "verified_cold_s": statistics.median(cold),
        "verified_remembered_s": statistics.median(warm),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=256, help="the model file's size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moc-verify-"))
    try:
        ffn = max(128, args.mb * 2**20 // HIDDEN_BYTES_PER_FFN)
        model = write_tiny_gguf(work / "big.gguf", TinySpec("big", ffn=ffn))
        mb = model.stat().st_size / 1e6
        h = hashing(model, args.repeats)
        print(f"file: {mb:.0f} MB")
        print("| hashing, MB/s | sha256sum | openssl dgst | moc | moc / fastest tool |")
        print("| --- | --- | --- | --- | --- |")
        fastest = max(h["sha256sum"], h["openssl"])
        print(f"| best of {args.repeats} | {h['sha256sum']:.0f} | {h['openssl']:.0f} "
              f"| {h['moc']:.0f} | {h['moc'] / fastest:.2f} |")  # fmt: skip
        found = loads(model, work, args.rounds)
        print()
        print(f"| load (median of {args.rounds}) | seconds | added by verification |")
        print("| --- | --- | --- |")
        base = found["plain_s"]
        print(f"| by path, unverified | {base:.3f} | - |")
        for label, key in (("by artifact, cold", "verified_cold_s"),
                           ("by artifact, remembered", "verified_remembered_s")):  # fmt: skip
            print(f"| {label} | {found[key]:.3f} | {found[key] - base:+.3f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
