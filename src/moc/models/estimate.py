"""How much memory a model will take once loaded. Pure arithmetic.

    weights   the tensors as stored in the file
    kv cache  layers × ctx × parallel × kv_heads × (key_dim + value_dim) × element size
    compute   llama.cpp's scratch buffers: logits for one batch plus activations
    runtime   the process itself: a CUDA context on a GPU, the interpreter and
              libraries on a host device (where RSS is what is measured)

llama.cpp keeps one KV cache of ``ctx × parallel`` cells shared by its slots
when started with ``--parallel`` and ``--ctx-size ctx × parallel``, which is
how moc starts it, so ``ctx`` in a model spec is the context *per request*.

The figure is a first guess. After a load moc measures the process and
remembers the measurement per (model file, ctx, parallel); see
:mod:`moc.models.learned`.
"""

from __future__ import annotations

from dataclasses import dataclass

from moc.models.gguf_facts import GgufFacts

MIB = 1024 * 1024
KV_ELEMENT_BYTES = 2  # f16, llama.cpp's default cache type
BATCH = 512  # llama.cpp's default logical batch
RUNTIME_BYTES = {"nvidia": 512 * MIB, "host": 64 * MIB}


@dataclass(frozen=True)
class Estimate:
    weights: int
    kv_cache: int
    compute: int
    runtime: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.runtime


def estimate(facts: GgufFacts, ctx: int, parallel: int, device_kind: str) -> Estimate:
    per_token = facts.layers * facts.kv_heads * (facts.key_dim + facts.value_dim)
    kv = per_token * ctx * parallel * KV_ELEMENT_BYTES
    logits = facts.vocab * BATCH * 4
    activations = BATCH * max(facts.embedding, 1) * 4 * 8
    return Estimate(
        weights=facts.weight_bytes,
        kv_cache=kv,
        compute=logits + activations,
        runtime=RUNTIME_BYTES.get(device_kind, RUNTIME_BYTES["host"]),
    )


def estimate_from_file(file_bytes: int, device_kind: str) -> Estimate:
    """A rough plan when only the model file's size is known (an Ollama model):
    the weights, and a quarter more for the KV cache and compute buffers at
    the server's default context. The first load's measurement replaces it."""
    return Estimate(
        weights=file_bytes,
        kv_cache=file_bytes // 8,
        compute=file_bytes // 8,
        runtime=RUNTIME_BYTES.get(device_kind, RUNTIME_BYTES["host"]),
    )
