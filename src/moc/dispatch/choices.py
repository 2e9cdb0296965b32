"""Several choices (``n`` > 1) as that many requests, their answers merged.

llama.cpp refuses an ``n`` above its slot count, Ollama ignores it, and a
remote server may do either; so moc asks the backend for each choice as a
request of its own, with ``n`` removed, and merges the answers into one
(choices indexed 0 … n−1 in the order asked, usage summed: each choice was a
request the backend processed, prompt included).

Each choice is queued, admitted and counted like any request and holds one
of the model's slots while it runs, rather than one request holding n slots:
the scheduler's slot count stays the backend's own, so no slot is counted
idle while the backend is busy with it, and a request for n choices never
waits for n slots to be free together (which single requests arriving in
between would keep from happening). With ``parallel`` ≥ n the choices run at
once; with fewer, in turn.

A refusal of any choice (moc's own error, or the backend's error answer)
cancels the others and is the answer; nothing of the others is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from moc.dispatch.request import InferenceRequest
from moc.dispatch.service import Dispatcher, Timing
from moc.dispatch.upstream import UpstreamFailed


class _Refused(Exception):
    """A backend's error answer to one choice: the answer for them all."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


async def _one(
    dispatcher: Dispatcher,
    request: InferenceRequest,
    timing: Timing,
    on_admitted: Callable[[], None] | None,
) -> dict[str, Any]:
    opened = await dispatcher.open(request, timing, on_admitted=on_admitted)
    try:
        body = await opened.reply.read()
    except UpstreamFailed as exc:
        raise dispatcher.stream_failed(opened, exc) from exc
    finally:
        opened.close()
    if opened.reply.status >= 400:
        raise _Refused(opened.reply.status, body)
    answer: dict[str, Any] = orjson.loads(body)
    return answer


async def ask_each(
    dispatcher: Dispatcher,
    request: InferenceRequest,
    timing: Timing,
    on_admitted: Callable[[], None] | None = None,
) -> tuple[int, bytes]:
    """(status, body) for a request of ``n`` choices, asked one by one.

    Raises the MocError that refused a choice (queue full, load failed, …);
    a backend's error answer comes back as (its status, its body).
    """
    parts = request.one_choice_each()
    timings = [Timing(arrived=timing.arrived) for _ in parts]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_one(dispatcher, part, t, on_admitted))
                for part, t in zip(parts, timings, strict=True)
            ]
    except ExceptionGroup as failed:
        first = failed.exceptions[0]
        if isinstance(first, _Refused):
            return first.status, first.body
        raise first from None
    finally:
        # The request waited as long as its slowest choice.
        timing.queued_s = max(t.queued_s for t in timings)
        timing.load_s = max(t.load_s for t in timings)
        timing.upstream_s = max(t.upstream_s for t in timings)
    return 200, orjson.dumps(merge([task.result() for task in tasks]))


def merge(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One answer of all choices: the first answer's fields, every answer's
    choices indexed in order, usage summed. llama.cpp's ``timings`` describe
    one request each and are left out."""
    choices: list[dict[str, Any]] = []
    for answer in answers:
        for choice in answer.get("choices") or ():
            choices.append({**choice, "index": len(choices)})
    merged = {k: v for k, v in answers[0].items() if k != "timings"}
    merged["choices"] = choices
    usages = [a["usage"] for a in answers if isinstance(a.get("usage"), dict)]
    if usages:
        merged["usage"] = _sum(usages)
    return merged


def _sum(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts added key by key, nested objects too (``prompt_tokens_details``)."""
    total: dict[str, Any] = {}
    for usage in usages:
        for key, value in usage.items():
            if isinstance(value, bool):
                total.setdefault(key, value)
            elif isinstance(value, int | float):
                total[key] = total.get(key, 0) + value
            elif isinstance(value, dict):
                total[key] = _sum([total.get(key) or {}, value])
            else:
                total.setdefault(key, value)
    return total
