"""Which upstream HTTP client should a Starlette proxy use to forward requests
to an OpenAI-compatible backend? Measure, side by side, POST /v1/chat/completions
(non-streaming and ``"stream": true``) through:

- no proxy: straight to the backend (the reference);
- Starlette on uvicorn (uvloop + httptools) forwarding with one ``httpx.AsyncClient``;
- the same Starlette app forwarding with one ``aiohttp.ClientSession``.

The backend is a minimal asyncio responder in its own process: a fixed small
``chat.completion`` answer, or for ``"stream": true`` a chunked ``text/event-stream``
of 8 ``data: {...}`` events and ``data: [DONE]``, each event its own write. Both
proxies pass the request body through, choose by the upstream content type, and
send the upstream bytes back unchanged: read whole into a ``Response``, or a
``StreamingResponse`` over the upstream byte iterator. Each proxy runs in its own
process, as does the load generator (``loadgen``).

Per path and mode: at 1 client p50/p99 and the p50 added over direct; at 50
clients requests/s and p99; and the proxy process's CPU seconds per 1,000
requests (psutil ``cpu_times`` around the 50-client run).

    python benchmarks/upstream_client.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lease_ops import free_port, wait_port
from loadgen import Result, json_response, run_in_process, serve_raw

PATH = "/v1/chat/completions"
REQUEST = (
    b'{"model": "tiny", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8%s}'
)
BODIES = {"json": REQUEST % b"", "stream": REQUEST % b', "stream": true'}
COMPLETION = (
    b'{"id":"chatcmpl-0123456789","object":"chat.completion","created":1700000000,'
    b'"model":"tiny","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello there, how can I help?"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}'
)
WORDS = (b"Hello", b" there", b",", b" how", b" can", b" I", b" help", b"?")


# --- the backend ---------------------------------------------------------------
def _sse_chunks() -> list[bytes]:
    events = [
        b'data: {"id":"chatcmpl-0123456789","object":"chat.completion.chunk",'
        b'"created":1700000000,"model":"tiny","choices":[{"index":0,"delta":{"content":"'
        + word
        + b'"},"finish_reason":null}]}\n\n'
        for word in WORDS
    ]
    events.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(event), event) for event in events] + [b"0\r\n\r\n"]


def serve_backend(port: int) -> None:
    """A fast OpenAI-compatible responder: a fixed chat completion, or 8
    server-sent events and ``[DONE]`` when the body asks to stream."""
    plain = json_response(COMPLETION)
    streamed = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
        *_sse_chunks(),
    )

    def answer(_path: bytes, body: bytes) -> tuple[bytes, ...]:
        return streamed if b'"stream": true' in body or b'"stream":true' in body else (plain,)

    serve_raw(port, answer)


# --- the proxies ---------------------------------------------------------------
Forward = Callable[[bytes], Awaitable[tuple[int, str, Any, Any]]]


def _run_proxy(
    port: int, lifespan: Callable[[], contextlib.AbstractAsyncContextManager[Forward]]
) -> None:
    """Starlette app whose one route hands the body to ``forward`` and answers
    with what came back: ``(status, content type, body or byte iterator, close)``."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    state: dict[str, Forward] = {}

    async def chat(request: Request) -> Response:
        status, media_type, content, close = await state["forward"](await request.body())
        if close is None:
            return Response(content, status, media_type=media_type)
        return StreamingResponse(
            content, status, media_type=media_type, background=BackgroundTask(close)
        )

    @contextlib.asynccontextmanager
    async def app_lifespan(_: Starlette) -> AsyncIterator[None]:
        async with lifespan() as forward:
            state["forward"] = forward
            yield

    app = Starlette(routes=[Route(PATH, chat, methods=["POST"])], lifespan=app_lifespan)
    uvicorn.run(
        app, port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools"
    )


def serve_httpx(port: int, upstream: str) -> None:
    import httpx

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[Forward]:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with httpx.AsyncClient(
            base_url=upstream, limits=limits, timeout=60.0, trust_env=False
        ) as client:

            async def forward(body: bytes) -> tuple[int, str, Any, Any]:
                request = client.build_request(
                    "POST", PATH, content=body, headers={"content-type": "application/json"}
                )
                resp = await client.send(request, stream=True)
                media_type = resp.headers.get("content-type", "application/json")
                if media_type.startswith("text/event-stream"):
                    return resp.status_code, media_type, resp.aiter_raw(), resp.aclose
                try:
                    return resp.status_code, media_type, await resp.aread(), None
                finally:
                    await resp.aclose()

            yield forward

    _run_proxy(port, lifespan)


