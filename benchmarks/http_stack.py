"""Which HTTP server stack should moc use? Measure, side by side, a handler shaped
like a lease acquire (parse a JSON body, validate, answer JSON) on:

- a minimal asyncio responder (the machine's ceiling, no parsing at all);
- Starlette routes on uvicorn (httptools + uvloop), validating with pydantic;
- FastAPI on the same uvicorn, the body declared as a pydantic model;
- aiohttp.web, validating with pydantic.

    python benchmarks/http_stack.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import sys
import time
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from loadgen import run_in_process, serve_constant

BODY = b'{"bytes": 1048576, "ttl_s": 30, "holder": "bench"}'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model() -> Any:
    from pydantic import BaseModel, ConfigDict, Field

    class Req(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        bytes: int = Field(gt=0)
        ttl_s: float = Field(gt=0, le=86400)
        holder: str = ""

    return Req


def serve_raw(port: int) -> None:
    serve_constant(port, b"201 Created", b'{"id":"abc"}')


def serve_starlette(port: int) -> None:
    import orjson
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    Req = _model()

    async def acquire(request: Request) -> Response:
        req = Req.model_validate_json(await request.body())
        return Response(
            orjson.dumps({"id": "abc", "bytes": req.bytes}), 201, media_type="application/json"
        )

    app = Starlette(routes=[Route("/v1/leases", acquire, methods=["POST"])])
    uvicorn.run(
        app, port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools"
    )


def serve_fastapi(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    Req = _model()
    app = FastAPI()

    @app.post("/v1/leases", status_code=201)
    async def acquire(req: Req) -> dict[str, Any]:  # type: ignore[valid-type]
        return {"id": "abc", "bytes": req.bytes}  # type: ignore[attr-defined]

    uvicorn.run(
        app, port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools"
    )


def serve_aiohttp(port: int) -> None:
    import orjson
    import uvloop
    from aiohttp import web

    Req = _model()

    async def acquire(request: web.Request) -> web.Response:
        req = Req.model_validate_json(await request.read())
        return web.Response(
            body=orjson.dumps({"id": "abc", "bytes": req.bytes}),
            status=201,
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_post("/v1/leases", acquire)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


STACKS = {
    "asyncio responder (ceiling)": serve_raw,
    "starlette + uvicorn": serve_starlette,
    "fastapi + uvicorn": serve_fastapi,
    "aiohttp.web": serve_aiohttp,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print("| stack | c=1 p50 ms | c=1 p99 ms | c=1 req/s | c=50 req/s | c=50 p99 ms |")
    print("|---|---|---|---|---|---|")
    for name, target in STACKS.items():
        port = _free_port()
        proc = mp.get_context("spawn").Process(target=target, args=(port,), daemon=True)
        proc.start()
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/v1/leases"
        one = run_in_process(url, method="POST", body=BODY, concurrency=1, seconds=args.seconds)
        many = run_in_process(url, method="POST", body=BODY, concurrency=50, seconds=args.seconds)
        proc.terminate()
        proc.join()
        print(
            f"| {name} | {one.p50_ms:.3f} | {one.p99_ms:.3f} | {one.rps:.0f} | "
            f"{many.rps:.0f} | {many.p99_ms:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
