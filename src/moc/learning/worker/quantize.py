"""The ``quantize`` job's child: a f32/f16 GGUF model to Q8_0, Q4_0 or a K-quant.

Q8_0 and Q4_0 are written here in numpy by the ``gguf`` package (its Q8_0 is
bit-exact with ggml's); the K-quants are left to llama.cpp's ``llama-quantize``
where it is on PATH. Which tensor becomes which type is decided in
:mod:`quant_plan`. Then both models are loaded under llama.cpp and their top-1
token agreement measured (:mod:`agreement`); the output folder is published
(renamed into ``output_dir``) only after that, so a model that llama.cpp
cannot load is never registered.

Yielding: a quantize job has no state worth resuming (it takes seconds to
minutes and its output is one file), so SIGUSR1 discards the partial output
at the next tensor (or agreement request) and exits 75 with ``yielded`` at
step 0: the next start begins again. SIGTERM removes the partial output and
exits 143.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moc.errors import InvalidRequest
from moc.learning.worker.agreement import YieldRequested, top1_agreement
from moc.learning.worker.interrupts import Interrupts
from moc.learning.worker.protocol import EXIT_DONE, EXIT_FAILED, EXIT_YIELDED, JobFile, emit
from moc.learning.worker.quant_plan import (
    FILE_TYPE,
    NUMPY_TYPES,
    OUTPUT_HEAD,
    parse_params,
    tensor_type,
)

MODEL_FILE = "model.gguf"
SOURCE_TYPES = ("F32", "F16", "BF16")
# GGUF keys the writer sets itself, or that this job sets anew.
OWN_KEYS = ("general.architecture", "general.file_type", "general.quantization_version")


class QuantizeError(Exception):
    """A source this job cannot quantize; the message says why."""


def run(job: JobFile, job_dir: Path) -> int:
    """Quantize ``job.model`` into ``job.output_dir``/model.gguf; the exit code."""
    with Interrupts() as interrupts:
        try:
            params = parse_params(job.params, llama_quantize=shutil.which("llama-quantize"))
            source = _source(job.model)
        except InvalidRequest as exc:
            emit("failed", reason=str(exc))
            return EXIT_FAILED
        output_dir = Path(job.output_dir)
        staging = output_dir.with_name(f".{output_dir.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        target = staging / MODEL_FILE
        try:
            total = _tensor_count(source)
            emit("started", step=0, total=total, resumed=False)

            def on_tensor(done: int) -> None:
                emit("progress", step=done, total=total, loss=None, tokens_per_s=None)
                if interrupts.yield_requested:
                    raise YieldRequested

            if params.type in NUMPY_TYPES:
                write_quantized(source, target, params.type, on_tensor)
            else:
                _llama_quantize(source, target, params.type, on_tensor)
            agreement = top1_agreement(
                source, target, should_yield=lambda: interrupts.yield_requested
            )
            _publish(staging, output_dir)
        except YieldRequested:
            emit("yielded", step=0)
            return EXIT_YIELDED
        except (QuantizeError, RuntimeError, OSError, ValueError) as exc:
            emit("failed", reason=f"quantize {source.name} to {params.type}: {exc}")
            return EXIT_FAILED
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        path = output_dir / MODEL_FILE
        emit(
            "done",
            output={
                "path": str(path),
                "type": params.type,
                "bytes": path.stat().st_size,
                "source_bytes": source.stat().st_size,
                "agreement": round(agreement.fraction, 4),
                "prompts": agreement.prompts,
                "positions": agreement.compared,
            },
        )
        return EXIT_DONE


def _source(model: str | None) -> Path:
    if not model:
        raise InvalidRequest("model", "required: the source GGUF file")
    path = Path(model)
    if not path.is_file():
        raise InvalidRequest("model", "no such file", value=model)
    return path


def _tensor_count(source: Path) -> int:
    import gguf

    return len(gguf.GGUFReader(source, "r").tensors)


def write_quantized(
    source: Path, target: Path, type: str, on_tensor: Callable[[int], None] = lambda _: None
) -> None:
    """Write ``source`` with its 2-D weights in ``type`` (one of :data:`NUMPY_TYPES`) to ``target``.

    Tensors are read, converted and written one at a time, so the work memory
    is one tensor's. ``on_tensor(n)`` runs after the ``n``-th is written; what it
    raises stops the write.
    """
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(source, "r")
    arch_field = reader.fields.get("general.architecture")
    if arch_field is None:
        raise QuantizeError("the source has no general.architecture")
    writer = gguf.GGUFWriter(target, str(arch_field.contents()))
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in OWN_KEYS:
            continue
        if field.name == gguf.Keys.General.ALIGNMENT:
            writer.data_alignment = int(field.contents())
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub_type)
    writer.add_file_type(FILE_TYPE[type])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    names = {t.name for t in reader.tensors}
    has_output = OUTPUT_HEAD in names
    plans: list[tuple[Any, gguf.GGMLQuantizationType]] = []
    for tensor in reader.tensors:
        if tensor.tensor_type.name not in SOURCE_TYPES:
            raise QuantizeError(
                f"tensor {tensor.name} is {tensor.tensor_type.name}: the source must be "
                f"{'/'.join(SOURCE_TYPES)} (an already quantized model is not quantized again)"
            )
        shape = tuple(int(d) for d in reversed(tensor.shape))  # numpy's order: rows last
        decided = tensor_type(tensor.name, shape, type, has_output=has_output)
        qtype = (
            tensor.tensor_type if decided == "keep" else gguf.GGMLQuantizationType[decided.upper()]
        )
        plans.append((tensor, qtype))
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = int(np.prod(shape)) // block * size
        byte_shape = gguf.quant_shape_to_byte_shape(shape, qtype)
        writer.add_tensor_info(tensor.name, byte_shape, np.dtype(np.uint8), nbytes, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for done, (tensor, qtype) in enumerate(plans, start=1):
        if qtype == tensor.tensor_type:
            data = np.asarray(tensor.data)
        else:
            shape = tuple(int(d) for d in reversed(tensor.shape))
            values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape)
            data = gguf.quants.quantize(values.astype(np.float32), qtype)
        writer.write_tensor_data(data.view(np.uint8), tensor_endianess=reader.endianess)
        on_tensor(done)
    writer.close()


_PROGRESS = re.compile(rb"^\[\s*(\d+)/\s*(\d+)\]")


def _llama_quantize(
    source: Path, target: Path, type: str, on_tensor: Callable[[int], None]
) -> None:
    """K-quants by llama.cpp's own tool; its ``[ n/ total]`` lines are the progress."""
    tool = shutil.which("llama-quantize")
    if tool is None:
        raise QuantizeError("llama-quantize is no longer on PATH")
    proc = subprocess.Popen(
        [tool, str(source), str(target), type.upper(), str(os.cpu_count() or 1)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    tail: list[bytes] = []
    try:
        for line in proc.stdout:
            sys.stderr.buffer.write(line)
            tail = [*tail[-9:], line]
            match = _PROGRESS.match(line.strip())
            if match:
                on_tensor(int(match.group(1)))
    finally:
        if proc.poll() is None:
            proc.terminate()
        code = proc.wait()
    if code != 0:
        lines = b"".join(tail).decode(errors="replace").strip()
        raise QuantizeError(f"llama-quantize exited with {code}: {lines}")


def _publish(staging: Path, output_dir: Path) -> None:
    """``staging`` becomes ``output_dir``, replacing what an earlier start left there."""
    if output_dir.exists():
        shutil.rmtree(output_dir)
    staging.replace(output_dir)
