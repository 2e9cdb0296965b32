"""Ollama's API shapes, translated to and from OpenAI's. Pure functions.

Follows Ollama's documented REST API (docs/api.md of Ollama 0.12): ``/api/chat``
and ``/api/generate`` stream newline-delimited JSON by default (``"stream":
false`` for one object); durations are nanoseconds; ``options`` carries the
sampling settings; an empty prompt loads the model and, with ``keep_alive: 0``,
unloads it. moc's backends speak OpenAI's API, so a request is turned into an
OpenAI body and each answer (or each server-sent event) back into Ollama's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from moc.errors import InvalidRequest

OLLAMA_API_VERSION = "0.12.0"  # the Ollama release whose API these routes follow
NO_IMAGES = "images are not passed on by moc's Ollama routes; use /v1/chat/completions"


# Ollama option → OpenAI (or llama.cpp's OpenAI-compatible extension) field.
_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "num_predict": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repeat_penalty": "repeat_penalty",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _options(doc: dict[str, Any]) -> dict[str, Any]:
    options = doc.get("options") or {}
    if not isinstance(options, dict):
        raise InvalidRequest("options", "must be an object", value=options)
    out = {_OPTIONS[k]: v for k, v in options.items() if k in _OPTIONS}
    limit = out.get("max_tokens")
    if isinstance(limit, float) and limit.is_integer():
        limit = out["max_tokens"] = int(limit)  # JSON's 2.0 is the integer 2
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise InvalidRequest("options.num_predict", "must be a whole number", value=limit)
        if limit < 0:
            del out["max_tokens"]  # Ollama's -1: no limit
    fmt = doc.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "format", "schema": fmt},
        }
    elif fmt not in (None, ""):
        raise InvalidRequest("format", 'must be "json" or a JSON schema', value=fmt)
    return out


def _message(m: Any, i: int) -> dict[str, Any]:
    if not isinstance(m, dict) or not isinstance(m.get("role"), str):
        raise InvalidRequest(f"messages.{i}", "must be an object with a role and content")
    if m.get("images"):
        raise InvalidRequest(f"messages.{i}.images", NO_IMAGES)
    out: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
    if m.get("tool_calls"):
        out["tool_calls"] = m["tool_calls"]
    return out


def chat_body(doc: dict[str, Any], stream: bool) -> dict[str, Any]:
    """An Ollama /api/chat request as an OpenAI chat.completions body."""
    messages = doc.get("messages") or []
    if not isinstance(messages, list):
        raise InvalidRequest("messages", "must be a list", value=type(messages).__name__)
    body: dict[str, Any] = {
        "model": doc["model"],
        "messages": [_message(m, i) for i, m in enumerate(messages)],
        "stream": stream,
        **_options(doc),
    }
    if doc.get("tools"):
        body["tools"] = doc["tools"]
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def generate_body(doc: dict[str, Any], stream: bool) -> tuple[str, dict[str, Any]]:
    """An Ollama /api/generate request as (OpenAI path, body).

    Ollama applies the model's chat template unless ``raw``; so does a chat
    completion. ``raw`` prompts go to the plain completions route.
    """
    prompt = doc.get("prompt") or ""
    if not isinstance(prompt, str):
        raise InvalidRequest("prompt", "must be a string", value=type(prompt).__name__)
    if doc.get("images"):
        raise InvalidRequest("images", NO_IMAGES)
    options = _options(doc)
    if doc.get("raw"):
        body = {"model": doc["model"], "prompt": prompt, "stream": stream, **options}
        if doc.get("suffix"):
            body["suffix"] = doc["suffix"]
        fmt = options.get("response_format")
        if fmt is not None:
            # llama.cpp's /completions reads its own json_schema field and
            # ignores response_format; servers that read response_format ignore it.
            inner = fmt.get("json_schema")
            body["json_schema"] = inner["schema"] if inner else {"type": "object"}
        path = "/completions"
    else:
        messages = []
        if doc.get("system"):
            messages.append({"role": "system", "content": str(doc["system"])})
        messages.append({"role": "user", "content": prompt})
        body = {"model": doc["model"], "messages": messages, "stream": stream, **options}
        path = "/chat/completions"
    if stream:
        body["stream_options"] = {"include_usage": True}
    return path, body


@dataclass
class Tally:
    """What an Ollama answer reports at its end, gathered from OpenAI's."""

    started: float = field(default_factory=time.monotonic)
    load_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_ms: float | None = None
    predicted_ms: float | None = None
    done_reason: str = "stop"

    def absorb(self, doc: dict[str, Any]) -> None:
        usage = doc.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or self.prompt_tokens)
            self.completion_tokens = int(usage.get("completion_tokens") or self.completion_tokens)
        timings = doc.get("timings")  # llama.cpp's own figures
        if isinstance(timings, dict):
            self.prompt_ms = timings.get("prompt_ms", self.prompt_ms)
            self.predicted_ms = timings.get("predicted_ms", self.predicted_ms)
        for choice in doc.get("choices") or ():
            if choice.get("finish_reason"):
                self.done_reason = str(choice["finish_reason"])

    def final(self) -> dict[str, Any]:
        total = time.monotonic() - self.started
        return {
            "done": True,
            "done_reason": self.done_reason,
            "total_duration": int(total * 1e9),
            "load_duration": int(self.load_s * 1e9),
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": int((self.prompt_ms or 0.0) * 1e6),
            "eval_count": self.completion_tokens,
            "eval_duration": int((self.predicted_ms or 0.0) * 1e6),
        }


