"""The sft job: LoRA fine-tuning of a Hugging Face causal LM, resumable exactly.

A plain torch loop rather than a library trainer, because the loop must own
every piece of state a step depends on — the adapter, Adam's moments, the
learning-rate schedule, the random generators and the data position — to put
it all back after a yield or a kill (:mod:`.sft_state`). With
``torch.use_deterministic_algorithms`` and a fixed thread count, a run that
stopped and resumed takes the same steps, bit for bit on CPU, as one that
did not.

Each step: the batch the data order names for it (:mod:`.sft_data`), the mean
cross-entropy over its loss-carrying tokens, a clipped AdamW step, the
schedule's step. Between steps the job honours a yield request (checkpoint,
``yielded``, exit 75) and writes a checkpoint every ``checkpoint_every``
steps. ``<job_dir>/losses.jsonl`` gets one line per step; on a resume it is
rewritten from the checkpoint's record, so it always reads as one run.

Where CUDA and bitsandbytes are both present the base is loaded in 4 bits
(QLoRA); elsewhere the base is float32 on CPU (bfloat16 on a GPU), and the
adapter trains in float32.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from safetensors.torch import save as safetensors_bytes
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from moc.learning.worker import checkpoints, sft_state, yielding
from moc.learning.worker.protocol import EXIT_DONE, EXIT_FAILED, EXIT_YIELDED, JobFile, emit
from moc.learning.worker.sft_data import IGNORE, DataOrder, DatasetError, Example, read_examples
from moc.learning.worker.sft_params import SftParams

LOSSES = "losses.jsonl"


class JobFailure(Exception):
    """A failure the job understands; its message is the ``failed`` reason."""


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


def collate(examples: list[Example], pad_id: int, device: torch.device) -> Batch:
    """Right-padded to the longest example; padding carries no loss."""
    width = max(len(e.input_ids) for e in examples)
    ids, mask, labels = [], [], []
    for e in examples:
        gap = width - len(e.input_ids)
        ids.append(e.input_ids + [pad_id] * gap)
        mask.append([1] * len(e.input_ids) + [0] * gap)
        labels.append(e.labels + [IGNORE] * gap)

    def tensor(rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.long, device=device)

    return Batch(tensor(ids), tensor(mask), tensor(labels))


def batch_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Mean next-token cross-entropy over the tokens that carry a loss."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    predicted = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    return F.cross_entropy(predicted, batch.labels[:, 1:].reshape(-1), ignore_index=IGNORE)


def schedule(warmup: int, total: int) -> Any:
    """The learning rate's factor at a step: linear up over ``warmup`` steps,
    then linear down to zero at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _qlora_possible(params: SftParams) -> bool:
    return (
        params.qlora
        and torch.cuda.is_available()
        and importlib.util.find_spec("bitsandbytes") is not None
    )