def serve_aiohttp(port: int, upstream: str) -> None:
    import aiohttp

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[Forward]:
        timeout = aiohttp.ClientTimeout(total=None, connect=60.0, sock_read=60.0)
        async with aiohttp.ClientSession(
            upstream, connector=aiohttp.TCPConnector(limit=0), timeout=timeout
        ) as session:

            async def forward(body: bytes) -> tuple[int, str, Any, Any]:
                resp = await session.post(
                    PATH, data=body, headers={"content-type": "application/json"}
                )
                media_type = resp.headers.get("content-type", "application/json")
                if media_type.startswith("text/event-stream"):
                    return resp.status, media_type, resp.content.iter_any(), resp.release
                try:
                    return resp.status, media_type, await resp.read(), None
                finally:
                    resp.release()

            yield forward

    _run_proxy(port, lifespan)


PROXIES = {"httpx.AsyncClient": serve_httpx, "aiohttp.ClientSession": serve_aiohttp}


# --- measuring -----------------------------------------------------------------
def _start(target: Callable[..., None], *args: Any) -> tuple[mp.process.BaseProcess, int]:
    port = free_port()
    proc = mp.get_context("spawn").Process(target=target, args=(port, *args), daemon=True)
    proc.start()
    wait_port(port)
    return proc, port


def _check_passthrough(ports: dict[str, int]) -> None:
    """Every path answers both modes with the backend's bytes, unchanged."""
    import httpx

    with httpx.Client(trust_env=False) as http:
        for body in BODIES.values():
            answers = {
                name: http.post(f"http://127.0.0.1:{port}{PATH}", content=body).content
                for name, port in ports.items()
            }
            if len(set(answers.values())) != 1:
                raise RuntimeError(f"proxies changed the answer: {answers}")


def _measure(
    url: str, body: bytes, pid: int | None, seconds: float
) -> tuple[Result, Result, float]:
    """(1 client, 50 clients, proxy CPU seconds per 1,000 requests at 50 clients)."""
    one = run_in_process(url, method="POST", body=body, concurrency=1, seconds=seconds)
    run_in_process(url, method="POST", body=body, concurrency=50, seconds=0.5, warmup=0)
    before = psutil.Process(pid).cpu_times() if pid else None
    many = run_in_process(url, method="POST", body=body, concurrency=50, seconds=seconds, warmup=0)
    if before is None:
        return one, many, float("nan")
    after = psutil.Process(pid).cpu_times()
    cpu = (after.user + after.system) - (before.user + before.system)
    return one, many, cpu * 1000 / max(1, many.requests + many.errors)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    backend, backend_port = _start(serve_backend)
    upstream = f"http://127.0.0.1:{backend_port}"
    procs = {name: _start(target, upstream) for name, target in PROXIES.items()}
    ports = {"direct": backend_port} | {name: port for name, (_, port) in procs.items()}
    pids = {name: proc.pid for name, (proc, _) in procs.items()}
    try:
        _check_passthrough(ports)
        print(
            "| mode | path | c=1 p50 ms | c=1 p99 ms | added p50 ms | "
            "c=50 req/s | c=50 p99 ms | proxy CPU s / 1k req | errors |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for mode, body in BODIES.items():
            direct_p50 = float("nan")
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}{PATH}"
                one, many, cpu = _measure(url, body, pids.get(name), args.seconds)
                if name == "direct":
                    direct_p50 = one.p50_ms
                print(
                    f"| {mode} | {name} | {one.p50_ms:.3f} | {one.p99_ms:.3f} | "
                    f"{one.p50_ms - direct_p50:+.3f} | {many.rps:.0f} | {many.p99_ms:.2f} | "
                    f"{cpu:.3f} | {one.errors + many.errors} |",
                    flush=True,
                )
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.join()
        backend.terminate()
        backend.join()


if __name__ == "__main__":
    main()
