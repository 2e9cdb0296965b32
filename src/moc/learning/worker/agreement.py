"""Top-1 token agreement of two GGUF models under llama.cpp.

Each model runs in this process under llama.cpp's server (the ``xllamacpp``
package), one after the other, so only one is in memory at a time. The text
is fixed: :data:`PROMPTS`, and every prefix of each that ends a word is a
position where both models are asked for their top-1 next token (teacher
forcing on the same text: one early difference does not turn every later
position into a disagreement). Agreement is the fraction of positions where
the two top-1 tokens are the same.

The text is written, not the source's own continuation: a small model's
greedy continuation soon repeats itself, and a near-tie inside the loop would
then be counted at every turn of it.

A position where a model stops (its top-1 is end-of-sequence) counts as the
token ``-1``, so two models that both stop there agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROMPTS = (
    "The history of the river valley begins with the first farmers who settled there",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "Once upon a time, in a small village, there lived an old baker and his cat",
    "The capital of France is Paris, and the capital of Italy is Rome",
    "SELECT name, price FROM products WHERE price > 10 ORDER BY name",
    "Dear customer, thank you for your order of three books and a lamp",
    "In 1969 the first people walked on the Moon, watched by millions",
    "The recipe calls for two cups of flour and one egg, beaten well",
)
STOPPED = -1  # the top-1 token was end-of-sequence


class YieldRequested(Exception):
    """The check was interrupted between requests because the job is asked to yield."""


@dataclass(frozen=True)
class Agreement:
    matched: int
    compared: int
    prompts: int

    @property
    def fraction(self) -> float:
        return self.matched / self.compared if self.compared else 0.0


class _Model:
    """One GGUF model under llama.cpp's server, in this process; owned by :func:`_loaded`."""

    def __init__(self, server: Any) -> None:
        self._server = server

    def _complete(self, prompt: list[str | int], n: int) -> list[int]:
        answer = self._server.handle_completions(
            {"prompt": prompt, "n_predict": n, "temperature": 0.0, "n_probs": 1}
        )
        if "choices" not in answer:
            raise RuntimeError(f"llama.cpp refused the completion: {answer}")
        content = (answer["choices"][0].get("logprobs") or {}).get("content") or []
        return [int(token["id"]) for token in content]

    def top1(self, prompt: str, continuation: Sequence[int]) -> int:
        tokens = self._complete([prompt, *continuation], 1)
        return tokens[0] if tokens else STOPPED


@contextmanager
def _loaded(path: Path, threads: int) -> Iterator[_Model]:
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(path)
    params.hostnames = ["127.0.0.1"]
    params.n_ctx = 1024
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_gpu_layers = 0  # the job's memory is host memory in its ledger entry
    params.warmup = False
    try:
        server = xlc.Server(params)
    except Exception as exc:  # llama.cpp reports a load failure as a plain exception
        raise RuntimeError(f"llama.cpp could not load {path}: {exc}") from exc
    try:
        yield _Model(server)
    finally:
        del server  # stops its threads and frees the model now, before the next one loads


def top1_agreement(
    source: Path,
    candidate: Path,
    *,
    prompts: Sequence[str] = PROMPTS,
    threads: int = 2,
    should_yield: Callable[[], bool] = lambda: False,
) -> Agreement:
    """How often ``candidate``'s top-1 token is ``source``'s; raises
    :class:`YieldRequested` between requests once ``should_yield()`` is true."""

    def check() -> None:
        if should_yield():
            raise YieldRequested

    prefixes = [p for prompt in prompts for p in word_prefixes(prompt)]
    with _loaded(source, threads) as model:
        expected = []
        for prefix in prefixes:
            check()
            expected.append(model.top1(prefix, ()))
    matched = 0
    with _loaded(candidate, threads) as model:
        for prefix, token in zip(prefixes, expected, strict=True):
            check()
            matched += model.top1(prefix, ()) == token
    return Agreement(matched=matched, compared=len(prefixes), prompts=len(prompts))


def word_prefixes(text: str) -> list[str]:
    """Every prefix of ``text`` that ends a word (just before a space), and the whole."""
    return [text[:i] for i, c in enumerate(text) if c == " " and i > 0] + [text]
