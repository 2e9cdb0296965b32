"""N adapters on one base model against N separate models: memory and
requests per second, side by side in one run.

- **adapters**: one ``moc serve`` with ``tiny-base`` under llama.cpp and N
  LoRA adapters of it in the registry (random rank-8 adapters of q and v, in
  PEFT's format with their llama.cpp form beside them): one runtime holds the
  base and every adapter, and each request applies the one it names.
- **models**: one ``moc serve`` with N copies of the same base, each its own
  model (the way to serve N fine-tunes without adapters: N merged models),
  with room for all of them, so nothing is swapped.

Each path is warmed up (every name asked once), then ``--clients`` clients
send chat requests round-robin over the N names for ``--seconds``, each
asking for ``--tokens`` tokens. Reported: what the ledger holds, what the
runtimes were measured using (their RSS: the weights are tiny, so this is
mostly each runtime's own overhead, which N models pay N times), and
requests per second.

    python benchmarks/adapters.py [--n 4] [--seconds 10] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from moc.artifacts import lora_gguf  # noqa: E402
from moc.learning import hf_to_gguf  # noqa: E402
from moc.learning.tiny_hf import HIDDEN, LAYERS, safetensors_bytes, write_tiny_base  # noqa: E402
from moc.sdk.client import Client  # noqa: E402
from tests.conftest import MocProcess  # noqa: E402

RANK = 8
PEFT = "base_model.model.model.layers.{i}.self_attn.{m}.lora_{ab}.weight"


def random_adapter(folder: Path, seed: int, base_config: dict[str, Any]) -> Path:
    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(LAYERS):
        for m in ("q_proj", "v_proj"):
            a = rng.standard_normal((RANK, HIDDEN)).astype(np.float32) * 0.02
            b = rng.standard_normal((HIDDEN, RANK)).astype(np.float32) * 0.02
            tensors[PEFT.format(i=i, m=m, ab="A")] = a
            tensors[PEFT.format(i=i, m=m, ab="B")] = b
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(safetensors_bytes(tensors))
    config = {"peft_type": "LORA", "r": RANK, "lora_alpha": 2 * RANK, "bias": "none",
              "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    lora_gguf.convert(folder, folder / "adapter.gguf", base_config=base_config)
    return folder


def config_for(models: list[dict[str, Any]], device: str) -> dict[str, Any]:
    return {
        "devices": {"nvml": "off", "host": [{"id": device, "size": "8GiB"}]},
        "runtimes": {"demo_models": False},
        "models": models,
    }


async def drive(url: str, names: list[str], seconds: float, clients: int, tokens: int) -> float:
    done = 0
    deadline = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            i = k
            while time.monotonic() < deadline:
                body = {"model": names[i % len(names)], "max_tokens": tokens, "temperature": 0,
                        "messages": [{"role": "user", "content": "Say hello."}]}  # fmt: skip
                answer = await http.post("/v1/chat/completions", json=body)
                assert answer.status_code == 200, answer.text
                done += 1
                i += 1

    t0 = time.monotonic()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return done / (time.monotonic() - t0)


def memory(url: str) -> tuple[int, int]:
    """(held by the ledger, measured use of the runtimes), bytes."""
    models = httpx.get(f"{url}/v1/models").json()["data"]
    held = sum(m["reserved_bytes"] or 0 for m in models)
    used = sum(m["measured_bytes"] or 0 for m in models)
    return held, used


def measure(moc: MocProcess, names: list[str], args: argparse.Namespace) -> dict[str, float]:
    try:
        for name in names:  # warm-up: every runtime started, every adapter asked once
            asyncio.run(drive(moc.url, [name], 0.01, 1, args.tokens))
        time.sleep(2.5)  # one more pass of the monitor: measured use in place
        rps = asyncio.run(drive(moc.url, names, args.seconds, args.clients, args.tokens))
        held, used = memory(moc.url)
    finally:
        moc.stop()
    return {"rps": rps, "held_mib": held / 2**20, "used_mib": used / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moc-adapters-"))
    try:
        base = write_tiny_base(work / "tiny-base")
        base_config = json.loads((base / "config.json").read_text())
        gguf = hf_to_gguf.convert(base, work / "tiny-base.gguf")
        spec = {"path": str(gguf), "ctx": 512, "keep_alive": -1}

        with_adapters = MocProcess(
            work / "a", config_for([{"name": "tiny-base", **spec}], "adapters")
        ).start(timeout=60)
        names = [f"adapter-{k}" for k in range(args.n)]
        with Client(with_adapters.url, timeout=120) as client:
            for k, name in enumerate(names):
                folder = random_adapter(work / name, k, base_config)
                client.add_artifact(name, folder, kind="adapter", base="tiny-base")
        a = measure(with_adapters, names, args)

        copies = [{"name": f"model-{k}", **spec} for k in range(args.n)]
        separate = MocProcess(work / "m", config_for(copies, "models")).start(timeout=60)
        m = measure(separate, [c["name"] for c in copies], args)

        print(f"{args.n} fine-tunes, {args.clients} clients, {args.tokens} tokens a request")
        print("| | one base + adapters | separate models | adapters / models |")
        print("| --- | --- | --- | --- |")
        for label, key, unit in (("requests/s", "rps", ""), ("ledger holds", "held_mib", " MiB"),
                                 ("runtimes use (RSS)", "used_mib", " MiB")):  # fmt: skip
            ratio = a[key] / m[key] if m[key] else float("nan")
            print(f"| {label} | {a[key]:.1f}{unit} | {m[key]:.1f}{unit} | {ratio:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
