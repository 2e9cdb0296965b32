from __future__ import annotations

import pytest

from moc.backends.oom import oom_lines


@pytest.mark.parametrize(
    "line",
    [
        "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4096.00 MiB on device 0: "
        "cudaMalloc failed: out of memory",
        "CUDA error: out of memory",
        "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 123",
        "terminate called after throwing an instance of 'std::bad_alloc'",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB",
        "llama_init_from_model: failed to allocate compute buffers... Cannot allocate memory",
    ],
)
def test_allocation_failures_are_recognised(line: str) -> None:
    assert oom_lines(["srv init: ok", line, "bye"]) == [line]


def test_ordinary_lines_are_not() -> None:
    lines = [
        "llama_kv_cache: size = 1.00 MiB (2048 cells, 2 layers, 1/1 seqs)",
        "srv  init: model loaded",
        "memory usage: 12 MiB",
    ]
    assert oom_lines(lines) == []
