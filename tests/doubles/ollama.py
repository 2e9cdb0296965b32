"""A stand-in for an Ollama server, for machines where Ollama cannot run.

It follows Ollama's REST API as documented for Ollama 0.12 (docs/api.md in
the ollama repository): the routes moc uses, their request and response
shapes, error bodies (``{"error": "..."}``), and the ``keep_alive`` rules:

- a request loads its model if needed and keeps it for ``keep_alive``
  (seconds or a duration like ``5m``; negative: forever; default 5 minutes),
  also requests on the OpenAI-compatible ``/v1`` routes (default keep-alive);
- ``/api/generate`` with no prompt only loads (``done_reason: "load"``), and
  with ``keep_alive: 0`` unloads (``done_reason: "unload"``);
- ``/api/ps`` lists loaded models with ``size``, ``size_vram`` and
  ``expires_at``; a model past its expiry is unloaded.

What it does not do is think: answers are a fixed text made from the prompt.
Run it as ``python -m tests.doubles.ollama --port N --model tag=bytes ...``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

FOREVER = 10**10  # Ollama shows a never-expiring model with a date centuries away
DEFAULT_KEEP_ALIVE = 300.0


def iso(t: float) -> str:
    return datetime.fromtimestamp(min(t, 9.9e10), UTC).isoformat().replace("+00:00", "Z")


def keep_alive_s(value: Any) -> float:
    if value is None:
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)?", str(value).strip())
    if not match:
        raise ValueError(f"invalid duration {value!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return float(match.group(1)) * scale


def json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


class Ollama:
    def __init__(self, models: dict[str, int]) -> None:
        self.models = models  # tag → bytes it takes when loaded
        self.loaded: dict[str, float] = {}  # tag → expires at (epoch seconds)

    def _expire(self) -> None:
        now = time.time()
        for tag in [t for t, at in self.loaded.items() if at <= now]:
            del self.loaded[tag]

    def _keep(self, tag: str, keep: float) -> None:
        if keep == 0:
            self.loaded.pop(tag, None)
        else:
            self.loaded[tag] = FOREVER if keep < 0 else time.time() + keep

    def _details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "0.5B",
            "quantization_level": "Q4_K_M",
        }

    def _digest(self, tag: str) -> str:
        return hashlib.sha256(tag.encode()).hexdigest()

    def _missing(self, tag: Any) -> Response | None:
        if tag not in self.models:
            return json({"error": f'model "{tag}" not found, try pulling it first'}, 404)
        return None

    # --- routes ----------------------------------------------------------------
    async def version(self, request: Request) -> Response:
        return json({"version": "0.12.0"})

    async def tags(self, request: Request) -> Response:
        return json(
            {
                "models": [
                    {
                        "name": tag,
                        "model": tag,
                        "modified_at": iso(time.time()),
                        "size": size,
                        "digest": self._digest(tag),
                        "details": self._details(),
                    }
                    for tag, size in self.models.items()
                ]
            }
        )

    async def ps(self, request: Request) -> Response:
        self._expire()
        return json(
            {
                "models": [
                    {
                        "name": tag,
                        "model": tag,
                        "size": self.models[tag],
                        "digest": self._digest(tag),
                        "details": self._details(),
                        "expires_at": iso(at),
                        "size_vram": self.models[tag],
                        "context_length": 4096,
                    }
                    for tag, at in self.loaded.items()
                ]
            }
        )

    async def show(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        tag = body.get("model") or body.get("name")
        missing = self._missing(tag)
        if missing is not None:
            return missing
        return json(
            {
                "modelfile": "",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": self._details(),
                "model_info": {"general.architecture": "llama", "llama.context_length": 4096},
                "capabilities": ["completion"],
                "modified_at": iso(time.time()),
            }
        )

    async def generate(self, request: Request) -> Response:
        return await self._answer(request, chat=False)

    async def chat(self, request: Request) -> Response:
        return await self._answer(request, chat=True)

    async def _answer(self, request: Request, chat: bool) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        tag = body.get("model")
        missing = self._missing(tag)
        if missing is not None:
            return missing
        try:
            keep = keep_alive_s(body.get("keep_alive"))
        except ValueError as exc:
            return json({"error": str(exc)}, 400)
        self._expire()
        self._keep(tag, keep)
        prompt = (
            body.get("prompt") if not chat else (body.get("messages") or [{}])[-1].get("content")
        )
        now = iso(time.time())
        if not prompt:
            out: dict[str, Any] = {"model": tag, "created_at": now, "done": True}
            out["done_reason"] = "unload" if keep == 0 else "load"
            if chat:
                out["message"] = {"role": "assistant", "content": ""}
            else:
                out["response"] = ""
            return json(out)
        text = f"echo: {prompt}"
        final = {
            "model": tag,
            "created_at": now,
            "done": True,
            "done_reason": "stop",
            "eval_count": len(text.split()),
            "prompt_eval_count": len(prompt.split()),
        }
        key = "message" if chat else "response"
        whole = {"role": "assistant", "content": text} if chat else text
        if not body.get("stream", True):
            return json({**final, key: whole})
        empty = {"role": "assistant", "content": ""} if chat else ""

        async def lines() -> Any:
            for word in text.split(" "):
                piece = {"role": "assistant", "content": word + " "} if chat else word + " "
                yield orjson.dumps({"model": tag, "created_at": now, key: piece, "done": False})
                yield b"\n"
            yield orjson.dumps({**final, key: empty}) + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def openai_chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        tag = body.get("model")
        if tag not in self.models:
            error = {
                "message": f'model "{tag}" not found, try pulling it first',
                "type": "api_error",
                "param": None,
                "code": None,
            }
            return json({"error": error}, 404)
        self._expire()
        self._keep(tag, DEFAULT_KEEP_ALIVE)
        text = "echo: " + str((body.get("messages") or [{}])[-1].get("content"))
        created = int(time.time())
        if not body.get("stream"):
            return json(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": created,
                    "model": tag,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                }
            )

        async def events() -> Any:
            for word in text.split(" "):
                chunk = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": tag,
                    "choices": [
                        {"index": 0, "delta": {"content": word + " "}, "finish_reason": None}
                    ],
                }
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            done = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": created,
                "model": tag,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield b"data: " + orjson.dumps(done) + b"\n\ndata: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/version", self.version, methods=["GET"]),
                Route("/api/tags", self.tags, methods=["GET"]),
                Route("/api/ps", self.ps, methods=["GET"]),
                Route("/api/show", self.show, methods=["POST"]),
                Route("/api/generate", self.generate, methods=["POST"]),
                Route("/api/chat", self.chat, methods=["POST"]),
                Route("/v1/chat/completions", self.openai_chat, methods=["POST"]),
            ]
        )


# --- for tests: the stand-in in a process of its own ------------------------------
MIB = 1 << 20
SMALL, LARGE = "qwen2.5:0.5b", "llama3.2:1b"
SIZES = {SMALL: 300 * MIB, LARGE: 600 * MIB}


class FakeOllama:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FakeOllama:
        models = [f"--model={tag}={size}" for tag, size in SIZES.items()]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.doubles.ollama", "--port", str(self.port), *models],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not self.answers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stand-in Ollama did not start on {self.port}")
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/version", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def resident(self) -> dict[str, Any]:
        listed = httpx.get(f"{self.url}/api/ps").json()["models"]
        return {m["model"]: m for m in listed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", action="append", default=[], help="tag=bytes")
    args = parser.parse_args()
    models = {tag: int(size) for tag, size in (m.split("=", 1) for m in args.model)}
    uvicorn.run(Ollama(models).app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