def _text(choice: dict[str, Any]) -> tuple[str, list[Any] | None]:
    part = choice.get("message") or choice.get("delta") or {}
    if not part and "text" in choice:
        return str(choice.get("text") or ""), None
    return str(part.get("content") or ""), part.get("tool_calls")


def answer(doc: dict[str, Any], model: str, chat: bool, tally: Tally) -> dict[str, Any]:
    """One OpenAI answer (whole, or one streamed chunk) as an Ollama object."""
    tally.absorb(doc)
    choices = doc.get("choices") or [{}]
    text, tool_calls = _text(choices[0])
    out: dict[str, Any] = {"model": model, "created_at": now_iso()}
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = [_ollama_tool_call(c) for c in tool_calls]
        out["message"] = message
    else:
        out["response"] = text
    out["done"] = False
    return out


def has_content(piece: dict[str, Any]) -> bool:
    """False for the pieces OpenAI streams that Ollama does not (a role alone)."""
    if "message" in piece:
        return bool(piece["message"]["content"] or piece["message"].get("tool_calls"))
    return bool(piece.get("response"))


def _ollama_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = orjson.loads(args)
        except orjson.JSONDecodeError:
            args = {"_raw": args}
    return {"function": {"name": fn.get("name"), "arguments": args or {}}}


def closing(model: str, chat: bool, tally: Tally) -> dict[str, Any]:
    """The last object of an Ollama stream (or the fields a whole answer ends with)."""
    out: dict[str, Any] = {"model": model, "created_at": now_iso()}
    if chat:
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    out.update(tally.final())
    return out


def embed_inputs(doc: dict[str, Any]) -> list[str]:
    """The texts of an /api/embed request (``input``: a string or a list of them)."""
    given = doc.get("input")
    if given is None or given == "":
        return []
    if isinstance(given, str):
        return [given]
    if not isinstance(given, list):
        raise InvalidRequest(
            "input", "must be a string or a list of strings", value=type(given).__name__
        )
    for i, text in enumerate(given):
        if not isinstance(text, str):
            raise InvalidRequest(f"input.{i}", "must be a string", value=type(text).__name__)
    return given


def embed_dimensions(doc: dict[str, Any]) -> int | None:
    """``dimensions``: cut each embedding to this many values (Ollama 0.12), or None.

    ``truncate`` is checked for its type only: moc does not tokenize, so an
    input longer than the backend takes is refused by the backend, as with
    Ollama's ``truncate: false``.
    """
    truncate = doc.get("truncate")
    if truncate is not None and not isinstance(truncate, bool):
        raise InvalidRequest("truncate", "must be true or false", value=truncate)
    dims = doc.get("dimensions")
    if dims is None:
        return None
    if isinstance(dims, float) and dims.is_integer():
        dims = int(dims)
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        raise InvalidRequest("dimensions", "must be a whole number of at least 1", value=dims)
    return dims


def embeddings_body(model: str, texts: list[str]) -> dict[str, Any]:
    """The OpenAI /embeddings body for ``texts``."""
    return {"model": model, "input": texts, "encoding_format": "float"}


def _cut(vector: list[float], dims: int | None) -> list[float]:
    """The first ``dims`` values, scaled back to unit length, as Ollama does."""
    if dims is None or dims >= len(vector):
        return vector
    kept = vector[:dims]
    norm = math.sqrt(sum(x * x for x in kept))
    return [x / norm for x in kept] if norm else kept


def vectors(doc: dict[str, Any], dims: int | None = None) -> list[list[float]]:
    """The embeddings of an OpenAI /embeddings answer, in the order of the inputs."""
    data = sorted(doc.get("data") or (), key=lambda item: int(item.get("index", 0)))
    return [_cut(list(item.get("embedding") or ()), dims) for item in data]


def embed_answer(doc: dict[str, Any], model: str, dims: int | None, tally: Tally) -> dict[str, Any]:
    """An OpenAI /embeddings answer as Ollama's /api/embed answer."""
    tally.absorb(doc)
    final = tally.final()
    return {
        "model": model,
        "embeddings": vectors(doc, dims),
        "total_duration": final["total_duration"],
        "load_duration": final["load_duration"],
        "prompt_eval_count": final["prompt_eval_count"],
    }


def sse_events(buffer: bytearray, chunk: bytes) -> list[bytes]:
    """Complete ``data:`` payloads from server-sent events; the rest stays buffered."""
    buffer += chunk
    found: list[bytes] = []
    while True:
        ends = [(i, len(sep)) for sep in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(sep)) >= 0]
        if not ends:
            return found
        end, width = min(ends)
        block = bytes(buffer[:end])
        del buffer[: end + width]
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                found.append(line[5:].strip())
