"""A small closed-loop HTTP load generator on aiohttp.

Each of ``concurrency`` workers sends its next request as soon as the previous
one answered. It reports latency percentiles and throughput. It runs in its own
process (``run_in_process``) so that it does not share an event loop or a GIL
with the server under test.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Result:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    non_2xx: int = 0  # answered, counted above (below 500), but not 2xx
    ttfb_p50_ms: float = float("nan")  # to the first body bytes; only with ``ttfb=True``
    ttfb_p99_ms: float = float("nan")

    @classmethod
    def median_of(cls, rounds: list[Result]) -> Result:
        """Several short runs of one path as one: counts summed, each latency
        figure the median of the rounds' (a round disturbed by the machine
        moves it less than one long run's tail)."""

        def mid(name: str) -> float:
            return float(statistics.median(getattr(r, name) for r in rounds))

        return cls(
            requests=sum(r.requests for r in rounds),
            errors=sum(r.errors for r in rounds),
            seconds=sum(r.seconds for r in rounds),
            p50_ms=mid("p50_ms"),
            p95_ms=mid("p95_ms"),
            p99_ms=mid("p99_ms"),
            non_2xx=sum(r.non_2xx for r in rounds),
            ttfb_p50_ms=mid("ttfb_p50_ms"),
            ttfb_p99_ms=mid("ttfb_p99_ms"),
        )

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @classmethod
    def of(
        cls,
        latencies: list[float],
        errors: int,
        seconds: float,
        non_2xx: int,
        firsts: list[float] | None = None,
    ) -> Result:
        """From the latencies (ms) of the requests that were answered."""
        latencies, firsts = sorted(latencies), sorted(firsts or [])
        return cls(
            requests=len(latencies),
            errors=errors,
            seconds=seconds,
            p50_ms=statistics.median(latencies) if latencies else float("nan"),
            p95_ms=percentile(latencies, 0.95),
            p99_ms=percentile(latencies, 0.99),
            non_2xx=non_2xx,
            ttfb_p50_ms=statistics.median(firsts) if firsts else float("nan"),
            ttfb_p99_ms=percentile(firsts, 0.99),
        )


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _headers(body: bytes | None, extra: dict[str, str] | None) -> dict[str, str]:
    """A JSON content type when there is a body, and ``extra`` (e.g. a bearer token)."""
    return ({"content-type": "application/json"} if body is not None else {}) | (extra or {})


async def _run(
    url: str,
    method: str,
    body: bytes | None,
    concurrency: int,
    seconds: float,
    warmup: float,
    ttfb: bool = False,
    extra_headers: dict[str, str] | None = None,
) -> Result:
    latencies: list[float] = []
    firsts: list[float] = []
    errors = non_2xx = 0
    last_end = 0.0  # when the last counted request ended
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    headers = _headers(body, extra_headers)
    async with aiohttp.ClientSession(connector=connector) as session:
        start_at = time.perf_counter() + warmup
        stop_at = start_at + seconds

        async def worker() -> None:
            nonlocal errors, non_2xx, last_end
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                first = t0
                status = 0
                try:
                    async with session.request(method, url, data=body, headers=headers) as resp:
                        status = resp.status
                        if ttfb:
                            await resp.content.readany()
                            first = time.perf_counter()
                        await resp.read()
                        ok = resp.status < 500
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                t1 = time.perf_counter()
                if t0 >= start_at:
                    last_end = max(last_end, t1)
                    if ok:
                        latencies.append((t1 - t0) * 1000)
                        non_2xx += not 200 <= status < 300
                        if ttfb:
                            firsts.append((first - t0) * 1000)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    # Requests sent before the stop count, so the run lasts until the last of
    # them has answered (much longer than ``seconds`` for a slow server).
    took = max(seconds, last_end - start_at)
    return Result.of(latencies, errors, took, non_2xx, firsts)


async def _run_rate(
    url: str,
    method: str,
    body: bytes | None,
    rate: float,
    seconds: float,
    extra_headers: dict[str, str] | None = None,
) -> Result:
    """Open loop: a request every 1/rate s whatever the answers do, each timed
    from when it was due (so a slow server cannot hide its queue)."""
    latencies: list[float] = []
    errors = non_2xx = 0
    headers = _headers(body, extra_headers)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(due: float) -> None:
            nonlocal errors, non_2xx
            try:
                async with session.request(method, url, data=body, headers=headers) as resp:
                    await resp.read()
                    non_2xx += not 200 <= resp.status < 300
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
                return
            latencies.append((time.perf_counter() - due) * 1000)

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
        took = time.perf_counter() - start
    return Result.of(latencies, errors, took, non_2xx)


def _child(conn: Any, args: tuple[Any, ...]) -> None:
    conn.send(asyncio.run(_run(*args)))


def _child_rate(conn: Any, args: tuple[Any, ...]) -> None:
    conn.send(asyncio.run(_run_rate(*args)))


def run_rate_in_process(
    url: str,
    *,
    rate: float,
    seconds: float,
    method: str = "POST",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Result:
    """:func:`_run_rate` in its own process; ``headers`` go with every request."""
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_child_rate, args=(child, (url, method, body, rate, seconds, headers))
    )
    proc.start()
    result: Result = parent.recv()
    proc.join()
    return result


def run_in_process(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    concurrency: int = 1,
    seconds: float = 5.0,
    warmup: float = 1.0,
    ttfb: bool = False,
    headers: dict[str, str] | None = None,
) -> Result:
    """``ttfb``: also time each request to the first bytes of its body;
    ``headers`` go with every request."""
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_child,
        args=(child, (url, method, body, concurrency, seconds, warmup, ttfb, headers)),
    )
    proc.start()
    result: Result = parent.recv()
    proc.join()
    return result


def split_requests(buf: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The (path, body) of each complete HTTP/1.1 request at the start of
    ``buf`` (framed by Content-Length), and the bytes after them."""
    found = []
    while True:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            return found, buf
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if len(rest) < length:
            return found, buf
        path = lines[0].split(b" ")[1] if b" " in lines[0] else b""
        found.append((path, rest[:length]))
        buf = rest[length:]


Answer = Callable[[bytes, bytes], Sequence[bytes]]


def serve_raw(port: int, answer: Answer, delay_s: float = 0.0) -> None:
    """An HTTP/1.1 keep-alive server with no parsing beyond framing: each
    request's path and body go to ``answer``, whose writes (status line
    included) go back one by one, ``delay_s`` after the request arrived. Runs
    until killed (in its own process)."""
    import uvloop

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.buf = b""
            self.loop = asyncio.get_running_loop()

        def data_received(self, data: bytes) -> None:
            found, self.buf = split_requests(self.buf + data)
            for path, body in found:
                if delay_s > 0:
                    self.loop.call_later(delay_s, self.write, answer(path, body))
                else:
                    self.write(answer(path, body))

        def write(self, pieces: Sequence[bytes]) -> None:
            if not self.t.is_closing():
                for piece in pieces:
                    self.t.write(piece)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Proto, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


def json_response(body: bytes, status: bytes = b"200 OK") -> bytes:
    """A whole HTTP/1.1 response carrying ``body`` as JSON."""
    head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % (status, len(body)) + body


def serve_constant(port: int, status: bytes, body: bytes) -> None:
    """Answers every request with ``body``, keeping no state: the ceiling of
    a machine and a client."""
    response = json_response(body, status)
    serve_raw(port, lambda _path, _body: (response,))