def load_model(base: Path, params: SftParams, device: torch.device) -> tuple[PeftModel, bool]:
    """The base with a fresh LoRA adapter (seeded), and whether it is 4-bit."""
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if _qlora_possible(params):
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(
            base, quantization_config=quantization, device_map={"": device.index or 0}
        )
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, use_gradient_checkpointing=False
        )
        quantized = True
    else:
        dtype = torch.float32
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            dtype = torch.bfloat16
        loaded: Any = AutoModelForCausalLM.from_pretrained(base)
        model = loaded.to(device=device, dtype=dtype)
        quantized = False
    modules = params.target_modules
    lora = LoraConfig(
        r=params.rank,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=modules if isinstance(modules, str) else list(modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(params.seed)  # LoRA's A matrices are drawn from torch's generator
    peft_model = get_peft_model(model, lora)
    for p in peft_model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return peft_model, quantized


def _rewrite_losses(path: Path, losses: list[float]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "".join(json.dumps({"step": i + 1, "loss": x}) + "\n" for i, x in enumerate(losses))
    )
    tmp.replace(path)


def write_output(model: PeftModel, output_dir: Path) -> None:
    """The adapter folder (``adapter_config.json``, ``adapter_model.safetensors``,
    what ``PeftModel.from_pretrained`` reads), written beside ``output_dir``
    and renamed to it: on an OSError nothing is left at ``output_dir``. The
    bytes are made in memory and written with Python's I/O, so that a full disk
    is an OSError and not a library's own exception."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f".{output_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        config = model.peft_config["default"]
        training, config.inference_mode = config.inference_mode, True
        try:
            config.save_pretrained(str(tmp))
        finally:
            config.inference_mode = training
        tensors = {
            k: v.detach().to("cpu").contiguous()
            for k, v in get_peft_model_state_dict(model).items()
        }
        data = safetensors_bytes(tensors, metadata={"format": "pt"})
        (tmp / "adapter_model.safetensors").write_bytes(data)
        if output_dir.exists():  # a run that died between renaming it and saying done
            shutil.rmtree(output_dir)
        tmp.rename(output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class SftRun:
    """One start of an sft job's child: owns the model, the optimizer, the
    loss record and the checkpoint folder for the life of the process."""

    def __init__(self, job: JobFile, job_dir: Path) -> None:
        self.job = job
        self.job_dir = job_dir
        try:
            self.params = SftParams.from_params(job.params)
        except (TypeError, ValueError) as exc:
            raise JobFailure(str(exc)) from None
        if not job.base or not (Path(job.base) / "config.json").is_file():
            raise JobFailure(f"base {job.base!r} is not a Hugging Face model folder")
        if not job.dataset or not Path(job.dataset).is_file():
            raise JobFailure(f"dataset {job.dataset!r} is not a file")
        self.checkpoint_root = Path(job.checkpoint_dir)
        self.output_dir = Path(job.output_dir)
        self.losses_path = job_dir / LOSSES
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # cuBLAS reads this when its first handle is made, which is later than here
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.set_num_threads(self.params.threads or min(4, len(os.sched_getaffinity(0))))
        torch.use_deterministic_algorithms(True, warn_only=self.device.type == "cuda")

        base = Path(job.base)
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        try:
            self.examples = read_examples(
                Path(job.dataset), job.dataset_format or "", self.tokenizer, self.params.seq_len
            )
        except DatasetError as exc:
            raise JobFailure(f"dataset {job.dataset}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise JobFailure(f"dataset {job.dataset}: not UTF-8 ({exc})") from None
        self.dataset_digest = digest(Path(job.dataset))
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        self.order = DataOrder(len(self.examples), self.params.batch_size, self.params.seed)
        self.total = self.order.total_steps(self.params.epochs, self.params.max_steps)

        self.model, self.quantized = load_model(base, self.params, self.device)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            trainable, lr=self.params.learning_rate, weight_decay=0.0
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, schedule(self.params.warmup_steps, self.total)
        )
        self.losses: list[float] = []
        self.step = 0
        self.checkpointed = -1  # the step of the newest checkpoint on disk

    def resume(self) -> bool:
        """Put back the newest readable checkpoint; False when there is none."""
        checkpoints.remove_partial(self.checkpoint_root)
        for step, folder in checkpoints.existing(self.checkpoint_root):
            try:
                record = sft_state.load(folder, self.model, self.optimizer, self.scheduler)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                print(
                    f"checkpoint {folder} unreadable, trying an older one: {exc}", file=sys.stderr
                )
                continue
            if record["dataset_sha256"] != self.dataset_digest:
                raise JobFailure(f"checkpoint {folder} was made from another dataset")
            if record["position"] != self._position(step):
                raise JobFailure(
                    f"checkpoint {folder} is at another data position than step {step}"
                )
            self.step = self.checkpointed = step
            self.losses = [float(x) for x in record["losses"]]
            _rewrite_losses(self.losses_path, self.losses)
            return True
        _rewrite_losses(self.losses_path, [])
        torch.manual_seed(self.params.seed)
        random.seed(self.params.seed)
        np.random.seed(self.params.seed)
        return False

    def _position(self, step: int) -> dict[str, int]:
        at = self.order.position(step)
        return {"epoch": at.epoch, "index": at.index}

    def checkpoint(self) -> None:
        if self.checkpointed == self.step:
            return
        record = {
            "step": self.step,
            "position": self._position(self.step),
            "losses": self.losses,
            "dataset_sha256": self.dataset_digest,
        }

        def fill(folder: Path) -> None:
            sft_state.save(folder, self.model, self.optimizer, self.scheduler, record)

        try:
            checkpoints.write(self.checkpoint_root, self.step, fill)
        except OSError as exc:
            raise JobFailure(f"checkpoint at step {self.step} not written: {exc}") from None
        self.checkpointed = self.step
        emit("checkpoint", step=self.step)

    def train_step(self) -> None:
        examples = [self.examples[i] for i in self.order.batch(self.step)]
        batch = collate(examples, self.pad_id, self.device)
        started = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(self.model, batch)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], self.params.max_grad_norm
        )
        self.optimizer.step()
        self.scheduler.step()
        value = float(loss.item())
        elapsed = time.perf_counter() - started
        self.step += 1
        self.losses.append(value)
        with self.losses_path.open("a") as f:
            f.write(json.dumps({"step": self.step, "loss": value}) + "\n")
        tokens = int(batch.attention_mask.sum().item())
        emit(
            "progress",
            step=self.step,
            total=self.total,
            loss=value,
            tokens_per_s=tokens / elapsed if elapsed > 0 else None,
        )

    def run(self) -> int:
        resumed = self.resume()
        emit(
            "started",
            step=self.step,
            total=self.total,
            resumed=resumed,
            device=str(self.device),
            qlora=self.quantized,
        )
        while self.step < self.total:
            if yielding.requested():
                self.checkpoint()
                emit("yielded", step=self.step)
                return EXIT_YIELDED
            self.train_step()
            if self.step % self.params.checkpoint_every == 0 and self.step < self.total:
                self.checkpoint()
        try:
            write_output(self.model, self.output_dir)
        except OSError as exc:
            raise JobFailure(f"adapter not written to {self.output_dir}: {exc}") from None
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        emit(
            "done",
            output={
                "adapter_dir": str(self.output_dir),
                "final_loss": self.losses[-1] if self.losses else None,
                "steps": self.step,
                "losses": self.losses,
                "trainable_params": trainable,
                "qlora": self.quantized,
            },
        )
        return EXIT_DONE


def run(job: JobFile, job_dir: Path) -> int:
    """The sft job of ``job``, from its last checkpoint if it has one."""
    yielding.install()
    try:
        return SftRun(job, job_dir).run()
    except JobFailure as exc:
        emit("failed", reason=str(exc))
        return EXIT_FAILED
